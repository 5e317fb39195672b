/**
 * Our own state: the NodeState we gossip (its sequence numbers, addresses,
 * usage, VMs and demand), the load the rebalancing planner reads, and the
 * publisher that decides when the cluster hears of a change.
 */
import { thisProcess } from './process-watch.ts'
import type { Libp2p } from '@libp2p/interface'
import type { Logger } from 'pino'
import type { AgentConfig } from '../config.ts'
import type { Clock } from '../core/clock.ts'
import type { Change } from '../core/gossip-policy.ts'
import { PROTOCOL_VERSION, type NodeState } from '../core/messages.ts'
import type { HostLoad, VmLoad } from '../core/rebalance-messages.ts'
import type { Rng } from '../core/rng.ts'
import type { Driver } from '../hypervisor/index.ts'
import type { StateGossip } from '../net/index.ts'
import type { LocalNode } from './local-node.ts'
import type { Membership } from './membership.ts'
import type { Metrics } from './metrics.ts'
import { StatePublisher } from './state-publisher.ts'

export interface OwnStateComponents {
  self: string
  config: AgentConfig
  clock: Clock
  rng: Rng
  log: Logger
  metrics: Metrics
  libp2p: Libp2p
  gossip: StateGossip
  local: LocalNode
  driver: Driver
  membership: Membership
}

/** The first publish waits this long at most for a first change or subscriber. */
const FIRST_PUBLISH_WITHIN_MS = 5_000

export class OwnState {
  /** Start time of this run: a restarted agent's sequence numbers start again above the old ones. */
  readonly incarnation: number
  /** The API's address, gossiped so that peers and tools can find it. */
  apiUrl?: string
  readonly #c: OwnStateComponents
  readonly #publisher: StatePublisher
  #seq = 0
  /** Where this process runs, for co-hosted peers' process checks (agent/process-watch.ts); undefined without /proc. */
  readonly #process = thisProcess()
  /** `start` was called; the publisher starts at the first change or subscriber, or after FIRST_PUBLISH_WITHIN_MS. */
  #begun = false
  #publishing = false
  #firstTimer?: NodeJS.Timeout

  constructor (components: OwnStateComponents) {
    this.#c = components
    this.incarnation = components.clock.now()
    const { config, membership, local, gossip, metrics, log } = components
    this.#publisher = new StatePublisher({
      config: config.gossip,
      build: (next) => this.build(next),
      load: () => {
        const l = local.ledger
        return { cpu: l.used.cpu + l.reserved.cpu, memMiB: l.used.memMiB + l.reserved.memMiB, capCpu: l.capacity.cpu, capMemMiB: l.capacity.memMiB }
      },
      peers: () => membership.view.size,
      publish: async (state) => {
        membership.mergeOwn(state)
        const sentTo = await gossip.publish(state)
        metrics.gossipPublished.inc()
        return sentTo
      },
      onError: (err) => { log.warn({ component: 'discovery:gossip', err: err.message }, 'publish failed') },
      clock: components.clock,
      rng: components.rng
    })
  }

  /**
   * Our first publish goes out once someone can hear it: at the first change
   * or subscriber (agent.ts), or after FIRST_PUBLISH_WITHIN_MS. Published at
   * start, before any connection, it reached nobody, and a newcomer to a busy
   * cluster then announced itself only when the gossip budget gave it a token
   * (a minute and more at a hundred local agents).
   */
  start (): void {
    this.#c.membership.mergeOwn(this.build(true))
    this.#begun = true
    this.#firstTimer = setTimeout(() => { this.#startPublishing() }, FIRST_PUBLISH_WITHIN_MS)
    this.#firstTimer.unref()
  }

  stop (): void {
    this.#begun = false
    if (this.#firstTimer != null) clearTimeout(this.#firstTimer)
    this.#publisher.stop()
  }

  /** Our state changed (local-node.ts says how), or a peer subscribed: the publisher decides when the cluster hears of it. */
  changed (change: Change): void {
    if (!this.#publishing) {
      // The first publish carries whatever changed.
      if (this.#begun) this.#startPublishing()
      return
    }
    this.#publisher.changed(change)
  }

  /** Whether the first publish went out. */
  get publishing (): boolean {
    return this.#publishing
  }

  #startPublishing (): void {
    if (this.#publishing || !this.#begun) return
    this.#publishing = true
    if (this.#firstTimer != null) clearTimeout(this.#firstTimer)
    this.#publisher.start()
  }

  /** A peer's state message arrived. */
  heard (): void {
    this.#publisher.heard()
  }

  /** How long we may stay silent before we publish anyway: peers' silence timeouts follow it. */
  refreshIntervalMs (): number {
    return this.#publisher.refreshIntervalMs()
  }

  /** Our current state; with `next`, under a new sequence number (to be published). */
  build (next: boolean): NodeState {
    if (next) this.#seq++
    const { config, local, driver } = this.#c
    const ledger = local.ledger
    const state: NodeState = {
      v: PROTOCOL_VERSION,
      peerId: this.#c.self,
      incarnation: this.incarnation,
      seq: this.#seq,
      addrs: [...new Set(this.#c.libp2p.getMultiaddrs().map(a => a.toString().replace(/\/p2p\/[^/]+$/, '')))].slice(0, 16),
      capacity: config.capacity,
      cpuOvercommit: config.cpuOvercommit,
      used: ledger.used,
      reserved: ledger.reserved,
      labels: config.labels,
      vms: local.summaries(),
      demand: Math.round(local.records().reduce((a, r) => a + driver.demand(r.spec.id) * r.spec.cpu, 0) * 100) / 100
    }
    if (this.isIdle()) state.idle = true
    if (this.apiUrl != null) state.api = this.apiUrl
    if (this.#process != null) state.process = this.#process
    return state
  }

  /**
   * Our own entry as placement reads it, on every create: usage, reservations
   * and VMs (for spread groups) fresh; addresses and demand as last published,
   * which placement does not read (building them is most of `build`).
   */
  forPlacement (published: NodeState): NodeState {
    const ledger = this.#c.local.ledger
    const { idle: _idle, ...rest } = published
    const state: NodeState = { ...rest, used: ledger.used, reserved: ledger.reserved, vms: this.#c.local.summaries() }
    if (this.isIdle()) state.idle = true
    return state
  }

  /** This node as the rebalancing planner sees it: VMs with their current demand, reservations as one more VM that never moves. */
  hostLoad (): HostLoad {
    const { local, driver, config } = this.#c
    const vms: VmLoad[] = local.records().map(r => {
      const v: VmLoad = { id: r.spec.id, cpu: r.spec.cpu, memMiB: r.spec.memMiB, demand: driver.demand(r.spec.id) * r.spec.cpu }
      if (r.spec.constraints?.spread != null) v.spread = r.spec.constraints.spread
      return v
    })
    const reserved = local.ledger.reserved
    if (reserved.cpu > 0 || reserved.memMiB > 0) vms.push({ id: 'reserved', cpu: reserved.cpu, memMiB: reserved.memMiB, demand: reserved.cpu, pinned: true })
    return { peerId: this.#c.self, capacity: config.capacity, cpuOvercommit: config.cpuOvercommit, vms, labels: config.labels, idle: this.isIdle() }
  }

  /** With consolidation on, a node left without VMs is idle: in a real deployment, powered down until needed. */
  isIdle (): boolean {
    return this.#c.config.rebalance.consolidate && this.#c.local.records().length === 0 && this.#c.local.ledger.leaseCount === 0
  }
}
