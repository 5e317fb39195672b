/**
 * Failure detectors (core/failure-detector.ts) on a virtual clock and a
 * simulated network: what the `churn` scenario runs, and what the detector's
 * unit tests use to check it end to end. Each node is one FailureDetector fed
 * exactly as the agent feeds it — messages, send failures, the hint of a
 * connection reset, its own timer at the time it asked for — and can be
 * killed (its peers' connections reset, dials refused), hung (messages to it
 * wait in its socket, its timers stop) and resumed, restarted (a new run), or
 * cut off one way (`block(from, to)`: what `from` sends `to` is lost).
 */
import type { DetectorConfig } from '../core/detector-config.ts'
import { type DetectorStep, FailureDetector, type StatusChange } from '../core/failure-detector.ts'
import { MemberDirectory } from '../core/member-directory.ts'
import { seededRng, type Rng } from '../core/rng.ts'
import type { SwimMessage } from '../core/swim-messages.ts'
import { EventQueue } from './event-queue.ts'
import type { LinkModel } from './network.ts'

export type NodeState = 'running' | 'killed' | 'hung'

export interface SwimWorldInit {
  nodes: number
  seed: number
  config: DetectorConfig
  link: LinkModel
  /** Whether a killed node's peers see their connection reset (TCP: they do, within a round trip). Default true. */
  resetHints?: boolean
  /**
   * How many of a killed node's peers were connected to it and see the reset.
   * Default all (a local cluster is a full mesh). A large cluster's agents
   * keep connections to a few peers only (libp2p's connection manager stops
   * at a few hundred): the churn scenario says 50.
   */
  resetHintPeers?: number
  /**
   * A busy machine: each node's timer fires late by up to this many ms, and
   * each message waits as long again before it is read (an event loop
   * starved of CPU). Default 0.
   */
  lagMs?: number
  /**
   * Whether the detectors share one list of the members (core/member-directory.ts:
   * what lets 10,000 nodes fit in memory) instead of each adding every other
   * node, as the agent does. Default false.
   */
  shared?: boolean
}

export interface ChangeRecord extends StatusChange {
  atMs: number
  observer: string
}

interface SimNode {
  id: string
  index: number
  det: FailureDetector
  state: NodeState
  /** The time its detector asked to be woken. */
  wakeAtMs?: number
  /** Messages that reached it while hung: read when it resumes, in order. */
  inbox: Array<{ from: string, msg: SwimMessage }>
  sent: number
  /** Peers it sent to since the last `resetTalked` (with a bounded fan-out: its connections). */
  talked: Set<string>
}

/** One seed per node and per stream, so that a node's decisions do not depend on the network's draws. */
function streamSeed (seed: number, stream: number): number {
  let h = (seed ^ 0x9e3779b9) >>> 0
  h = Math.imul(h ^ (stream + 0x85ebca6b), 0xc2b2ae35) >>> 0
  return (h ^ (h >>> 16)) >>> 0
}

export class SwimWorld {
  readonly queue = new EventQueue()
  readonly changes: ChangeRecord[] = []
  readonly #nodes: SimNode[] = []
  readonly #byId = new Map<string, SimNode>()
  readonly #blocked = new Set<string>()
  readonly #init: SwimWorldInit
  readonly #net: Rng
  readonly #directory?: MemberDirectory
  #now = 0
  messages = 0
  lost = 0
  /** Called with each status change as it happens (the churn scenario measures with it). */
  onChange?: (c: ChangeRecord) => void

