/**
 * The `placement` scenario's world: N agents, each the owner of its capacity
 * (a core `Ledger`), each publishing its state under the agents' gossip
 * policy (core `GossipPolicy`, the profile's budget and coalescing), each
 * placing the VMs it is asked for with the agents' placement state machine
 * (core `PlacementAttempt` over a `CandidateOrder` of its view). Views come
 * from the simulated state gossip (state-gossip.ts); the place protocol's
 * messages cross the simulated network (network.ts). Nothing here decides
 * where a VM goes, whether a node takes it, or when a node publishes: this
 * file delivers messages, keeps time and counts.
 */
import { type Change, type GossipConfig, GossipPolicy } from '../core/gossip-policy.ts'
import { Ledger } from '../core/ledger.ts'
import { type NodeState, type PlaceRequest, type PlaceResponse, PROTOCOL_VERSION, type VmSpec } from '../core/messages.ts'
import { type AttemptOutcome, type AttemptStep, InFlight, PlacementAttempt } from '../core/placement-attempt.ts'
import type { NodeSource } from '../core/placement.ts'
import { allocatable, fits, type Resources } from '../core/resources.ts'
import { fnv1a } from '../core/hash.ts'
import { type Rng, seededRng } from '../core/rng.ts'
import { EventQueue } from './event-queue.ts'
import { type LinkModel, SimNetwork } from './network.ts'
import { LazyStateGossip } from './state-gossip.ts'

export interface PlacementWorldOptions {
  nodes: number
  seed: number
  link: LinkModel
  gossip: GossipConfig
  requestTimeoutMs: number
  leaseTtlMs: number
  sample: number
  capacity: Resources
}

interface SimAgent {
  idx: number
  id: string
  ledger: Ledger
  policy: GossipPolicy
  inFlight: InFlight
  seq: number
  /** The time of the wake-up queued for its policy, if any. */
  wakeAt?: number
}

export interface PlacementCounts {
  placed: number
  refused: number
  falseRefusals: number
  uncertain: number
  attempts: number[]
  overcommits: number
  stalenessMs: number[]
}

export class PlacementWorld {
  readonly queue = new EventQueue()
  readonly gossip: LazyStateGossip
  readonly counts: PlacementCounts = { placed: 0, refused: 0, falseRefusals: 0, uncertain: 0, attempts: [], overcommits: 0, stalenessMs: [] }
  now = 0
  /** Creates that have ended (placed, refused or uncertain). */
  ended = 0
  readonly #opts: PlacementWorldOptions
  readonly #agents: SimAgent[] = []
  readonly #index = new Map<string, number>()
  readonly #network: SimNetwork
  readonly #placeRng: Rng
  #leases = 0

  constructor (opts: PlacementWorldOptions) {
    this.#opts = opts
    const n = opts.nodes
    this.gossip = new LazyStateGossip(n, opts.seed, opts.link)
    this.#network = new SimNetwork(this.queue, seededRng(opts.seed ^ 0x9e7a11), opts.link, () => this.now)
    this.#placeRng = seededRng(opts.seed ^ 0x91ace)
    for (let i = 0; i < n; i++) {
      const id = `node-${String(i).padStart(5, '0')}`
      const rng = seededRng((opts.seed * 1_000_003) ^ fnv1a(id))
      const a: SimAgent = { idx: i, id, ledger: new Ledger(opts.capacity), policy: new GossipPolicy(opts.gossip, rng, 0), inFlight: new InFlight(), seq: 0 }
      this.#agents.push(a)
      this.#index.set(id, i)
      // The cluster has been up a while: each agent last published its (empty) state some time
      // before the run, so that its next refresh falls anywhere in the run's first interval and
      // never all at once (half the interval back: the shortest wait the policy draws).
      const publishedAt = -Math.floor(rng.next() * 0.5 * a.policy.refreshIntervalMs(n))
      const state = this.#state(a)
      a.policy.published(publishedAt, { cpu: 0, memMiB: 0 }, n)
      this.gossip.seed(i, publishedAt, state)
      this.#arm(a)
    }
  }

