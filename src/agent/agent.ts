/**
 * The composition root: it opens the store, starts libp2p and the driver,
 * wires the services (membership and view, our own state, placement,
 * migration, rebalancing, replicas and restarts, the peer client, metrics)
 * and owns the timers.
 * Network and API events come in, core decides, the services carry the
 * decisions out. What the API asks of the agent is answered by a service;
 * the methods here only route it.
 */
import type { Libp2p, PrivateKey } from '@libp2p/interface'
import type { Logger } from 'pino'
import { type AgentConfig, boundedFanout } from '../config.ts'
import type { Clock } from '../core/clock.ts'
import { Ledger } from '../core/ledger.ts'
import { type Locality, zoneOf } from '../core/locality.ts'
import type { CreateVmRequest } from '../core/messages.ts'
import type { MigrationRecord } from '../core/migrate-messages.ts'
import type { Rng } from '../core/rng.ts'
import { VmIndex } from '../core/vm-index.ts'
import type { Driver, VmStats } from '../hypervisor/index.ts'
import { type BlockedPeer, createHost, Farewell, type PartitionDirection, PartitionGater, type Redialer, StateGossip } from '../net/index.ts'
import { loadOrCreateIdentity, ReplicaStore, Store } from '../store/index.ts'
import { startDriver } from './driver-setup.ts'
import { AdminPartitions } from './admin-partitions.ts'
import { DemandMeasuredError, VmNotFoundError } from './errors.ts'
import { InvalidInput } from './invalid-input.ts'
import { EventLog } from './event-log.ts'
import { logEvents } from './event-logging.ts'
import { FailureDetection } from './failure-detection.ts'
import { LocalNode, summarize } from './local-node.ts'
import { type ClusterVm, Membership, type NodeView } from './membership.ts'
import { countConnections, countEvents, createMetrics, type Metrics, sampleNode, zeroCounters } from './metrics.ts'
import { MigrationService } from './migration-service.ts'
import { OwnState } from './own-state.ts'
import { PeerClient } from './peer-client.ts'
import { PeerExchange } from './peer-exchange.ts'
import { PlacementService } from './placement-service.ts'
import { createRedialer } from './redialer-setup.ts'
import type { Placed } from './placer.ts'
import { RebalanceService, type RebalanceEventView } from './rebalance-service.ts'
import { ReplicaService } from './replica-service.ts'
import { ed25519Signer } from './signer.ts'
import { agentRng, systemClock } from './runtime.ts'
import { RttService } from './rtt-service.ts'
import { VmKeeper } from './vm-keeper.ts'
import { type AlignedTask, everyAligned } from '../net/aligned-timers.ts'

export const VERSION = '0.1.0'
/** The longest wait a request may ask for (`GET /v1/vms/:id?wait=`). */
export const MAX_VM_WAIT_MS = 60_000
/** Between two mDNS queries (`--mdns`): libp2p's default, 10 s; a new agent announces itself at start anyway. */
const MDNS_INTERVAL_MS = 10_000

export type { ClusterVm, NodeView, RebalanceEventView }

/** A VM's cost to its host: CPU time of its vCPUs and of its whole process since it started, resident memory, and its demand now (a fraction of its vCPUs). */
export type VmStatsView = VmStats & { demand: number }
export type LocalVm = ClusterVm & { stats?: VmStatsView }

