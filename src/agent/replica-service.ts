/**
 * Replicated VM records and restart on a live peer, as a service: it serves
 * `/discovery/replica/1.0.0` (what it answers: replica-handler.ts) and runs its three parts — the owner's side
 * (replication.ts: records to the k next peers on the ring, again when the
 * ring changes, tombstones on delete), the holder's side (holdings.ts,
 * restarts.ts: records kept durably, the restart rule when the view declares
 * an owner dead) and fencing with proofs (claims.ts: a gossiped epoch above
 * ours is believed only with a valid chain). After a ring change a holder
 * asks live owners about the records they did not send again (`held`), so a
 * holder back from the dead never restarts a VM moved or deleted meanwhile.
 */
import type { Libp2p } from '@libp2p/interface'
import type { Logger } from 'pino'
import type { AgentConfig } from '../config.ts'
import type { Clock } from '../core/clock.ts'
import { derivedFrom, type PeerStatus } from '../core/cluster-view.ts'
import { PROTOCOL_VERSION, type VmSummary } from '../core/messages.ts'
import { checkChain, compareHeads, headOf, originLink, type Signer } from '../core/ownership.ts'
import type { Chain, Tombstone } from '../core/ownership-messages.ts'
import { type ReplicaRequest, replicaRequestSchema, type ReplicaResponse, replicaResponseSchema } from '../core/replica-messages.ts'
import { isGone, processDomain, replicaSet, type StatusOf } from '../core/replica-rule.ts'
import { Ring } from '../core/ring.ts'
import { REPLICA_PROTOCOL, RpcServer } from '../net/index.ts'
import type { ReplicaStore, VmRecord } from '../store/index.ts'
import { Claims } from './claims.ts'
import type { EventLog } from './event-log.ts'
import { Holdings } from './holdings.ts'
import type { LocalNode, OwnershipProofs } from './local-node.ts'
import type { Membership } from './membership.ts'
import type { Metrics } from './metrics.ts'
import type { PeerClient } from './peer-client.ts'
import type { PlacementService } from './placement-service.ts'
import { ReplicaHandler } from './replica-handler.ts'
import { Replication } from './replication.ts'
import { checkRestored, DEFAULT_RESTORED_CHECK, type RestoredCheckReport } from './restored-check.ts'
import { Restarts } from './restarts.ts'
import { thisProcess } from './process-watch.ts'
import { TombstoneIntake } from './tombstone-intake.ts'
import { suspicionTimeoutMs } from '../core/suspicion.ts'

export interface ReplicaComponents {
  self: string
  config: AgentConfig
  clock: Clock
  log: Logger
  events: EventLog
  metrics: Metrics
  libp2p: Libp2p
  signer: Signer
  store: ReplicaStore
  local: LocalNode
  membership: Membership
  peers: PeerClient
  placement: PlacementService
  /** A proved claim above our copy: the migration service stops it (fencing); true when it did. */
  fence: (vmId: string, owner: string, epoch: number) => boolean
  invalid: (source: string, from: string, reason: string) => void
}

export class ReplicaService {
  readonly #c: ReplicaComponents
  readonly #holdings: Holdings
  readonly #replication: Replication
  readonly #restarts: Restarts
  readonly #claims: Claims
  readonly #tombstones: TombstoneIntake
  readonly #handler: ReplicaHandler
  readonly #server: RpcServer<typeof replicaRequestSchema>
  readonly #startedAtMs: number
  readonly #offEvents: Array<() => void> = []
  #lastTickMs?: number
  /** When the holder should ask owners about records they did not send again since `since`. */
  #reconcile?: { atMs: number, since: number }
  /** The ring of the peers not declared dead, ourselves included; rebuilt only when the view's peers change. */
  readonly #ring: () => Ring

