/**
 * Membership and the cluster view: every peer's gossiped state (last writer
 * wins, core/cluster-view.ts), its status as the failure detector decides it
 * (failure-detection.ts: gossip and connections are only hints to it), the
 * VMs each peer gossips (handed to fencing and the replica holders), and the
 * queries of the API over that view. Status changes and the VMs that appear,
 * boot and leave become events.
 */
import type { Libp2p } from '@libp2p/interface'
import type { Logger } from 'pino'
import type { Clock } from '../core/clock.ts'
import { ClusterView, derivedFrom, type MergeResult, type PeerStatus, type ViewConfig } from '../core/cluster-view.ts'
import type { StatusChange } from '../core/failure-detector.ts'
import type { NodeState, VmSummary } from '../core/messages.ts'
import { compareHeads } from '../core/ownership.ts'
import { Ring } from '../core/ring.ts'
import type { VmChange, VmIndex } from '../core/vm-index.ts'
import type { StateGossip } from '../net/index.ts'
import { VmNotFoundError } from './errors.ts'
import type { EventLog } from './event-log.ts'
import type { FailureDetection } from './failure-detection.ts'
import type { LocalNode } from './local-node.ts'
import type { Metrics } from './metrics.ts'
import { VmWaiters } from './vm-waiters.ts'

/** Requests that may wait for a VM at once (`GET /v1/vms/:id?wait=`); more are answered at once. */
const MAX_VM_WAITERS = 10_000

export interface NodeView {
  peerId: string
  addrs: string[]
  api?: string
  capacity: { cpu: number, memMiB: number }
  cpuOvercommit: number
  used: { cpu: number, memMiB: number }
  reserved: { cpu: number, memMiB: number }
  labels: Record<string, string>
  vmCount: number
  /** CPU its VMs ask for now, in vCPUs. */
  demand: number
  /** Emptied by consolidation. */
  idle: boolean
  state: PeerStatus
  lastSeenMs: number
}

export interface ClusterVm extends VmSummary {
  node: string
}

export interface MembershipComponents {
  self: string
  clock: Clock
  events: EventLog
  metrics: Metrics
  log: Logger
  libp2p: Libp2p
  gossip: StateGossip
  local: LocalNode
  vms: VmIndex
  detection: FailureDetection
}

export interface MembershipInit {
  view: ViewConfig
  /** Our own state as the API shows it, fresh. */
  ownState: () => NodeState
  /**
   * A peer's VMs as it gossiped them, each at its epoch with the peer as its
   * owner: claims above our own heads are checked against their proofs
   * (fencing), replicas they supersede dropped, deleted ones told.
   */
  onVmsSeen: (peerId: string, vms: readonly VmSummary[]) => void
  /** A peer is no longer alive (disconnected, suspect or dead): work with it in flight must stop waiting. A death is also the event `peer.dead`. */
  onPeerLost: (peerId: string) => void
  /** A peer's state message arrived (the gossip budget is measured by them). */
  onHeard: () => void
  /** Whether this agent is placing the VM now: then its `vm.placed` comes from the placement, with its figures. */
  isPlacing: (vmId: string) => boolean
  /** Whether the last connection with the peer was closed on purpose, by either side (net/farewell.ts). */
  leftOnPurpose?: (peerId: string) => boolean
}

export class Membership {
  readonly view: ClusterView
  /** Addresses of the peers not believed dead, as `/ip4/…/tcp/…/p2p/ID`: what the redialer may dial. Rebuilt only when the view's peers change. */
  readonly knownAddrs: () => readonly string[]
  /** The rebalancing ring over the live peers and ourselves, rebuilt only when they change. */
  readonly ring: () => Ring
  readonly #c: MembershipComponents
  readonly #init: MembershipInit
  readonly #waiters = new VmWaiters(MAX_VM_WAITERS)
  #started = false

  constructor (components: MembershipComponents, init: MembershipInit) {
    this.#c = components
    this.#init = init
    this.view = new ClusterView(components.self, init.view)
    this.knownAddrs = derivedFrom(this.view, () => {
      const addrs: string[] = []
      for (const e of this.view.entries()) {
        if (e.peerId === components.self || e.status === 'dead') continue
        for (const a of e.state.addrs) addrs.push(`${a}/p2p/${e.peerId}`)
      }
      return addrs
    })
    this.ring = derivedFrom(this.view, () => {
      const ids = this.view.alive().map(s => s.peerId)
      if (!ids.includes(components.self)) ids.push(components.self)
      return new Ring(ids)
    })
  }

