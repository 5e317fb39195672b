/**
 * Placement: creates that reach this agent are placed through the cluster
 * (placer.ts runs the core's attempt over the place protocol), and so are
 * restarts of a dead owner's VMs (with their ownership proof), deletes are
 * sent to the VM's owner, and the place protocol is served for peers (their
 * reserves, commits, releases and deletes, decided by our ledger).
 */
import type { Libp2p } from '@libp2p/interface'
import { setTimeout as sleep } from 'node:timers/promises'
import { type AgentConfig, boundedFanout } from '../config.ts'
import type { Clock } from '../core/clock.ts'
import { PROTOCOL_VERSION, type CreateVmRequest, type NodeState, type PlaceResponse, type VmSpec } from '../core/messages.ts'
import type { Chain } from '../core/ownership-messages.ts'
import type { Locality } from '../core/locality.ts'
import type { Rng } from '../core/rng.ts'
import type { VmIndex } from '../core/vm-index.ts'
import { PlaceServer } from '../net/index.ts'
import { DeleteUncertainError, PeerUnreachableError, VmNotFoundError } from './errors.ts'
import type { EventLog } from './event-log.ts'
import type { LocalNode } from './local-node.ts'
import type { ClusterVm, Membership } from './membership.ts'
import type { Metrics } from './metrics.ts'
import type { OwnState } from './own-state.ts'
import type { PeerClient } from './peer-client.ts'
import { type Placed, Placer } from './placer.ts'

/** How long a delete follows a VM that moved before it answers `404`: a few gossip rounds. */
const DELETE_FOLLOW_MS = 5_000
const DELETE_RETRY_MS = 250

export interface PlacementComponents {
  self: string
  config: AgentConfig
  clock: Clock
  rng: Rng
  events: EventLog
  metrics: Metrics
  libp2p: Libp2p
  local: LocalNode
  membership: Membership
  ownState: OwnState
  peers: PeerClient
  vms: VmIndex
  /** This agent's zone and its peers' round trips, when placement goes by locality. */
  locality: () => Locality | undefined
  /** Bad input from a peer: counted and logged once. */
  invalid: (source: string, from: string, reason: string) => void
}

export class PlacementService {
  readonly #c: PlacementComponents
  readonly #placer: Placer
  readonly #server: PlaceServer
  /** VMs this agent is placing now: their `vm.placed` is ours to emit, with its figures, not gossip's. */
  readonly #placing = new Set<string>()