  constructor (components: ReplicaComponents) {
    this.#c = components
    const { self, config, clock, log, events, metrics, signer, store, local, placement } = components
    const view = components.membership.view
    this.#ring = derivedFrom(view, () => new Ring([...view.entries().filter(e => e.status !== 'dead').map(e => e.peerId), self]))
    const now = (): number => clock.now()
    this.#startedAtMs = now()
    // The agents of one process die together: a VM's holders are taken from other processes first.
    const ownDomain = processDomain(thisProcess())
    const domainOf = (p: string): string | undefined => p === self ? ownDomain : processDomain(view.get(p)?.state?.process)
    this.#holdings = new Holdings({ self, signer, store, config: config.replica, now })
    this.#replication = new Replication({
      self, config: config.replica, signer, local, holdings: this.#holdings, log, now,
      ring: () => this.#ring(),
      domainOf,
      status: (p) => components.membership.view.get(p)?.status,
      send: async (peer, req) => await this.#send(peer, req),
      // A delete through another agent waits for ours within its own request timeout.
      deleteWaitMs: Math.floor(config.requestTimeoutMs / 2),
      laterOwners: (vmId, t) => this.#tombstones.laterHeads([t], self).map(h => h.owner),
      takeTombstones: (from, ts) => { this.#tombstones.take(from, ts) }
    })
    this.#tombstones = new TombstoneIntake({
      self, signer, local, holdings: this.#holdings, log,
      restartedTo: (vmId) => this.#restarts.restartedTo(vmId),
      clusterVms: () => components.membership.clusterVms(),
      refused: (vmId, from, reason) => { this.#refused(vmId, from, 'tombstone', reason) }
    })
    this.#restarts = new Restarts({
      self, config: config.replica, signer, holdings: this.#holdings, events, metrics, log, now,
      status: this.status,
      place: async (spec, chainFor) => await placement.restartVm(spec, chainFor),
      confirmDead: async (peer, dead) => {
        const res = await this.#send(peer, { v: PROTOCOL_VERSION, op: 'confirm-dead', peerId: dead })
        return res.ok && res.dead === true
      },
      tombstones: async (peer, vmIds) => {
        const asked = now()
        const connected = this.#c.peers.connected(peer)
        const res = await this.#send(peer, { v: PROTOCOL_VERSION, op: 'tombstones', vmIds })
        this.#c.log.info({ component: 'discovery:restart', peer, vms: vmIds.length, connected, ms: now() - asked }, 'tombstones asked before a restart')
        if (!res.ok) throw new Error(res.reason)
        // Kept only when they reach a record we hold (TombstoneIntake): a holder cannot make us forget a VM it did not delete.
        this.#tombstones.take(peer, res.tombstones ?? [])
        // A later designation of the owner's than ours: its restarter decides (the restart already chosen is not made: restarts.ts #act).
        const { adopted, forged } = this.#holdings.adoptDesignations(res.designations ?? [])
        for (const f of forged) this.#refused(f.vmId, peer, 'record', f.reason)
        if (adopted.length > 0) this.#c.log.info({ component: 'discovery:restart', peer, vms: adopted.length }, 'a later designation held by another holder: its restarter restarts these')
        // A copy above our record (restarted already by another holder): proved by its owner (claims.ts), which drops our record.
        const later = new Set<string>()
        for (const h of res.later ?? []) {
          const held = this.#holdings.get(h.vmId)
          // A copy on a peer we count as dead is not waited for: its own holders restart it, or we do.
          if (held != null && !isGone(this.status(h.owner)) && compareHeads(h, headOf(held.record.chain)) > 0 && this.#claims.heard(h.owner, h.vmId, { epoch: h.epoch, owner: h.owner })) later.add(h.vmId)
        }
        return [...later]
      },
      holdersOf: (owner) => replicaSet(this.#ring(), owner, config.replica.replicas, domainOf),
      sendTombstone: async (peer, t) => { await this.#sendTombstone(peer, t) },
      handoff: async (peer, records) => {
        const res = await this.#send(peer, { v: PROTOCOL_VERSION, op: 'handoff', records })
        if (!res.ok) throw new Error(res.reason)
        this.#tombstones.take(peer, res.tombstones ?? [])
        return res.settled ?? []
      }
    })
    this.#claims = new Claims({
      signer, local, holdings: this.#holdings, now,
      fetchChains: async (peer, vmIds) => {
        const res = await this.#send(peer, { v: PROTOCOL_VERSION, op: 'chain', vmIds })
        if (!res.ok) throw new Error(res.reason)
        return new Map((res.chains ?? []).map(c => [c.vmId, c.chain]))
      },
      sendTombstone: async (peer, t) => { await this.#sendTombstone(peer, t) },
      sendChains: async (peer, chains) => { await this.#send(peer, { v: PROTOCOL_VERSION, op: 'claim', chains }) },
      fence: (vmId, owner, epoch) => {
        if (components.fence(vmId, owner, epoch)) events.emit('vm.fenced', { id: vmId, node: owner, epoch })
      },
      refused: (vmId, from, reason) => { this.#refused(vmId, from, 'claim', reason) }
    })
    this.#handler = new ReplicaHandler({
      holdings: this.#holdings, tombstones: this.#tombstones, claims: this.#claims, replication: this.#replication, restarts: this.#restarts,
      local, membership: components.membership, log,
      refused: (vmId, from, what, reason) => { this.#refused(vmId, from, what, reason) }
    })
    this.#server = new RpcServer({
      libp2p: components.libp2p,
      protocol: REPLICA_PROTOCOL,
      schema: replicaRequestSchema,
      timeoutMs: config.requestTimeoutMs,
      onInvalid: (from, reason) => { components.invalid('replica', from, reason) },
      handle: async (req, from) => {
        components.membership.heard(from)
        return await this.#handler.serve(req, from)
      }
    })
  }

  /** The proofs LocalNode makes and checks with our key. */
  static proofs (signer: Signer): OwnershipProofs {
    return {
      origin: (vmId, epoch) => [originLink(vmId, signer, epoch)],
      check: (vmId, chain, kind, from) => {
        const last = chain[chain.length - 1]
        if (last.owner !== signer.self) return `its head names ${last.owner}, not this node`
        if (last.kind !== kind) return `its last link is a ${last.kind}, not a ${kind}`
        if (kind === 'restart' && last.kind === 'restart' && last.by !== from) return `the restart link is by ${last.by}, not by the peer that sent it`
        if (kind === 'migrate' && last.kind === 'migrate' && last.prev.owner !== from) return `the migration is from ${last.prev.owner}, not from the peer that sent it`
        return checkChain(chain, vmId, signer)
      }
    }
  }

  async start (): Promise<void> {
    const loaded = this.#holdings.load()
    if (loaded.corrupt > 0) this.#c.log.warn({ component: 'discovery:replica', corrupt: loaded.corrupt }, 'stored replicas that no longer parse were removed')
    this.#c.log.info({ component: 'discovery:replica', replicas: loaded.replicas, tombstones: loaded.tombstones }, 'replicas loaded')
    const { events } = this.#c
    const ringChanged = (): void => { this.#ringChanged() }
    this.#offEvents.push(
      events.on('peer.joined', ringChanged),
      events.on('peer.alive', (e) => { this.#restarts.peerAlive(e.data.peerId); this.#replication.peerAlive(e.data.peerId); ringChanged() }),
      events.on('peer.dead', (e) => { this.#restarts.peerDead(e.data.peerId); this.#replication.peerDead(); ringChanged() })
    )
    this.#ringChanged()
    await this.#server.start()
  }

  async stop (): Promise<void> {
    for (const off of this.#offEvents.splice(0)) off()
    this.#replication.stop()
    await this.#server.stop()
  }

  /** A VM of ours appeared or left (local-node.ts `onVm`). */
  localVm (rec: VmRecord, what: 'added' | 'state' | 'deleted', why?: 'user' | 'moved'): void {
    if (what === 'added') {
      this.#holdings.supersededBy(rec.spec.id, rec.chain)
      this.#replication.added(rec)
    }
    else if (what === 'deleted' && why === 'moved') this.#replication.moved(rec)
  }

  /** A user deleted a VM of ours: its tombstone reaches its holders first; false when some did not take it in time. */
  async deleted (rec: VmRecord): Promise<boolean> {
    return await this.#replication.deleted(rec)
  }

  /** A peer's gossiped VMs: claims to check, replicas superseded, tombstones to tell (membership.ts `onVmsSeen`). */
  vmsSeen (peer: string, vms: readonly VmSummary[]): void {
    this.#claims.seen(peer, vms)
  }

  /** The chain a migration's commit carries. */
  commitChain (vmId: string, to: string): Chain | undefined {
    return this.#replication.commitChain(vmId, to)
  }

  /** On the agent's tick, before the view's (a pause must be seen before the deaths it makes the view declare). */
  tick (): void {
    const now = this.#c.clock.now()
    const gap = now - (this.#lastTickMs ?? now)
    this.#lastTickMs = now
    if (gap >= this.#c.config.replica.stallMs) {
      this.#restarts.hold(now + this.#c.config.replica.stallHoldMs)
      this.#c.log.warn({ component: 'discovery:restart', pausedMs: gap, holdMs: this.#c.config.replica.stallHoldMs }, 'this agent was paused: deaths declared on waking are not acted on for a while')
    }
    this.#replication.tick()
    this.#restarts.evaluate()
    if (this.#reconcile != null && now >= this.#reconcile.atMs) {
      const since = this.#reconcile.since
      this.#reconcile = undefined
      void this.#askOwners(since)
    }
    this.#holdings.expire()
    this.#c.metrics.replicasHeld.set(this.#holdings.size)
    this.#c.metrics.replicasPending.set(this.#replication.pending)
    this.#c.metrics.tombstones.set(this.#holdings.tombstoneCount)
  }

  /**
   * What this node believes of a peer, for the restart rule: the view's
   * status; a peer it has not heard of counts as suspect until the failure
   * detector could have declared it dead (its longest suspicion, for a
   * hundred members, after our start), so that an agent just started, its
   * view still empty, restarts nothing.
   */
  readonly status: StatusOf = (peerId: string): PeerStatus | undefined => {
    if (peerId === this.#c.self) return 'alive'
    const known = this.#c.membership.view.get(peerId)?.status
    if (known != null) return known
    return this.#c.clock.now() - this.#startedAtMs < this.#startGraceMs() ? 'suspect' : undefined
  }

  #startGraceMs (): number {
    const d = this.#c.config.detector
    return suspicionTimeoutMs(d.suspicionMult, 100, d.probeIntervalMs) * d.suspicionMaxTimeoutMult
  }

  /**
   * Our two neighbours on the replica ring, kept connected (net/redialer.ts
   * `keep`): our successor holds our VMs and is the other holder of our
   * predecessor's — the one we ask for tombstones before restarting them.
   */
  neighbours (): string[] {
    const ring = this.#ring()
    return [...new Set([ring.successor(this.#c.self), ring.predecessor(this.#c.self)])].filter((p): p is string => p != null)
  }

  #ringChanged (): void {
    this.#replication.ringChanged()
    const now = this.#c.clock.now()
    this.#reconcile = { atMs: now + this.#c.config.replica.reconcileAfterMs, since: now }
  }

  /** Asks each live owner about the records it did not send again since the ring changed. */
  async #askOwners (since: number): Promise<void> {
    const stale = new Map<string, string[]>()
    for (const r of this.#holdings.all()) {
      const owner = headOf(r.record.chain).owner
      if (r.receivedAtMs >= since || this.#c.membership.view.get(owner)?.status !== 'alive') continue
      const ids = stale.get(owner) ?? []
      ids.push(r.record.spec.id)
      stale.set(owner, ids)
    }
    await Promise.all([...stale].map(async ([owner, vmIds]) => {
      try {
        const res = await this.#send(owner, { v: PROTOCOL_VERSION, op: 'held', vmIds })
        if (!res.ok) return
        this.#tombstones.take(owner, res.tombstones ?? [])
        const drop = new Set(res.drop ?? [])
        this.#holdings.drop(vmIds.filter(id => drop.has(id)))
      } catch {}
    }))
  }

  /**
   * Asks connected peers what became of the VMs restored from disk while
   * this agent was away (restored-check.ts): later copies are proved and
   * fence ours, tombstones delete them. `waitForPeers`: peers are to be
   * dialled (bootstrap, mDNS), so a first connection is waited for.
   */
  async checkRestored (peers: () => string[], waitForPeers: boolean): Promise<RestoredCheckReport> {
    const { local, clock, log } = this.#c
    return await checkRestored({
      log,
      heads: () => local.records().filter(r => r.chain.length > 0).map(r => ({ vmId: r.spec.id, ...headOf(r.chain) })),
      peers,
      ask: async (peer, heads) => {
        const res = await this.#send(peer, { v: PROTOCOL_VERSION, op: 'heads', heads })
        if (!res.ok) throw new Error(res.reason)
        return { later: res.later ?? [], tombstones: res.tombstones ?? [] }
      },
      heard: (owner, vmId, head) => { this.#claims.heard(owner, vmId, head) },
      tombstones: (from, ts) => { this.#tombstones.take(from, ts) },
      sleep: async (ms) => { await new Promise(resolve => setTimeout(resolve, ms)) },
      now: () => clock.now()
    }, { ...DEFAULT_RESTORED_CHECK, connectWithinMs: waitForPeers ? DEFAULT_RESTORED_CHECK.connectWithinMs : 0 })
  }

  #refused (vmId: string, from: string, what: 'claim' | 'record' | 'tombstone', reason: string): void {
    this.#c.invalid('epoch', from, `${what} for ${vmId}: ${reason}`)
    this.#c.events.emit('replica.refused', { vmId, from, what, reason: reason.slice(0, 300) })
  }

  /** Sends `peer` one tombstone (`delete`); a refusal is an error. */
  async #sendTombstone (peer: string, t: Tombstone): Promise<void> {
    const res = await this.#send(peer, { v: PROTOCOL_VERSION, op: 'delete', tombstones: [t] })
    if (!res.ok) throw new Error(res.reason)
  }

  async #send (peer: string, req: ReplicaRequest): Promise<ReplicaResponse> {
    try {
      const res = await this.#c.peers.rpc(peer, REPLICA_PROTOCOL, req, replicaResponseSchema)
      this.#c.metrics.replicaMessages.inc({ op: req.op, result: res.ok ? 'ok' : 'refused' })
      return res
    } catch (err) {
      this.#c.metrics.replicaMessages.inc({ op: req.op, result: 'failed' })
      throw err
    }
  }
}