  constructor (init: SwimWorldInit) {
    this.#init = init
    this.#net = seededRng(streamSeed(init.seed, 0))
    if (init.shared === true) this.#directory = new MemberDirectory(Array.from({ length: init.nodes }, (_, i) => `n${i}`))
    for (let i = 0; i < init.nodes; i++) {
      const node: SimNode = { id: `n${i}`, index: i, det: this.#detector(`n${i}`, i, 0), state: 'running', inbox: [], sent: 0, talked: new Set() }
      this.#nodes.push(node)
      this.#byId.set(node.id, node)
    }
    for (const n of this.#nodes) this.#join(n)
  }

  get now (): number {
    return this.#now
  }

  get size (): number {
    return this.#nodes.length
  }

  id (i: number): string {
    return this.#nodes[i].id
  }

  detector (i: number): FailureDetector {
    return this.#nodes[i].det
  }

  state (i: number): NodeState {
    return this.#nodes[i].state
  }

  /** What node `observer` believes of node `peer`. */
  statusOf (observer: number, peer: number): string | undefined {
    return this.#nodes[observer].det.status(this.#nodes[peer].id)
  }

  sentBy (i: number): number {
    return this.#nodes[i].sent
  }

  /** The peers node `i` sent to since the last `resetTalked`. */
  talked (i: number): ReadonlySet<string> {
    return this.#nodes[i].talked
  }

  resetTalked (): void {
    for (const n of this.#nodes) n.talked.clear()
  }

  /**
   * A new node joins (not with a shared member list): it learns of every
   * node, and every running node of it, as the agent's view does when a new
   * peer's state arrives. Returns its index.
   */
  join (): number {
    if (this.#directory != null) throw new Error('a shared member list is fixed: no join')
    const i = this.#nodes.length
    const n: SimNode = { id: `n${i}`, index: i, det: this.#detector(`n${i}`, i, Math.max(1, Math.floor(this.#now))), state: 'running', inbox: [], sent: 0, talked: new Set() }
    this.#nodes.push(n)
    this.#byId.set(n.id, n)
    for (const o of this.#nodes) if (o !== n && o.state === 'running') this.#handle(o, o.det.add(n.id, n.det.incarnation.run, this.#now))
    this.#join(n)
    return i
  }

  /** Messages `from` sends `to` are lost from now on (a one-way fault); `unblock` lifts it. */
  block (from: number, to: number): void {
    this.#blocked.add(`${from}>${to}`)
  }

  unblock (from: number, to: number): void {
    this.#blocked.delete(`${from}>${to}`)
  }

  heal (): void {
    this.#blocked.clear()
  }

  /** SIGKILL: it stops; its peers' connections reset; dials to it are refused. */
  kill (i: number): void {
    const n = this.#nodes[i]
    if (n.state === 'killed') return
    n.state = 'killed'
    n.inbox = []
    if (this.#init.resetHints === false) return
    const limit = this.#init.resetHintPeers ?? Infinity
    const connected = limit >= this.#nodes.length - 1
      ? this.#nodes.filter(o => o !== n)
      : Array.from({ length: limit }, () => this.#nodes[Math.floor(this.#net.next() * this.#nodes.length)]).filter(o => o !== n)
    for (const o of new Set(connected)) {
      if (o.state === 'killed') continue
      this.queue.push(this.#now + this.#latency(), () => { if (o.state === 'running') this.#handle(o, o.det.hint(n.id, 'disconnected', this.#now)) })
    }
  }

  /** SIGSTOP: it stops; what is sent to it waits in its socket. */
  hang (i: number): void {
    const n = this.#nodes[i]
    if (n.state === 'running') n.state = 'hung'
  }

  /** SIGCONT: it reads what waited, then its late timer fires. */
  resume (i: number): void {
    const n = this.#nodes[i]
    if (n.state !== 'hung') return
    n.state = 'running'
    const inbox = n.inbox
    n.inbox = []
    for (const { from, msg } of inbox) this.#handle(n, n.det.receive(from, msg, this.#now))
    this.#handle(n, n.det.tick(this.#now))
  }

  /** A killed node starts again: a new run (its start time), knowing every other node. */
  restart (i: number): void {
    const n = this.#nodes[i]
    if (n.state !== 'killed') return
    n.det = this.#detector(n.id, i, Math.max(1, Math.floor(this.#now)))
    n.state = 'running'
    n.wakeAtMs = undefined
    this.#join(n)
  }

  /** Runs every event up to `untilMs`. */
  run (untilMs: number): void {
    for (let at = this.queue.peekTime(); at != null && at <= untilMs; at = this.queue.peekTime()) {
      const e = this.queue.pop()!
      this.#now = Math.max(this.#now, e.atMs)
      e.run()
    }
    this.#now = Math.max(this.#now, untilMs)
  }

  #detector (id: string, i: number, run: number): FailureDetector {
    const init = { self: id, run, config: this.#init.config, rng: seededRng(streamSeed(this.#init.seed, i + 1 + 7919 * run)), nowMs: this.#now }
    return new FailureDetector(this.#directory != null ? { ...init, directory: this.#directory } : init)
  }

  #join (n: SimNode): void {
    if (this.#directory != null) this.#handle(n, n.det.tick(this.#now))
    else for (const o of this.#nodes) if (o !== n) this.#handle(n, n.det.add(o.id, 0, this.#now))
  }

  #lag (): number {
    const lag = this.#init.lagMs ?? 0
    return lag > 0 ? this.#net.next() * lag : 0
  }

  #latency (): number {
    const l = this.#init.link
    return l.baseMs + this.#net.next() * l.jitterMs
  }

  #handle (n: SimNode, step: DetectorStep): void {
    for (const c of step.changes) {
      const rec = { ...c, atMs: this.#now, observer: n.id }
      this.changes.push(rec)
      this.onChange?.(rec)
    }
    for (const out of step.send) this.#send(n, out.to, out.message)
    if (step.wakeAtMs != null && step.wakeAtMs !== n.wakeAtMs) {
      n.wakeAtMs = step.wakeAtMs
      const det = n.det
      const at = step.wakeAtMs
      this.queue.push(Math.max(this.#now, at) + this.#lag(), () => {
        if (n.state === 'running' && n.det === det && n.wakeAtMs === at) this.#handle(n, det.tick(this.#now))
      })
    }
  }

  #send (from: SimNode, to: string, msg: SwimMessage): void {
    from.sent++
    from.talked.add(to)
    this.messages++
    const target = this.#byId.get(to)
    if (target == null) return
    if (this.#blocked.has(`${from.index}>${target.index}`) || (this.#init.link.loss > 0 && this.#net.next() < this.#init.link.loss)) {
      this.lost++
      return
    }
    const det = from.det
    this.queue.push(this.#now + this.#latency() + this.#lag(), () => {
      if (target.state === 'running') this.#handle(target, target.det.receive(from.id, msg, this.#now))
      else if (target.state === 'hung') target.inbox.push({ from: from.id, msg })
      // A dial to a killed process is refused: the sender hears of it a round trip later.
      else this.queue.push(this.#now + this.#latency(), () => { if (from.state === 'running' && from.det === det) this.#handle(from, det.sendFailed(to, msg, this.#now)) })
    })
  }
}