  /** Runs events until every create has ended (`total` of them) or none is left. */
  run (total: number, onProgress?: (ended: number) => void): void {
    let next = 0
    while (this.ended < total) {
      const e = this.queue.pop()
      if (e == null) break
      this.now = e.atMs
      e.run()
      if (onProgress != null && this.ended >= next) {
        onProgress(this.ended)
        next = this.ended + Math.max(1, Math.floor(total / 200))
      }
    }
  }

  /** A user asks agent `at` to create `spec`: it runs the agents' placement state machine. */
  create (at: number, spec: VmSpec): void {
    const agent = this.#agents[at]
    // The publish time of the state this agent read of each node, by node: what the VM was placed with.
    const readAt = new Map<number, number>()
    const nodes: NodeSource = {
      size: this.#agents.length,
      at: i => {
        if (i === at) {
          readAt.set(i, this.now)
          return this.#state(agent)
        }
        const p = this.gossip.view(i, at, this.now)
        readAt.set(i, p.atMs)
        return p.state
      }
    }
    const attempt = new PlacementAttempt({ spec, nodes, inFlight: agent.inFlight, rng: this.#placeRng, sample: this.#opts.sample, leaseTtlMs: this.#opts.leaseTtlMs, newLeaseId: () => `lease-${this.#leases++}` })
    const resources = { cpu: spec.cpu, memMiB: spec.memMiB }
    const run = (step: AttemptStep): void => {
      if (step.outcome != null) {
        this.#ended(step.outcome, resources, readAt)
        return
      }
      for (const c of step.commands) {
        if (c.kind === 'wake') this.queue.push(c.atMs, () => { run(attempt.wake()) })
        else this.#send(at, c.node, c.requests, (op, res) => { run(attempt.answer(c.leaseId, op, res, this.now)) }, (op, reason) => { run(attempt.failed(c.leaseId, op, false, reason, this.now)) })
      }
    }
    run(attempt.start())
  }

  /** Ledgers over their allocatable capacity (checked after each commit too): must be none. */
  overcommitted (): number {
    let n = 0
    for (const a of this.#agents) if (this.#over(a.ledger)) n++
    return n
  }

  /** Share of the cluster's vCPUs allocated. */
  cpuFill (): number {
    let used = 0
    for (const a of this.#agents) used += a.ledger.used.cpu
    return used / (this.#agents.length * this.#opts.capacity.cpu)
  }

  #ended (outcome: AttemptOutcome, resources: Resources, readAt: Map<number, number>): void {
    this.ended++
    this.counts.attempts.push(outcome.attempts)
    if (outcome.kind === 'placed') {
      this.counts.placed++
      this.counts.stalenessMs.push(this.now - (readAt.get(this.#index.get(outcome.node)!) ?? this.now))
    } else if (outcome.kind === 'uncertain') {
      this.counts.uncertain++
    } else {
      this.counts.refused++
      // A refusal is false when some node could have taken the VM: a look at every true ledger.
      if (this.#agents.some(a => fits(resources, a.ledger.free))) this.counts.falseRefusals++
    }
  }

  /**
   * Writes `requests` to `node` as one FIFO message, answered in one message;
   * either may be lost, and the requests then fail after the request timeout
   * (the node may have taken them: the attempt asks the commit again).
   * To itself, an agent sends without the network.
   */
  #send (from: number, node: string, requests: PlaceRequest[], answer: (op: 'reserve' | 'commit', res: PlaceResponse) => void, failed: (op: 'reserve' | 'commit', reason: string) => void): void {
    const owner = this.#agents[this.#index.get(node)!]
    const opOf = (r: PlaceRequest): 'reserve' | 'commit' => r.op === 'reserve' ? 'reserve' : 'commit'
    const answerAll = (responses: PlaceResponse[]): void => { requests.forEach((r, i) => { answer(opOf(r), responses[i]) }) }
    if (owner.idx === from) {
      this.queue.push(this.now, () => { answerAll(requests.map(r => this.#handle(owner, r))) })
      return
    }
    const sentAt = this.now
    const timedOut = (): void => { this.queue.push(sentAt + this.#opts.requestTimeoutMs, () => { for (const r of requests) failed(opOf(r), 'the request timed out') }) }
    const arrived = this.#network.send(() => {
      const responses = requests.map(r => this.#handle(owner, r))
      if (!this.#network.send(() => { answerAll(responses) })) timedOut()
    })
    if (!arrived) timedOut()
  }

  /** The owner serves one place request with its ledger, as an agent's local node does. */
  #handle (a: SimAgent, req: PlaceRequest): PlaceResponse {
    const now = this.now
    switch (req.op) {
      case 'reserve': {
        const r = a.ledger.admit(req.leaseId, req.resources, req.constraints, req.ttlMs, now)
        if (!r.ok) return { v: PROTOCOL_VERSION, ok: false, reason: r.reason }
        this.#changed(a, 'load')
        return { v: PROTOCOL_VERSION, ok: true }
      }
      case 'commit': {
        // A commit asked again of a VM already taken is answered again.
        if (a.ledger.hasVm(req.vm.id)) return { v: PROTOCOL_VERSION, ok: true, state: 'creating' }
        const r = a.ledger.commit(req.leaseId, req.vm.id, now)
        if (!r.ok) return { v: PROTOCOL_VERSION, ok: false, reason: r.reason === 'expired' ? 'the reservation expired' : 'no such reservation' }
        if (this.#over(a.ledger)) this.counts.overcommits++
        this.#changed(a, 'vms')
        return { v: PROTOCOL_VERSION, ok: true, state: 'creating' }
      }
      case 'release':
        if (a.ledger.release(req.leaseId, now)) this.#changed(a, 'load')
        return { v: PROTOCOL_VERSION, ok: true }
      case 'delete':
        return { v: PROTOCOL_VERSION, ok: false, reason: 'not-found' }
    }
  }

  #over (l: Ledger): boolean {
    const a = allocatable(l.capacity, l.cpuOvercommit)
    return l.used.cpu + l.reserved.cpu > a.cpu || l.used.memMiB + l.reserved.memMiB > a.memMiB
  }

  /** The owner's load changed: its gossip policy hears of it (after what it heard meanwhile). */
  #changed (a: SimAgent, change: Change): void {
    const l = a.ledger
    this.gossip.feed(a.idx, this.now, a.policy)
    a.policy.changed(change, this.now, { cpu: l.used.cpu + l.reserved.cpu, memMiB: l.used.memMiB + l.reserved.memMiB, capCpu: l.capacity.cpu, capMemMiB: l.capacity.memMiB }, this.#agents.length)
    this.#arm(a)
  }

  /** Queues the wake-up the policy asks for, unless an earlier one is queued (it re-arms when it runs). */
  #arm (a: SimAgent): void {
    const at = a.policy.nextWakeAt
    if (at == null || (a.wakeAt != null && a.wakeAt <= at)) return
    a.wakeAt = at
    this.queue.push(Math.max(at, this.now), () => { this.#wake(a, at) })
  }

  #wake (a: SimAgent, at: number): void {
    if (a.wakeAt !== at) return
    a.wakeAt = undefined
    const n = this.#agents.length
    this.gossip.feed(a.idx, this.now, a.policy)
    if (a.policy.tick(this.now, n)) {
      a.seq++
      const state = this.#state(a)
      a.policy.published(this.now, { cpu: state.used.cpu + state.reserved.cpu, memMiB: state.used.memMiB + state.reserved.memMiB }, n)
      this.gossip.publish(a.idx, this.now, state)
    }
    this.#arm(a)
  }

  /** The agent's state as it publishes it (its own view of itself is always this, fresh). */
  #state (a: SimAgent): NodeState {
    return { v: PROTOCOL_VERSION, peerId: a.id, incarnation: 0, seq: a.seq, addrs: [], capacity: a.ledger.capacity, cpuOvercommit: a.ledger.cpuOvercommit, used: a.ledger.used, reserved: a.ledger.reserved, labels: {}, vms: [] }
  }
}
