/**
 * State gossip for the simulator's `placement` scenario, computed lazily.
 * Gossipsub floods every publish to every other node, so with N nodes each
 * publish is N - 1 deliveries: at 10,000 nodes far too many to schedule one
 * event each. Instead, each node's recent publishes are kept with their
 * publish times, and a node's view of a peer is computed when it is read:
 * the newest of the peer's states whose publish time plus the link's latency
 * to that node has passed and that the link did not lose — latency and loss
 * both a deterministic hash of (seed, sender, receiver, sequence number), so
 * a state once arrived stays arrived. Deliveries are counted arithmetically
 * (N - 1 per publish, less the link's loss), and what each node heard is fed
 * to its gossip policy in aggregate: every node hears the same publishes (all
 * but its own), so one count per time bucket serves them all.
 */
import { fmix32 } from '../core/hash.ts'
import { RECEIVED_WINDOW_MS } from '../core/gossip-policy.ts'
import type { NodeState } from '../core/messages.ts'
import type { LinkModel } from './network.ts'

/** One published state, with when it was published. */
export interface Published {
  atMs: number
  state: NodeState
}

/**
 * States kept per node. A node publishes at most every 200 ms (lan, wan) and
 * a state crosses a link in at most 50 ms (wan), so only the newest can still
 * be on its way; the others are there for the states the link lost. When all
 * of them were lost for a receiver (loss⁴ of the time), it sees the oldest
 * kept: the simulation's one approximation of what a node missed.
 */
export const HISTORY = 4

/**
 * The gossip policy measures what it hears in buckets of a tenth of its
 * window (core/rate-window.ts): counts fed per bucket, at the bucket's start,
 * land exactly where the single deliveries would have.
 */
const BUCKET_MS = RECEIVED_WINDOW_MS / 10
const WINDOW_BUCKETS = 10

/** Who hears the published messages: the gossip policy's `heard`. */
export interface Hearer {
  heard: (nowMs: number, n: number) => void
}

export class LazyStateGossip {
  readonly #n: number
  readonly #seed: number
  readonly #link: LinkModel
  readonly #history: Published[][]
  /** Arrival times (publish time plus the link's base latency) of all nodes' publishes, by bucket, in order. */
  readonly #perBucket: number[][] = []
  /** Each node's own recent arrival times: a node does not hear itself. */
  readonly #own: number[][]
  /** Per node: the last bucket fed to its policy, and how much of it. */
  readonly #fedBucket: Float64Array
  readonly #fedCount: Float64Array
  /** Publishes during the run (the initial states excluded). */
  publishes = 0
  /** State messages received, all nodes together. */
  deliveries = 0

  constructor (nodes: number, seed: number, link: LinkModel) {
    this.#n = nodes
    this.#seed = seed >>> 0
    this.#link = link
    this.#history = Array.from({ length: nodes }, () => [])
    this.#own = Array.from({ length: nodes }, () => [])
    this.#fedBucket = new Float64Array(nodes)
    this.#fedCount = new Float64Array(nodes)
  }

  /** A state every node already holds when the run starts (published before it, at `atMs` ≤ 0): not counted. */
  seed (node: number, atMs: number, state: NodeState): void {
    this.#history[node] = [{ atMs, state }]
  }

  /** `node` publishes `state` at `atMs`: every other node receives it, but for the link's loss. */
  publish (node: number, atMs: number, state: NodeState): void {
    const h = this.#history[node]
    h.push({ atMs, state })
    if (h.length > HISTORY) h.shift()
    const arrival = atMs + this.#link.baseMs
    const bucket = Math.floor(arrival / BUCKET_MS)
    ;(this.#perBucket[bucket] ??= []).push(arrival)
    const own = this.#own[node]
    own.push(arrival)
    while (own.length > 0 && own[0] < arrival - (WINDOW_BUCKETS + 1) * BUCKET_MS) own.shift()
    this.publishes++
    this.deliveries += (this.#n - 1) * (1 - this.#link.loss)
  }

  /** What `receiver` holds of `sender` at `nowMs`: the newest state that reached it. */
  view (sender: number, receiver: number, nowMs: number): Published {
    const h = this.#history[sender]
    for (let k = h.length - 1; k > 0; k--) {
      const p = h[k]
      const x = hash(this.#seed, sender, receiver, p.state.seq)
      if (x / 4294967296 < this.#link.loss) continue
      if (p.atMs + this.#link.baseMs + (fmix32(x ^ 0x5bd1e995) / 4294967296) * this.#link.jitterMs <= nowMs) return p
    }
    return h[0]
  }

  /** Feeds `receiver`'s policy what reached it since it was last fed. Call before every use of the policy. */
  feed (receiver: number, nowMs: number, policy: Hearer): void {
    const cur = Math.floor(nowMs / BUCKET_MS)
    const from = Math.max(this.#fedBucket[receiver], cur - WINDOW_BUCKETS)
    for (let b = from; b <= cur; b++) {
      const n = this.#arrived(b, receiver, nowMs) - (b === this.#fedBucket[receiver] ? this.#fedCount[receiver] : 0)
      if (n > 0) policy.heard(b * BUCKET_MS, n)
    }
    this.#fedBucket[receiver] = cur
    this.#fedCount[receiver] = this.#arrived(cur, receiver, nowMs)
  }

  /** What reached `receiver` of the publishes arriving in `bucket`, by `nowMs`. */
  #arrived (bucket: number, receiver: number, nowMs: number): number {
    const times = this.#perBucket[bucket]
    if (times == null) return 0
    const all = countUpTo(times, nowMs)
    let own = 0
    for (const t of this.#own[receiver]) if (t <= nowMs && Math.floor(t / BUCKET_MS) === bucket) own++
    return (all - own) * (1 - this.#link.loss)
  }
}

/** How many of the sorted `times` are at or before `t`. */
function countUpTo (times: number[], t: number): number {
  if (times.length === 0 || times[times.length - 1] <= t) return times.length
  let lo = 0
  let hi = times.length
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (times[mid] <= t) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** A 32-bit hash of four integers (murmur3's finalizer after each): the fate of one message on one link. */
export function hash (a: number, b: number, c: number, d: number): number {
  return fmix32(fmix32(fmix32(fmix32(a ^ 0x9e3779b9) ^ b) ^ c) ^ d)
}