  constructor (components: PlacementComponents) {
    this.#c = components
    const { config, clock, rng, metrics, peers, local, membership } = components
    this.#placer = new Placer({
      nodes: () => this.#placementNodes(),
      send: async (peerId, req) => await peers.place(peerId, req),
      rng,
      sample: config.placementSample,
      leaseTtlMs: config.leaseTtlMs,
      clock,
      sleep: async (ms) => { await sleep(ms) },
      onAttempt: (result) => { metrics.placeAttempts.inc({ result }) },
      locality: components.locality
    })
    this.#server = new PlaceServer({
      libp2p: components.libp2p,
      timeoutMs: config.requestTimeoutMs,
      onInvalid: (from, reason) => { components.invalid('place', from, reason) },
      handle: async (req, from) => {
        membership.heard(from)
        const res = await local.handle(req, from)
        metrics.placeServed.inc({ op: req.op, result: res.ok ? 'ok' : 'refused' })
        return res
      }
    })
  }

  async start (): Promise<void> {
    await this.#server.start()
  }

  async stop (): Promise<void> {
    await this.#server.stop()
  }

  /**
   * Places a new VM. With a bounded fan-out (`connection.maxConnections`,
   * the `local` profile) its first candidates are drawn from this node and
   * the peers it is connected to (placement.ts `near`), and from the whole
   * view only when none of them can host it: most peers are then not
   * connected, and a dial costs both ends 25–30 ms of CPU (noise, identify,
   * gossipsub's subscriptions) before the connection is closed again as idle
   * — measured, 100 agents on one host placed 2.9 VMs/s against the bare
   * libp2p baseline's 31.5 while each create dialled a peer at random. Each
   * agent's connected peers differ, so creates that come in through many
   * agents still spread over the cluster; an unbounded fan-out (`lan`,
   * `wan`) samples the whole view as before.
   */
  async createVm (req: CreateVmRequest): Promise<Placed> {
    const spec = this.#placer.specOf(req)
    this.#c.events.emit('vm.created', { id: spec.id, name: spec.name, cpu: spec.cpu, memMiB: spec.memMiB })
    const near = boundedFanout(this.#c.config.connection) ? this.#near() : undefined
    return await this.#place(spec, async () => await this.#placer.place(req, spec, undefined, near))
  }

  /** This node and the peers it has an open connection to: asking them costs no dial. */
  #near (): Set<string> {
    return new Set([this.#c.self, ...this.#c.libp2p.getConnections().filter(c => c.status === 'open').map(c => c.remotePeer.toString())])
  }

  /**
   * Places a dead owner's VM again, keeping its id and spec: each candidate's
   * commit carries the VM's chain with a restart link naming it (`chainFor`).
   * The first candidates are drawn from this node and the peers it is
   * connected to (placement.ts `near`): right after a death this host is busy,
   * and a new connection to a peer took seconds there (50 agents on 2 cores).
   */
  async restartVm (spec: VmSpec, chainFor: (node: string) => Chain): Promise<Placed> {
    return await this.#place(spec, async () => await this.#placer.place({ cpu: spec.cpu, memMiB: spec.memMiB }, spec, chainFor, this.#near()))
  }

  /** Runs one placement of `spec`, with its events: `vm.placed` (with its figures) or `vm.failed`. */
  async #place (spec: VmSpec, place: () => Promise<Placed>): Promise<Placed> {
    const { events, clock } = this.#c
    const startedAt = clock.now()
    this.#placing.add(spec.id)
    try {
      const placed = await place()
      const changes = this.#c.vms.observe(placed.node, { id: placed.id, cpu: spec.cpu, memMiB: spec.memMiB, state: placed.state })
      events.emit('vm.placed', { id: spec.id, node: placed.node, cpu: spec.cpu, memMiB: spec.memMiB, attempts: placed.attempts, ms: clock.now() - startedAt })
      this.#c.membership.emitVmChanges(changes.filter(c => c.kind === 'running'))
      return placed
    } catch (err: any) {
      events.emit('vm.failed', { id: spec.id, reason: String(err.message), uncertain: err.name === 'PlacementUncertainError', ms: clock.now() - startedAt })
      throw err
    } finally {
      this.#placing.delete(spec.id)
    }
  }

  /** Whether this agent is placing `id` now (its `vm.placed` comes from here). */
  isPlacing (id: string): boolean {
    return this.#placing.has(id)
  }

  /**
   * Deletes a VM wherever it runs. The node our view names may no longer run
   * it (it moved: migrated, or fenced because a later copy runs elsewhere):
   * then the delete follows the VM to the node our view names next, for up to
   * DELETE_FOLLOW_MS — the time gossip takes to tell us — before `404`.
   */
  async deleteVm (id: string): Promise<void> {
    const deadline = this.#c.clock.now() + DELETE_FOLLOW_MS
    const unconfirmed = (node: string): DeleteUncertainError => new DeleteUncertainError(`${id} is deleted on node ${node}, but a holder of its record did not take its tombstone in time: should that node die before it does, the VM may run again`)
    for (;;) {
      this.#refuseStaleDelete(id)
      const outcome = await this.#c.local.remove(id)
      if (outcome === 'deleted') return
      if (outcome === 'unconfirmed') throw unconfirmed(this.#c.self)
      const vm = this.#c.membership.getVm(id)
      if (vm.node !== this.#c.self) {
        let res: PlaceResponse
        try {
          res = await this.#c.peers.place(vm.node, { v: PROTOCOL_VERSION, op: 'delete', vmId: id })
        } catch (err: any) {
          // Sent, then the stream failed: the owner may have deleted the VM (and sent its tombstone) before it died.
          if (err.name !== 'PlaceUnsentError') throw new DeleteUncertainError(`node ${vm.node} that runs ${id} took the delete but did not answer (${err.message}): the VM may be deleted or not`)
          throw new PeerUnreachableError(`node ${vm.node} that runs ${id} cannot be reached: ${err.message}`)
        }
        if (res.ok) return
        if (res.reason === 'unconfirmed') throw unconfirmed(vm.node)
      }
      if (this.#c.clock.now() >= deadline) throw new VmNotFoundError(`node ${vm.node} does not run ${id}`)
      await new Promise(resolve => setTimeout(resolve, DELETE_RETRY_MS))
    }
  }

  /**
   * A delete must reach the latest copy of the VM. When that copy is on a node
   * our view declares dead while a copy at an earlier head still runs on a live
   * one (left behind: its owner was restarted on its data dir and has not heard
   * of the later copy yet), deleting the earlier copy would answer `200` and
   * leave the later one to run on — or be restarted by its holders — with no
   * tombstone to stop it (a chaos run, seed 13: `resurrected`). So the delete
   * is refused (`503 peer_unreachable`) until the later copy is reachable again
   * or restarted elsewhere.
   */
  #refuseStaleDelete (id: string): void {
    const latest = this.#c.membership.latestCopy(id)
    if (latest == null || latest.node === this.#c.self || this.#c.membership.view.get(latest.node)?.status !== 'dead') return
    let live: ClusterVm | undefined
    try { live = this.#c.membership.getVm(id) } catch { return }
    if (live.node === latest.node || live.epoch >= latest.epoch) return
    throw new PeerUnreachableError(`the latest copy of ${id} (epoch ${latest.epoch}) is on node ${latest.node}, which this agent counts as dead; the copy at epoch ${live.epoch} on node ${live.node} is stale: try again once that node is back or the VM restarted elsewhere`)
  }

  #placementNodes (): NodeState[] {
    const self = this.#c.self
    return this.#c.membership.alive().map(s => s.peerId === self ? this.#c.ownState.forPlacement(s) : s)
  }
}
