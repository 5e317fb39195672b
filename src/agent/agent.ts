/**
 * The composition root: wires core (view, ledger, placement), net (libp2p,
 * gossip, place protocol, dialing), the hypervisor driver and the store, and
 * owns the timers. Network and API events come in; core decides; the agent
 * carries the decisions out.
 */
import type { Libp2p, PeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from 'pino'
import type { AgentConfig } from '../config.ts'
import { ClusterView, type PeerStatus } from '../core/cluster-view.ts'
import { Ledger } from '../core/ledger.ts'
import type { CreateVmRequest, NodeState, PlaceRequest, PlaceResponse, VmSummary } from '../core/messages.ts'
import { PROTOCOL_VERSION } from '../core/messages.ts'
import type { MigrationRecord } from '../core/migration-fsm.ts'
import { filterCandidates, rankCandidates } from '../core/placement.ts'
import type { HostLoad } from '../core/planner.ts'
import type { Note, RebalanceMessage } from '../core/rebalance.ts'
import { migrateRequestSchema, migrateResponseSchema, rebalanceMessageSchema, type MigrateRequest, type MigrateResponse } from '../core/rebalance-messages.ts'
import { Ring } from '../core/ring.ts'
import { RpcServer, rpcRequest } from '../net/rpc.ts'
import { Migrations } from './migrations.ts'
import { Rebalancer } from './rebalancer.ts'
import { createDriver, type Driver } from '../hypervisor/index.ts'
import { createHost, PlaceServer, placeRequest, Redialer, StateGossip } from '../net/index.ts'
import { loadOrCreateIdentity, Store } from '../store/index.ts'
import { MigrationRefusedError, NoCapacityError, PeerUnreachableError, VmNotFoundError } from './errors.ts'
import { LocalNode, summarize } from './local-node.ts'
import { EventLog } from './event-log.ts'
import { createMetrics, type Metrics } from './metrics.ts'
import { newVmId, type Placed, Placer } from './placer.ts'
import { StatePublisher } from './state-publisher.ts'
import { VmWaiters } from './vm-waiters.ts'

export const VERSION = '0.1.0'
/** Requests that may wait for a VM at once (`GET /v1/vms/:id?wait=`); more are answered at once. */
const MAX_VM_WAITERS = 10_000
/** Parsed peer ids kept (`#peerIdOf`); the cache starts over beyond this. */
const MAX_PEER_IDS = 10_000
/** The longest wait a request may ask for. */
export const MAX_VM_WAIT_MS = 60_000

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

export const MIGRATE_PROTOCOL = '/discovery/migrate/1.0.0'
export const REBALANCE_PROTOCOL = '/discovery/rebalance/1.0.0'

export interface RebalanceEventView {
  atMs: number
  note: Note
}

export class Agent {
  readonly config: AgentConfig
  readonly log: Logger
  readonly metrics: Metrics
  /** What this agent did and saw, in order: `GET /v1/events` streams it. */
  readonly events: EventLog
  readonly libp2p: Libp2p
  readonly peerId: string
  readonly startedAtMs: number
  readonly version = VERSION
  apiUrl?: string
  readonly #store: Store
  readonly #driver: Driver
  readonly #local: LocalNode
  readonly #view: ClusterView
  readonly #gossip: StateGossip
  readonly #placeServer: PlaceServer
  readonly #publisher: StatePublisher
  readonly #redialer: Redialer
  readonly #placer: Placer
  readonly #incarnation: number
  readonly #migrations: Migrations
  readonly #rebalancer: Rebalancer
  readonly #migrateServer: RpcServer<typeof migrateRequestSchema>
  readonly #rebalanceServer: RpcServer<typeof rebalanceMessageSchema>
  readonly #rebalanceEvents: RebalanceEventView[] = []
  readonly #vmWaiters = new VmWaiters(MAX_VM_WAITERS)
  readonly #peerIds = new Map<string, PeerId>()
  #ring?: { key: string, ring: Ring }
  #seq = 0
  #tick?: NodeJS.Timeout
  #stopped = false
  /** Peers whose bad input we already logged: logged once, counted always. */
  readonly #loggedInvalid = new Set<string>()

  private constructor (config: AgentConfig, log: Logger, store: Store, libp2p: Libp2p, driver: Driver) {
    this.config = config
    this.log = log
    this.#store = store
    this.libp2p = libp2p
    this.#driver = driver
    this.peerId = libp2p.peerId.toString()
    this.startedAtMs = Date.now()
    this.#incarnation = this.startedAtMs
    this.metrics = createMetrics()
    this.events = new EventLog({ clock: { now: () => Date.now() } })
    this.#view = new ClusterView(this.peerId, config.view)
    const ledger = new Ledger(config.capacity, config.cpuOvercommit)
    this.#local = new LocalNode({
      ledger,
      store,
      driver,
      labels: config.labels,
      now: Date.now,
      onChange: (change) => {
        this.#publisher?.changed(change)
        if (change === 'vms') this.#vmWaiters.check(id => this.#local.get(id) != null)
      }
    })
    const pubsub = (libp2p as any).services.pubsub
    this.#gossip = new StateGossip({
      pubsub,
      onState: (state) => { this.#onState(state) },
      onInvalid: (from, reason) => { this.#invalid('gossip', from, reason) },
      // A new subscriber learns our state now rather than at the next refresh (floodPublish reaches it before the mesh forms).
      onPeerSubscribed: () => { this.#publisher?.changed('vms') }
    })
    this.#placeServer = new PlaceServer({
      libp2p,
      timeoutMs: config.requestTimeoutMs,
      onInvalid: (from, reason) => { this.#invalid('place', from, reason) },
      handle: async (req, from) => {
        this.#view.heard(from, Date.now())
        const res = await this.#local.handle(req)
        this.metrics.placeServed.inc({ op: req.op, result: res.ok ? 'ok' : 'refused' })
        return res
      }
    })
    this.#publisher = new StatePublisher({
      config: config.gossip,
      build: (next) => this.#buildState(next),
      load: () => {
        const l = this.#local.ledger
        return { cpu: l.used.cpu + l.reserved.cpu, memMiB: l.used.memMiB + l.reserved.memMiB, capCpu: l.capacity.cpu, capMemMiB: l.capacity.memMiB }
      },
      peers: () => this.#view.size,
      publish: async (state) => {
        this.#view.merge(state, Date.now())
        await this.#gossip.publish(state)
        this.metrics.gossipPublished.inc()
      },
      onError: (err) => { this.log.warn({ component: 'discovery:gossip', err: err.message }, 'publish failed') }
    })
    this.#redialer = new Redialer({
      libp2p,
      bootstrap: config.bootstrap,
      known: () => this.#knownAddrs(),
      minConnections: Math.min(4, Math.max(1, config.bootstrap.length)),
      minMs: config.redialMinMs,
      maxMs: config.redialMaxMs,
      checkEveryMs: 1_000,
      onDialError: (addr, err) => { this.log.debug({ component: 'discovery:dial', addr, err: err.message }, 'dial failed') }
    })
    this.#migrations = new Migrations({
      self: this.peerId,
      local: this.#local,
      driver,
      config: config.migration,
      now: Date.now,
      send: async (peerId, req) => await this.#rpc(peerId, MIGRATE_PROTOCOL, req, migrateResponseSchema) as MigrateResponse,
      partition: () => this.#rebalancer?.partitionId,
      onEnded: (r) => {
        this.metrics.migrations.inc({ result: r.phase })
        this.log.info({ component: 'discovery:migration', migration: r.id, vm: r.vmId, to: r.to, phase: r.phase, reason: r.reason, totalMs: r.totalMs, downtimeMs: r.downtimeMs }, 'migration ended')
      }
    })
    this.#rebalancer = new Rebalancer({
      self: this.peerId,
      config: config.rebalance,
      monitorMs: config.monitorIntervalMs,
      local: () => this.hostLoad(),
      ring: () => this.#currentRing(),
      now: Date.now,
      send: async (peerId, msg) => { await this.#rpc(peerId, REBALANCE_PROTOCOL, { v: PROTOCOL_VERSION, msg }, migrateResponseSchema) },
      migrate: async (vmId, to, partitionId) => await this.#migrations.migrate(vmId, to, partitionId),
      onNote: (note) => {
        this.#rebalanceEvents.push({ atMs: Date.now(), note })
        if (this.#rebalanceEvents.length > 500) this.#rebalanceEvents.shift()
        this.metrics.rebalanceNotes.inc({ kind: note.kind === 'ended' ? `ended-${note.outcome}` : note.kind })
        this.log.info({ component: 'discovery:rebalance', ...note }, 'rebalance')
      },
      onError: (what, err) => { this.log.warn({ component: 'discovery:rebalance', what, err: err.message }, 'rebalance message failed') }
    })
    this.#migrateServer = new RpcServer({
      libp2p,
      protocol: MIGRATE_PROTOCOL,
      schema: migrateRequestSchema,
      timeoutMs: config.requestTimeoutMs,
      onInvalid: (from, reason) => { this.#invalid('migrate', from, reason) },
      handle: async (req, from) => {
        this.#view.heard(from, Date.now())
        return await this.#serveMigrate(req)
      }
    })
    this.#rebalanceServer = new RpcServer({
      libp2p,
      protocol: REBALANCE_PROTOCOL,
      schema: rebalanceMessageSchema,
      timeoutMs: config.requestTimeoutMs,
      onInvalid: (from, reason) => { this.#invalid('rebalance', from, reason) },
      handle: async (req, from) => {
        this.#view.heard(from, Date.now())
        this.#rebalancer.receive(from, req.msg as RebalanceMessage)
        return { v: PROTOCOL_VERSION, ok: true }
      }
    })
    this.#placer = new Placer({
      self: this.peerId,
      nodes: () => this.#placementNodes(),
      send: async (peerId, req) => await this.#send(peerId, req),
      rng: { next: Math.random },
      sample: config.placementSample,
      leaseTtlMs: config.leaseTtlMs,
      now: Date.now,
      sleep: async (ms) => { await sleep(ms) },
      onAttempt: (result) => { this.metrics.placeAttempts.inc({ result }) }
    })
  }

  /** Opens the store, restores identity and VMs, joins the network. */
  static async start (config: AgentConfig, log: Logger): Promise<Agent> {
    const store = Store.open(config.dataDir)
    try {
      const privateKey = await loadOrCreateIdentity(store)
      const libp2p = await createHost({ privateKey, listen: config.listen, swarmKeyFile: config.swarmKeyFile, meshDegree: config.gossip.meshDegree, pingIntervalMs: config.connection.pingIntervalMs, pingTimeoutMs: config.connection.pingTimeoutMs })
      const agent = new Agent(config, log, store, libp2p, createDriver(config))
      await agent.#start()
      return agent
    } catch (err) {
      store.close()
      throw err
    }
  }

  async #start (): Promise<void> {
    const restored = await this.#local.restore()
    this.#gossip.start()
    await this.#placeServer.start()
    await this.#migrateServer.start()
    await this.#rebalanceServer.start()
    this.libp2p.addEventListener('peer:disconnect', (evt) => {
      const id = evt.detail.toString()
      this.metrics.disconnects.inc()
      this.log.debug({ component: 'discovery:membership', peer: id }, 'peer disconnected')
      this.#view.disconnected(id, Date.now())
      this.#migrations.peerLost(id)
    })
    this.libp2p.addEventListener('peer:connect', (evt) => {
      this.#view.heard(evt.detail.toString(), Date.now())
    })
    this.#view.merge(this.#buildState(true), Date.now())
    this.#publisher.start()
    this.#redialer.start()
    this.#rebalancer.start()
    this.#tick = setInterval(() => { this.#onTick() }, this.config.tickIntervalMs)
    this.#tick.unref()
    this.metrics.capacity.set({ resource: 'cpu' }, this.config.capacity.cpu)
    this.metrics.capacity.set({ resource: 'memMiB' }, this.config.capacity.memMiB)
    this.log.info({ component: 'discovery:agent', peerId: this.peerId, addrs: this.addrs(), restoredVms: restored }, 'agent started')
  }

  async stop (): Promise<void> {
    if (this.#stopped) return
    this.#stopped = true
    if (this.#tick != null) clearInterval(this.#tick)
    this.#vmWaiters.clear()
    this.#publisher.stop()
    this.#redialer.stop()
    this.#rebalancer.stop()
    this.#migrations.stop()
    await this.#migrateServer.stop()
    await this.#rebalanceServer.stop()
    this.#gossip.stop()
    await this.#placeServer.stop()
    await this.libp2p.stop()
    await this.#driver.stop()
    this.#store.close()
    this.log.info({ component: 'discovery:agent' }, 'agent stopped')
  }

  addrs (): string[] {
    return this.libp2p.getMultiaddrs().map(a => a.toString())
  }

  uptimeS (): number {
    return Math.round((Date.now() - this.startedAtMs) / 1000)
  }

  nodes (): NodeView[] {
    const now = Date.now()
    return this.#view.entries().map(e => {
      const s = e.peerId === this.peerId ? this.#buildState(false) : e.state
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
        state: e.peerId === this.peerId ? 'alive' : e.status,
        lastSeenMs: e.peerId === this.peerId ? 0 : Math.max(0, now - e.lastSeenMs)
      }
      if (s.api != null) out.api = s.api
      return out
    })
  }

  /** This agent's own VMs. */
  localVms (): ClusterVm[] {
    return this.#local.summaries().map(vm => ({ ...vm, node: this.peerId }))
  }

  /** Every VM this agent knows of: its own, fresh, and those gossiped by live or suspect peers. */
  clusterVms (): ClusterVm[] {
    const out = this.localVms()
    for (const e of this.#view.entries()) {
      if (e.peerId === this.peerId || e.status === 'dead') continue
      for (const vm of e.state.vms) out.push({ ...vm, node: e.peerId })
    }
    return out
  }

  getVm (id: string): ClusterVm {
    const local = this.#local.get(id)
    if (local != null) return { ...summarize(local), node: this.peerId }
    const found = this.clusterVms().find(vm => vm.id === id)
    if (found == null) throw new VmNotFoundError(`no VM ${id} is known to this agent`)
    return found
  }

  /** `getVm`, waiting up to `timeoutMs` for a VM this agent does not know yet (placed elsewhere, not yet gossiped). */
  async waitForVm (id: string, timeoutMs: number): Promise<ClusterVm> {
    try {
      return this.getVm(id)
    } catch (err: any) {
      if (err.name !== 'VmNotFoundError' || this.#stopped) throw err
    }
    await this.#vmWaiters.wait(id, timeoutMs)
    return this.getVm(id)
  }

  async createVm (req: CreateVmRequest): Promise<Placed> {
    const end = this.metrics.createSeconds.startTimer()
    const startedMs = Date.now()
    const id = newVmId()
    this.events.emit('vm.created', { id, name: req.name ?? id, cpu: req.cpu, memMiB: req.memMiB })
    try {
      const placed = await this.#placer.place(req, id)
      this.events.emit('vm.placed', { id, node: placed.node, cpu: req.cpu, memMiB: req.memMiB, ms: Date.now() - startedMs })
      this.metrics.placements.inc({ result: 'placed' })
      // Debug, not info: at hundreds of creates a second, one line each is a cost of its own.
      this.log.debug({ component: 'discovery:placement', vm: placed.id, node: placed.node }, 'vm placed')
      return placed
    } catch (err: any) {
      const noCapacity = err.name === 'NoCapacityError'
      this.events.emit('vm.failed', { id, reason: err.message, uncertain: err.name === 'PlacementUncertainError' })
      this.metrics.placements.inc({ result: noCapacity ? 'no-capacity' : 'failed' })
      if (!noCapacity) this.log.warn({ component: 'discovery:placement', err: err.message }, 'placement failed')
      throw err
    } finally {
      end()
    }
  }

  async deleteVm (id: string): Promise<void> {
    if (await this.#local.deleteVm(id)) return
    const vm = this.getVm(id)
    let res: PlaceResponse
    try {
      res = await this.#send(vm.node, { v: PROTOCOL_VERSION, op: 'delete', vmId: id })
    } catch (err: any) {
      throw new PeerUnreachableError(`node ${vm.node} that runs ${id} cannot be reached: ${err.message}`)
    }
    if (!res.ok) throw new VmNotFoundError(`node ${vm.node} does not run ${id}`)
  }

  async #send (peerId: string, req: PlaceRequest): Promise<PlaceResponse> {
    if (peerId === this.peerId) return await this.#local.handle(req)
    const res = await placeRequest(this.libp2p, this.#dialTarget(peerId), req, this.config.requestTimeoutMs)
    this.#view.heard(peerId, Date.now())
    return res
  }

  #buildState (next: boolean): NodeState {
    if (next) this.#seq++
    const ledger = this.#local.ledger
    const state: NodeState = {
      v: PROTOCOL_VERSION,
      peerId: this.peerId,
      incarnation: this.#incarnation,
      seq: this.#seq,
      addrs: [...new Set(this.addrs().map(a => a.replace(/\/p2p\/[^/]+$/, '')))].slice(0, 16),
      capacity: this.config.capacity,
      cpuOvercommit: this.config.cpuOvercommit,
      used: ledger.used,
      reserved: ledger.reserved,
      labels: this.config.labels,
      vms: this.#local.summaries(),
      demand: Math.round(this.#local.records().reduce((a, r) => a + this.#driver.demand(r.spec.id) * r.spec.cpu, 0) * 100) / 100
    }
    if (this.#isIdle()) state.idle = true
    if (this.apiUrl != null) state.api = this.apiUrl
    return state
  }

  #placementNodes (): NodeState[] {
    return this.#view.alive().map(s => s.peerId === this.peerId ? this.#placementSelf(s) : s)
  }

  /**
   * Our own entry as placement reads it, on every create: usage, reservations
   * and VMs (for spread groups) fresh; addresses and demand as last published,
   * which placement does not read (building them is most of `#buildState`).
   */
  #placementSelf (published: NodeState): NodeState {
    const ledger = this.#local.ledger
    const { idle: _idle, ...rest } = published
    const state: NodeState = { ...rest, used: ledger.used, reserved: ledger.reserved, vms: this.#local.summaries() }
    if (this.#isIdle()) state.idle = true
    return state
  }

  /** Peer ids parsed once: base58, multihash and key decoding on every request otherwise. */
  #peerIdOf (peerId: string): PeerId {
    let id = this.#peerIds.get(peerId)
    if (id == null) {
      id = peerIdFromString(peerId)
      if (this.#peerIds.size >= MAX_PEER_IDS) this.#peerIds.clear()
      this.#peerIds.set(peerId, id)
    }
    return id
  }

  #knownAddrs (): string[] {
    const out: string[] = []
    for (const e of this.#view.entries()) {
      if (e.peerId === this.peerId || e.status === 'dead') continue
      for (const a of e.state.addrs) out.push(`${a}/p2p/${e.peerId}`)
    }
    return out
  }

  #onState (state: NodeState): void {
    if (state.peerId === this.peerId) return
    const now = Date.now()
    this.#publisher.heard()
    const result = this.#view.merge(state, now)
    this.#view.heard(state.peerId, now)
    this.metrics.gossipReceived.inc({ result })
    if (result !== 'stale') {
      this.#fence(state)
      if (this.#vmWaiters.size > 0) this.#vmWaiters.seen(state.vms.map(vm => vm.id))
    }
  }

  /** A peer runs one of our VMs at a higher epoch: it owns it now, so we stop our copy (fencing). */
  #fence (state: NodeState): void {
    for (const vm of state.vms) {
      const local = this.#local.get(vm.id)
      if (local == null || vm.epoch <= local.epoch) continue
      this.#migrations.fenced(vm.id)
      if (this.#local.get(vm.id) != null && this.#local.get(vm.id)!.state !== 'migrating') {
        this.log.warn({ component: 'discovery:fencing', vm: vm.id, ours: local.epoch, theirs: vm.epoch, owner: state.peerId }, 'a higher epoch runs elsewhere: stopping our copy')
        void this.#local.deleteVm(vm.id)
      }
    }
  }

  /** This node as the rebalancing planner sees it: VMs with their current demand, reservations as one more VM. */
  hostLoad (): HostLoad {
    const vms: HostLoad['vms'] = this.#local.records().map(r => {
      const v: HostLoad['vms'][number] = { id: r.spec.id, cpu: r.spec.cpu, memMiB: r.spec.memMiB, demand: this.#driver.demand(r.spec.id) * r.spec.cpu }
      if (r.spec.constraints?.spread != null) v.spread = r.spec.constraints.spread
      return v
    })
    const reserved = this.#local.ledger.reserved
    if (reserved.cpu > 0 || reserved.memMiB > 0) vms.push({ id: 'reserved', cpu: reserved.cpu, memMiB: reserved.memMiB, demand: reserved.cpu, pinned: true })
    return { peerId: this.peerId, capacity: this.config.capacity, cpuOvercommit: this.config.cpuOvercommit, vms, labels: this.config.labels, idle: this.#isIdle() }
  }

  /** With consolidation on, a node left without VMs is idle: in a real deployment, powered down until needed. */
  #isIdle (): boolean {
    return this.config.rebalance.consolidate && this.#local.records().length === 0 && this.#local.ledger.leaseCount === 0
  }

  #currentRing (): Ring {
    const ids = this.#view.alive().map(s => s.peerId)
    if (!ids.includes(this.peerId)) ids.push(this.peerId)
    const key = ids.sort().join(',')
    if (this.#ring?.key !== key) this.#ring = { key, ring: new Ring(ids) }
    return this.#ring.ring
  }

  /** The peer itself when we are connected (or know no address); else its gossiped addresses. */
  #dialTarget (peerId: string): PeerId | Multiaddr[] {
    const id = this.#peerIdOf(peerId)
    const entry = this.#view.get(peerId)
    return this.libp2p.getConnections(id).length > 0 || entry == null ? id : entry.state.addrs.map(a => multiaddr(`${a}/p2p/${peerId}`))
  }

  async #rpc (peerId: string, protocol: string, req: unknown, schema: typeof migrateResponseSchema): Promise<unknown> {
    const res = await rpcRequest(this.libp2p, this.#dialTarget(peerId), protocol, req, schema, this.config.requestTimeoutMs)
    this.#view.heard(peerId, Date.now())
    return res
  }

  async #serveMigrate (req: MigrateRequest): Promise<MigrateResponse> {
    if (req.op === 'request') {
      try {
        const migration = await this.migrateVm(req.vmId, req.to)
        return migration.phase === 'committed' ? { v: PROTOCOL_VERSION, ok: true, migration } : { v: PROTOCOL_VERSION, ok: false, reason: migration.reason ?? 'aborted', migration }
      } catch (err: any) {
        return { v: PROTOCOL_VERSION, ok: false, reason: `${err.name}: ${err.message}` }
      }
    }
    if (req.op === 'propose') {
      // The destination must stay within its cores once the VM's demand arrives.
      const load = this.hostLoad()
      const demand = load.vms.reduce((a, v) => a + v.demand, 0)
      if (demand + req.demand > this.config.capacity.cpu + 1e-9) return { v: PROTOCOL_VERSION, ok: false, reason: `taking ${req.vm.id} (demand ${req.demand.toFixed(2)} vCPU) would overload this node (demand ${demand.toFixed(2)} of ${this.config.capacity.cpu} cores)` }
    }
    return await this.#migrations.handle(req)
  }

  /**
   * Live-migrates a VM: ours directly; another node's by asking its owner.
   * Without `to`, the destination is chosen like a placement (excluding the VM's node).
   */
  async migrateVm (id: string, to?: string): Promise<MigrationRecord> {
    const local = this.#local.get(id)
    if (local == null) {
      const vm = this.getVm(id)
      let res: MigrateResponse
      try {
        res = await this.#rpc(vm.node, MIGRATE_PROTOCOL, { v: PROTOCOL_VERSION, op: 'request', vmId: id, ...(to != null ? { to } : {}) }, migrateResponseSchema) as MigrateResponse
      } catch (err: any) {
        throw new PeerUnreachableError(`node ${vm.node} that runs ${id} cannot be reached: ${err.message}`)
      }
      if (res.migration != null) return res.migration
      if (!res.ok) throw new MigrationRefusedError(res.reason)
      throw new MigrationRefusedError('the owner did not return the migration')
    }
    let dest = to
    if (dest == null) {
      const nodes = this.#view.alive().filter(s => s.peerId !== this.peerId)
      const { candidates } = filterCandidates(nodes, { resources: { cpu: local.spec.cpu, memMiB: local.spec.memMiB }, constraints: local.spec.constraints })
      if (candidates.length === 0) throw new NoCapacityError(`no other node can host ${id} (${local.spec.cpu} vCPU / ${local.spec.memMiB} MiB)`)
      dest = rankCandidates(candidates, { next: Math.random }, candidates.length)[0].peerId
    } else if (dest === this.peerId) {
      throw new MigrationRefusedError(`${id} already runs on ${dest}`)
    } else if (this.#view.get(dest)?.status !== 'alive') {
      throw new PeerUnreachableError(`no live peer ${dest} is known to this agent`)
    }
    return await this.#migrations.migrate(id, dest)
  }

  migrations (): MigrationRecord[] {
    return this.#migrations.list()
  }

  rebalanceEvents (): RebalanceEventView[] {
    return [...this.#rebalanceEvents]
  }

  /** Sim driver: forces the demand of one of our VMs (a fraction of its vCPUs). */
  setDemand (id: string, demand: number): void {
    if (this.#local.get(id) == null) throw new VmNotFoundError(`${id} does not run on this agent: set its demand through the agent that runs it`)
    this.#driver.setDemand(id, demand)
  }

  #onTick (): void {
    const now = Date.now()
    this.#local.tick()
    // An open connection is a sign of life: libp2p's connection monitor pings it and closes it when the peer is gone.
    for (const conn of this.libp2p.getConnections()) this.#view.heard(conn.remotePeer.toString(), now)
    for (const change of this.#view.tick(now, this.#publisher.refreshIntervalMs())) {
      if (change.to !== 'alive') this.#migrations.peerLost(change.peerId)
      this.log.info({ component: 'discovery:membership', peer: change.peerId, from: change.from, to: change.to }, 'peer status changed')
    }
    const counts = { alive: 0, suspect: 0, dead: 0 }
    for (const e of this.#view.entries()) counts[e.status]++
    for (const [status, n] of Object.entries(counts)) this.metrics.peers.set({ status }, n)
    const byState: Record<string, number> = { creating: 0, running: 0, stopped: 0, migrating: 0 }
    for (const vm of this.#local.records()) byState[vm.state] = (byState[vm.state] ?? 0) + 1
    for (const [state, n] of Object.entries(byState)) this.metrics.vms.set({ state }, n)
    const ledger = this.#local.ledger
    this.metrics.used.set({ resource: 'cpu' }, ledger.used.cpu)
    this.metrics.used.set({ resource: 'memMiB' }, ledger.used.memMiB)
    this.metrics.reserved.set({ resource: 'cpu' }, ledger.reserved.cpu)
    this.metrics.reserved.set({ resource: 'memMiB' }, ledger.reserved.memMiB)
    this.metrics.connections.set(this.libp2p.getConnections().length)
  }

  /** Bad input from a peer or the API: counted always, logged once per source and sender. */
  #invalid (source: string, from: string, reason: string): void {
    this.metrics.invalidMessages.inc({ source })
    const key = `${source}:${from}`
    if (this.#loggedInvalid.has(key) || this.#loggedInvalid.size > 10_000) return
    this.#loggedInvalid.add(key)
    this.log.warn({ component: `discovery:${source}`, from, reason }, 'invalid message dropped')
  }

  /** For the API edge: bad input there is counted in the same metric. */
  invalidApiInput (reason: string): void {
    this.#invalid('api', 'client', reason)
  }
}