export class Agent {
  readonly config: AgentConfig
  readonly log: Logger
  readonly metrics: Metrics
  readonly events: EventLog
  readonly libp2p: Libp2p
  readonly peerId: string
  readonly startedAtMs: number
  readonly version = VERSION
  /** The seed of this run's decisions (placement sampling, refresh jitter): logged, so a run can be replayed. */
  readonly rngSeed: number
  readonly #clock: Clock
  readonly #store: Store
  readonly #driver: Driver
  readonly #local: LocalNode
  readonly #gossip: StateGossip
  readonly #membership: Membership
  readonly #detection: FailureDetection
  readonly #ownState: OwnState
  readonly #peers: PeerClient
  readonly #placement: PlacementService
  readonly #migrations: MigrationService
  readonly #rebalance: RebalanceService
  readonly #replica: ReplicaService
  readonly #redialer: Redialer
  readonly #farewell: Farewell
  readonly #exchange: PeerExchange
  readonly #keeper: VmKeeper
  readonly #rtt: RttService
  /** Admin partitions: refused without `--admin`. */
  readonly #admin: AdminPartitions
  readonly #invalidInput: InvalidInput
  /** Counts and logs (once per sender) bad input from outside: invalid-input.ts. */
  readonly reportInvalid: InvalidInput['report']
  readonly #stopEvents: Array<() => void>
  #tick?: AlignedTask
  #lastTickMs?: number
  #stopped = false

