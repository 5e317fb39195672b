/**
 * The composition root: wires core (view, ledger, placement), net (libp2p,
 * gossip, place protocol, dialing), the hypervisor driver and the store, and
 * owns the timers. Network and API events come in; core decides; the agent
 * carries the decisions out.
 */
import type { Libp2p } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { Logger } from 'pino'
import type { AgentConfig } from '../config.ts'
import { ClusterView, type PeerStatus } from '../core/cluster-view.ts'
import { Ledger } from '../core/ledger.ts'
import type { CreateVmRequest, NodeState, PlaceRequest, PlaceResponse, VmSummary } from '../core/messages.ts'
import { PROTOCOL_VERSION } from '../core/messages.ts'
import { createDriver, type Driver } from '../hypervisor/index.ts'
import { createHost, PlaceServer, placeRequest, Redialer, StateGossip } from '../net/index.ts'
import { loadOrCreateIdentity, Store } from '../store/index.ts'
import { PeerUnreachableError, VmNotFoundError } from './errors.ts'
import { LocalNode, summarize } from './local-node.ts'
import { createMetrics, type Metrics } from './metrics.ts'
import { type Placed, Placer } from './placer.ts'
import { StatePublisher } from './state-publisher.ts'

export const VERSION = '0.1.0'

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
  state: PeerStatus
  lastSeenMs: number
}

export interface ClusterVm extends VmSummary {
  node: string
}

export class Agent {
  readonly config: AgentConfig
  readonly log: Logger
  readonly metrics: Metrics
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
    this.#view = new ClusterView(this.peerId, config.view)
    const ledger = new Ledger(config.capacity, config.cpuOvercommit)
    this.#local = new LocalNode({
      ledger,
      store,
      driver,
      labels: config.labels,
      now: Date.now,
      onChange: (vmSet) => { this.#publisher?.changed(vmSet) }
    })
    const pubsub = (libp2p as any).services.pubsub
    this.#gossip = new StateGossip({
      pubsub,
      onState: (state) => { this.#onState(state) },
      onInvalid: (from, reason) => { this.#invalid('gossip', from, reason) },
      // A new subscriber learns our state now rather than at the next refresh (floodPublish reaches it before the mesh forms).
      onPeerSubscribed: () => { this.#publisher?.changed(true) }
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
    this.#placer = new Placer({
      self: this.peerId,
      nodes: () => this.#placementNodes(),
      send: async (peerId, req) => await this.#send(peerId, req),
      rng: { next: Math.random },
      sample: config.placementSample,
      leaseTtlMs: config.leaseTtlMs,
      now: Date.now,
      onAttempt: (result) => { this.metrics.placeAttempts.inc({ result }) }
    })
  }

  /** Opens the store, restores identity and VMs, joins the network. */
  static async start (config: AgentConfig, log: Logger): Promise<Agent> {
    const store = Store.open(config.dataDir)
    try {
      const privateKey = await loadOrCreateIdentity(store)
      const libp2p = await createHost({ privateKey, listen: config.listen, swarmKeyFile: config.swarmKeyFile })
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
    this.libp2p.addEventListener('peer:disconnect', (evt) => {
      const id = evt.detail.toString()
      this.#view.disconnected(id, Date.now())
    })
    this.libp2p.addEventListener('peer:connect', (evt) => {
      this.#view.heard(evt.detail.toString(), Date.now())
    })
    this.#view.merge(this.#buildState(true), Date.now())
    this.#publisher.start()
    this.#redialer.start()
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
    this.#publisher.stop()
    this.#redialer.stop()
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

  async createVm (req: CreateVmRequest): Promise<Placed> {
    const end = this.metrics.createSeconds.startTimer()
    try {
      const placed = await this.#placer.place(req)
      this.metrics.placements.inc({ result: 'placed' })
      this.log.info({ component: 'discovery:placement', vm: placed.id, node: placed.node }, 'vm placed')
      return placed
    } catch (err: any) {
      this.metrics.placements.inc({ result: err.name === 'NoCapacityError' ? 'no-capacity' : 'failed' })
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
    const entry = this.#view.get(peerId)
    const target = this.libp2p.getConnections(peerIdFromString(peerId)).length > 0 || entry == null
      ? peerIdFromString(peerId)
      : entry.state.addrs.map(a => multiaddr(`${a}/p2p/${peerId}`))
    const res = await placeRequest(this.libp2p, target, req, this.config.requestTimeoutMs)
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
      vms: this.#local.summaries()
    }
    if (this.apiUrl != null) state.api = this.apiUrl
    return state
  }

  #placementNodes (): NodeState[] {
    return this.#view.alive().map(s => s.peerId === this.peerId ? this.#buildState(false) : s)
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
    const result = this.#view.merge(state, now)
    this.#view.heard(state.peerId, now)
    this.metrics.gossipReceived.inc({ result })
  }

  #onTick (): void {
    const now = Date.now()
    this.#local.tick()
    // An open connection is a sign of life: libp2p's connection monitor pings it and closes it when the peer is gone.
    for (const conn of this.libp2p.getConnections()) this.#view.heard(conn.remotePeer.toString(), now)
    for (const change of this.#view.tick(now)) {
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