  start (): void {
    if (this.#started) return
    this.#started = true
    this.#c.libp2p.addEventListener('peer:disconnect', this.#onDisconnect)
    this.#c.libp2p.addEventListener('peer:connect', this.#onConnect)
  }

  stop (): void {
    if (!this.#started) return
    this.#started = false
    this.#c.libp2p.removeEventListener('peer:disconnect', this.#onDisconnect)
    this.#c.libp2p.removeEventListener('peer:connect', this.#onConnect)
    this.#waiters.clear()
  }

  /**
   * A state message from a peer (validated by the gossip edge), or with
   * `relayed` a state another peer passed on (a view sync): not a sign of
   * life of its owner's, nor a message of the gossip budget.
   */
  onState (state: NodeState, relayed = false): MergeResult {
    const self = this.#c.self
    if (state.peerId === self) return 'stale'
    const now = this.#c.clock.now()
    if (!relayed) this.#init.onHeard()
    const before = this.view.get(state.peerId)?.state
    const result = this.view.merge(state, now)
    if (!relayed) this.view.heard(state.peerId, now)
    this.#c.metrics.gossipReceived.inc({ result })
    // A new peer is watched from now on; a known one's state tells the detector of a restart, or of a dead peer still running.
    if (result === 'new') this.#c.detection.add(state.peerId, state.incarnation)
    else if (result === 'updated') this.#c.detection.heard(state.peerId, state.incarnation)
    if (result !== 'stale') {
      if (result === 'new') this.#c.events.emit('peer.joined', { peerId: state.peerId })
      this.#c.events.emit('peer.state', { peerId: state.peerId, seq: state.seq, used: state.used, reserved: state.reserved, vmCount: state.vms.length })
      if (before == null || before.vms !== state.vms) this.emitVmChanges(this.#c.vms.observeNode(state.peerId, state.vms))
      this.#init.onVmsSeen(state.peerId, state.vms)
      if (this.#waiters.size > 0) this.#waiters.seen(state.vms.map(vm => vm.id))
    }
    return result
  }

  /** Our own state, as just published. */
  mergeOwn (state: NodeState): void {
    this.view.merge(state, this.#c.clock.now())
  }

  /** A sign of life from a peer (an answered request): when we last heard from it. */
  heard (peerId: string): void {
    this.view.heard(peerId, this.#c.clock.now())
  }

  /** The VMs of this node changed: waiters for them may be answered. */
  localVmsChanged (): void {
    this.#waiters.check(id => this.#c.local.get(id) != null)
  }

  /** Turns what the VM index saw into events. */
  emitVmChanges (changes: VmChange[]): void {
    for (const c of changes) {
      if (c.kind === 'placed') {
        if (!this.#init.isPlacing(c.id)) this.#c.events.emit('vm.placed', { id: c.id, node: c.node, cpu: c.cpu, memMiB: c.memMiB })
      }
      else if (c.kind === 'running') this.#c.events.emit('vm.running', { id: c.id, node: c.node })
      else this.#c.events.emit('vm.deleted', { id: c.id, node: c.node })
    }
  }

  /** The failure detector's verdicts: applied to the view, they become events. */
  applyStatus (changes: StatusChange[]): void {
    const now = this.#c.clock.now()
    for (const c of changes) {
      if (!this.view.setStatus(c.peer, c.to, now)) continue
      this.#drainStatus()
      if (c.to === 'alive' && c.refuted === true) this.#c.events.emit('peer.refuted', { peerId: c.peer, from: c.from, falsePositive: c.from === 'dead' })
    }
  }

  /** Forgets peers dead for long enough; counts peers by status. */
  tick (): void {
    const now = this.#c.clock.now()
    // An open connection says when we last heard from a peer (shown in `lastSeenMs`); the detector decides whether it is alive.
    for (const conn of this.#c.libp2p.getConnections()) this.view.heard(conn.remotePeer.toString(), now)
    for (const peer of this.view.tick(now)) this.#c.detection.remove(peer)
    const counts = { alive: 0, suspect: 0, dead: 0 }
    for (const e of this.view.entries()) counts[e.status]++
    for (const [status, n] of Object.entries(counts)) this.#c.metrics.peers.set({ status }, n)
  }

  /** States of the peers believed alive, ourselves included. */
  alive (): NodeState[] {
    return this.view.alive()
  }

  nodes (): NodeView[] {
    const now = this.#c.clock.now()
    const self = this.#c.self
    return this.view.entries().map(e => {
      const s = e.peerId === self ? this.#init.ownState() : e.state
      const out: NodeView = {
        peerId: s.peerId,
        addrs: s.addrs,
        capacity: s.capacity,
        cpuOvercommit: s.cpuOvercommit,
        used: s.used,
        reserved: s.reserved,
        labels: s.labels,
        vmCount: s.vms.length,
        demand: s.demand ?? 0,
        idle: s.idle === true,
        state: e.peerId === self ? 'alive' : e.status,
        lastSeenMs: e.peerId === self ? 0 : Math.max(0, now - e.lastSeenMs)
      }
      if (s.api != null) out.api = s.api
      return out
    })
  }

  /** This agent's own VMs. */
  localVms (): ClusterVm[] {
    return this.#c.local.summaries().map(vm => ({ ...vm, node: this.#c.self }))
  }

  /** Every VM this agent knows of: its own, fresh, and those gossiped by live or suspect peers (`withDead`: and by those declared dead, their last state). */
  clusterVms (withDead = false): ClusterVm[] {
    const out = this.localVms()
    for (const e of this.view.entries()) {
      if (e.peerId === this.#c.self || (!withDead && e.status === 'dead')) continue
      for (const vm of e.state.vms) out.push({ ...vm, node: e.peerId })
    }
    return out
  }

  getVm (id: string): ClusterVm {
    const local = this.#c.local.summaries().find(vm => vm.id === id)
    if (local != null) return { ...local, node: this.#c.self }
    // Two peers may both gossip it for a while (a stale copy not fenced yet): the later head is the one that runs on.
    const found = latestOf(this.clusterVms(), id)
    if (found == null) throw new VmNotFoundError(`no VM ${id} is known to this agent`)
    return found
  }

  /**
   * The latest copy of `id` this agent has heard of, on any peer of its view —
   * those declared dead too, by their last state — or undefined. A copy at a
   * lower head elsewhere is stale (fenced once its owner hears of this one).
   */
  latestCopy (id: string): ClusterVm | undefined {
    return latestOf(this.clusterVms(true), id)
  }

  /** `getVm`, waiting up to `timeoutMs` for a VM this agent does not know yet (placed elsewhere, not yet gossiped). */
  async waitForVm (id: string, timeoutMs: number): Promise<ClusterVm> {
    try {
      return this.getVm(id)
    } catch (err: any) {
      if (err.name !== 'VmNotFoundError' || !this.#started) throw err
    }
    await this.#waiters.wait(id, timeoutMs)
    return this.getVm(id)
  }

  /** Status changes, whatever caused them, become events; a peer that is no longer alive is lost to work in flight. */
  #drainStatus (): void {
    for (const change of this.view.takeChanges()) {
      if (change.to !== 'alive') this.#init.onPeerLost(change.peerId)
      const type = change.to === 'alive' ? 'peer.alive' : change.to === 'suspect' ? 'peer.suspect' : 'peer.dead'
      this.#c.events.emit(type, { peerId: change.peerId, from: change.from })
    }
  }

  readonly #onDisconnect = (evt: CustomEvent<{ toString: () => string }>): void => {
    const id = evt.detail.toString()
    // Closed on purpose, by either side (a bounded fan-out: net/farewell.ts): no sign of anything.
    if (this.#init.leftOnPurpose?.(id) === true) return
    this.#c.metrics.disconnects.inc()
    this.#c.log.debug({ component: 'discovery:membership', peer: id }, 'peer disconnected')
    // A hint: the detector probes it at once (a killed agent's connections reset; a dial to it is refused).
    this.#c.detection.hint(id, 'disconnected')
    this.#init.onPeerLost(id)
  }

  readonly #onConnect = (evt: CustomEvent<{ toString: () => string }>): void => {
    const id = evt.detail.toString()
    this.view.heard(id, this.#c.clock.now())
    this.#c.detection.hint(id, 'connected')
  }
}

/** The copy of `id` at the latest head among `vms` (the higher epoch, then the higher peer id), if any. */
function latestOf (vms: readonly ClusterVm[], id: string): ClusterVm | undefined {
  let found: ClusterVm | undefined
  for (const vm of vms) if (vm.id === id && (found == null || compareHeads({ epoch: vm.epoch, owner: vm.node }, { epoch: found.epoch, owner: found.node }) > 0)) found = vm
  return found
}