  private constructor (config: AgentConfig, log: Logger, store: Store, libp2p: Libp2p, privateKey: PrivateKey, driver: Driver, clock: Clock, rng: { rng: Rng, seed: number }, gater?: PartitionGater) {
    this.config = config
    this.log = log
    this.#clock = clock
    this.#store = store
    this.libp2p = libp2p
    this.#driver = driver
    this.rngSeed = rng.seed
    this.peerId = libp2p.peerId.toString()
    this.startedAtMs = clock.now()
    this.metrics = createMetrics()
    zeroCounters(this.metrics)
    this.events = new EventLog({ clock })
    this.#admin = new AdminPartitions({ gater, events: this.events, metrics: this.metrics })
    const self = this.peerId
    const events = this.events
    const metrics = this.metrics
    const vms = new VmIndex()
    this.#invalidInput = new InvalidInput(this.metrics, log)
    const invalid = this.#invalidInput.report
    this.reportInvalid = invalid
    const signer = ed25519Signer(privateKey, self)

    this.#local = new LocalNode({
      ledger: new Ledger(config.capacity, config.cpuOvercommit, config.labels, config.peerLeases),
      store,
      driver,
      proofs: ReplicaService.proofs(signer),
      onDeleted: async (rec) => await this.#replica.deleted(rec),
      now: () => clock.now(),
      onChange: (change) => {
        this.#ownState?.changed(change)
        if (change === 'vms') this.#membership?.localVmsChanged()
      },
      onVm: (rec, what, why) => {
        const changes = what === 'deleted' ? vms.gone(self, rec.spec.id) : vms.observe(self, summarize(rec))
        this.#membership?.emitVmChanges(changes)
        this.#replica?.localVm(rec, what, why)
      }
    })
    this.#gossip = new StateGossip({
      pubsub: (libp2p as any).services.pubsub,
      clock,
      onState: (state) => { this.#membership.onState(state) },
      onInvalid: (from, reason) => { invalid('gossip', from, reason) },
      onGap: () => { metrics.gossipGaps.inc() },
      // A new subscriber learns our state now rather than at the next refresh (flood publishing reaches it before the mesh forms).
      // With a bounded fan-out, only a peer back from the dead (restart, partition) holds an old state of ours: a newcomer asks
      // the peers it reaches for theirs (peer-exchange.ts); publishing to all for each newcomer taxed a growing cluster.
      onPeerSubscribed: (peerId) => {
        const st = this.#membership.view.get(peerId)?.status
        if (!boundedFanout(config.connection) || !this.#ownState.publishing || (st != null && st !== 'alive')) this.#ownState.changed('vms')
      }
    })
    this.#farewell = new Farewell({ libp2p, clock, onInvalid: (from, reason) => { invalid('bye', from, reason) } })
    this.#detection = new FailureDetection({ self, clock, rng: rng.rng, log, metrics, libp2p }, {
      config: config.detector,
      // The same number as our gossiped state's incarnation: a peer tells a restart of ours from either.
      run: () => this.#ownState.incarnation,
      dialTarget: (peer) => this.#peers.dialTarget(peer),
      onChanges: (changes) => { this.#membership.applyStatus(changes) },
      onInvalid: (from, reason) => { invalid('swim', from, reason) },
      signer,
      onForged: (from, reason) => { invalid('swim-proof', from, reason) },
      processOf: (peer) => this.#membership.view.get(peer)?.state.process,
      onUnknown: (from) => { void this.#exchange.syncWith(from, 'unknown') } })
    this.#membership = new Membership({ self, clock, events, metrics, log, libp2p, gossip: this.#gossip, local: this.#local, vms, detection: this.#detection }, {
      view: config.view,
      ownState: () => this.#ownState.build(false),
      onVmsSeen: (peerId, seen) => { this.#replica.vmsSeen(peerId, seen) },
      onPeerLost: (peerId) => { this.#migrations?.peerLost(peerId) },
      onHeard: () => { this.#ownState.heard() },
      isPlacing: (id) => this.#placement?.isPlacing(id) ?? false,
      leftOnPurpose: (peerId) => this.#farewell.leftOnPurpose(peerId)
    })
    this.#ownState = new OwnState({ self, config, clock, rng: rng.rng, log, metrics, libp2p, gossip: this.#gossip, local: this.#local, driver, membership: this.#membership })
    this.#peers = new PeerClient({ self, libp2p, local: this.#local, membership: this.#membership }, { requestTimeoutMs: config.requestTimeoutMs })
    this.#rtt = new RttService({ libp2p, clock, log, metrics }, { intervalMs: config.locality.pingIntervalMs })
    const locality = (): Locality | undefined => config.locality.enabled ? { zone: zoneOf(config.labels), rttMs: (peerId) => this.#rtt.rttMs(peerId) } : undefined
    this.#placement = new PlacementService({ self, config, clock, rng: rng.rng, events, metrics, libp2p, local: this.#local, membership: this.#membership, ownState: this.#ownState, peers: this.#peers, vms, invalid, locality })
    this.#migrations = new MigrationService({
      self, config, clock, rng: rng.rng, log, events, libp2p, local: this.#local, driver, membership: this.#membership, ownState: this.#ownState, peers: this.#peers, invalid,
      partition: () => this.#rebalance?.partitionId,
      commitChain: (vmId, to) => this.#replica.commitChain(vmId, to),
      locality
    })
    this.#rebalance = new RebalanceService({
      self, config, clock, log, events, libp2p, peers: this.#peers, invalid,
      load: () => this.#ownState.hostLoad(),
      ring: () => this.#membership.ring(),
      rtt: () => config.locality.enabled ? (peerId) => this.#rtt.rttMs(peerId) : undefined,
      migrate: async (vmId, to, partitionId) => await this.#migrations.migrate(vmId, to, partitionId),
      heard: (peerId) => { this.#membership.heard(peerId) }
    })
    this.#replica = new ReplicaService({
      self, config, clock, log, events, metrics, libp2p, signer, invalid,
      store: new ReplicaStore(store),
      local: this.#local,
      membership: this.#membership,
      peers: this.#peers,
      placement: this.#placement,
      fence: (vmId, owner, epoch) => this.#migrations.fenced(vmId, owner, epoch)
    })
    this.#redialer = createRedialer({
      config, libp2p, clock, log,
      farewell: this.#farewell,
      known: () => this.#membership.knownAddrs(),
      keep: () => this.#replica.neighbours()
    })
    this.#exchange = new PeerExchange({ self, clock, rng: rng.rng, log, libp2p, membership: this.#membership, gossip: this.#gossip, metrics, invalid }, {
      requestTimeoutMs: config.requestTimeoutMs,
      syncEveryMs: config.connection.viewSyncEveryMs
    })
    this.#keeper = new VmKeeper({ self, clock, log, events, metrics, local: this.#local, driver })
    this.#stopEvents = [countEvents(metrics, events), logEvents(events, log), countConnections(metrics, libp2p)]
  }

  /** Opens the store, restores identity and VMs, joins the network. */
  static async start (config: AgentConfig, log: Logger, clock: Clock = systemClock): Promise<Agent> {
    const store = Store.open(config.dataDir)
    try {
      const privateKey = await loadOrCreateIdentity(store)
      let agent: Agent | undefined
      const gater = config.admin ? new PartitionGater({ clock, onRefused: (what) => { agent?.metrics.partitionRefused.inc({ what }) } }) : undefined
      const libp2p = await createHost({
        privateKey,
        listen: config.listen,
        swarmKeyFile: config.swarmKeyFile,
        gater,
        ...(config.mdns ? { mdns: { intervalMs: MDNS_INTERVAL_MS } } : {}),
        meshDegree: config.gossip.meshDegree,
        pingIntervalMs: config.connection.pingIntervalMs,
        pingTimeoutMs: config.connection.pingTimeoutMs,
        gossipHeartbeatMs: config.connection.gossipHeartbeatMs,
        gossipLazyPeers: config.connection.gossipLazyPeers,
        onGossipDropped: (peer, reason) => { agent?.reportInvalid('gossip', peer, reason) }
      })
      let driver: Driver
      try {
        driver = await startDriver(config, clock, libp2p as unknown as Libp2p, log)
      } catch (err) {
        await libp2p.stop()
        throw err
      }
      agent = new Agent(config, log, store, libp2p as unknown as Libp2p, privateKey, driver, clock, agentRng(config.rngSeed), gater)
      await agent.#start()
      return agent
    } catch (err) {
      store.close()
      throw err
    }
  }

  async #start (): Promise<void> {
    const restored = await this.#local.restore()
    const vms = await this.#keeper.restore()
    this.#gossip.start()
    await this.#placement.start()
    await this.#migrations.start()
    await this.#rebalance.start()
    await this.#detection.start()
    await this.#replica.start()
    await this.#farewell.start()
    await this.#exchange.start()
    this.#membership.start()
    this.#ownState.start()
    this.#redialer.start()
    this.#rtt.start()
    this.#tick = everyAligned(this.config.tickIntervalMs, () => { this.#onTick() })
    this.log.info({ component: 'discovery:agent', peerId: this.peerId, addrs: this.addrs(), restoredVms: restored, rngSeed: this.rngSeed }, 'agent started')
    if (restored === 0) return
    this.log.info({ component: 'discovery:vm', driver: this.#driver.name, ...vms }, 'VMs of the earlier run')
    // What became of them while we were away, asked of our peers (waited for when some are to be dialled) before a VM whose process was gone starts again.
    void this.#replica.checkRestored(() => this.libp2p.getPeers().map(String), this.config.bootstrap.length > 0 || this.config.mdns).finally(async () => { await this.#keeper.resumeDeferred() })
  }

  async stop (): Promise<void> {
    if (this.#stopped) return
    this.#stopped = true
    this.#tick?.clear()
    this.#ownState.stop()
    this.#redialer.stop()
    this.#rtt.stop()
    this.#membership.stop()
    await this.#exchange.stop()
    await this.#farewell.stop()
    await this.#detection.stop()
    await this.#rebalance.stop()
    await this.#replica.stop()
    await this.#migrations.stop()
    this.#gossip.stop()
    await this.#placement.stop()
    this.#peers.stop()
    await this.libp2p.stop()
    this.#keeper.stop()
    await this.#driver.stop()
    this.#store.close()
    for (const off of this.#stopEvents) off()
    this.log.info({ component: 'discovery:agent' }, 'agent stopped')
  }

  get apiUrl (): string | undefined { return this.#ownState.apiUrl }
  set apiUrl (url: string | undefined) { this.#ownState.apiUrl = url }

  addrs (): string[] { return this.libp2p.getMultiaddrs().map(a => a.toString()) }

  uptimeS (): number {
    return Math.round((this.#clock.now() - this.startedAtMs) / 1000)
  }

  /** Whether a bootstrap peer has been reached (an agent given none has nobody to join: true). */
  joined (): boolean {
    return this.#redialer.joined
  }

  /** The view; each peer with its measured round trip (`rttMs`, if any) and whether we are connected to it now (`connected`). */
  nodes (): Array<NodeView & { rttMs?: number, connected?: boolean }> {
    const connected = new Set(this.libp2p.getConnections().map(c => c.remotePeer.toString()))
    return this.#membership.nodes().map(n => {
      if (n.peerId === this.peerId) return n
      const rtt = this.#rtt.rttMs(n.peerId)
      return { ...n, ...(rtt != null ? { rttMs: Math.round(rtt * 10) / 10 } : {}), connected: connected.has(n.peerId) }
    })
  }
  localVms (): ClusterVm[] { return this.#membership.localVms() }
  clusterVms (): ClusterVm[] { return this.#membership.clusterVms() }
  getVm (id: string): ClusterVm { return this.#membership.getVm(id) }

  /** This agent's VMs with what each costs the host now, as its driver measures it (qemu: /proc) or models it (sim). */
  async localVmsWithStats (): Promise<LocalVm[]> {
    return await Promise.all(this.localVms().map(async vm => await this.withStats(vm)))
  }

  /** `vm` with its stats when it runs here. */
  async withStats<T extends ClusterVm> (vm: T): Promise<T & { stats?: VmStatsView }> {
    if (vm.node !== this.peerId) return vm
    const s = await this.#driver.stats(vm.id).catch(() => undefined)
    if (s == null) return vm
    return { ...vm, stats: { ...s, demand: Math.round(this.#driver.demand(vm.id) * 1000) / 1000 } }
  }

  async waitForVm (id: string, timeoutMs: number): Promise<ClusterVm> { return await this.#membership.waitForVm(id, timeoutMs) }
  async createVm (req: CreateVmRequest): Promise<Placed> { return await this.#placement.createVm(req) }
  async deleteVm (id: string): Promise<void> { await this.#placement.deleteVm(id) }

  async migrateVm (id: string, to?: string): Promise<MigrationRecord> { return await this.#migrations.migrateVm(id, to) }

  migrations (): MigrationRecord[] { return this.#migrations.list() }
  rebalanceEvents (): RebalanceEventView[] { return this.#rebalance.notes() }

  /** Sim driver: forces the demand of one of our VMs (a fraction of its vCPUs). */
  setDemand (id: string, demand: number): void {
    if (this.#driver.name !== 'sim') throw new DemandMeasuredError(`this agent runs the ${this.#driver.name} driver, which measures each VM's demand from its guest's CPU time: it cannot be set (only the sim driver's can)`)
    if (this.#local.get(id) == null) throw new VmNotFoundError(`${id} does not run on this agent: set its demand through the agent that runs it`)
    this.#driver.setDemand(id, demand)
  }

  /** Whether the admin routes are on (`--admin`). */
  get admin (): boolean { return this.#admin.enabled }

  /** Admin: blocks the peers (`both` ways, or `inbound` only); returns every block now in force. */
  async partition (peers: string[], direction: PartitionDirection): Promise<BlockedPeer[]> { return await this.#admin.partition(peers, direction) }

  /** Admin: lifts the blocks of the peers, or all; returns the peers healed. */
  heal (peers?: string[]): string[] { return this.#admin.heal(peers) }

  partitions (): BlockedPeer[] { return this.#admin.blocked() }

  /** For the API edge: bad input there is counted in the same metric. */
  invalidApiInput (reason: string): void {
    this.#invalidInput.report('api', 'client', reason)
  }

  #onTick (): void {
    // How late this tick runs tells the detector whether this agent's own event loop keeps time (Lifeguard).
    const now = this.#clock.now()
    if (this.#lastTickMs != null) {
      const late = now - this.#lastTickMs - this.config.tickIntervalMs
      if (late > 0) this.#detection.late(late)
    }
    this.#lastTickMs = now
    this.#local.tick()
    this.#replica.tick()
    this.#keeper.tick()
    this.#migrations.tick()
    this.#membership.tick()
    this.#detection.tick()
    sampleNode(this.metrics, this.#local, this.libp2p.getConnections().length)
  }
}
