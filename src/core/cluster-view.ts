/**
 * The cluster as one agent sees it: one NodeState per peer, last-writer-wins
 * by (incarnation, seq), and a liveness status derived from when we last
 * heard from each peer. Time comes in as an argument; nothing here reads a clock.
 */
import type { NodeState } from './messages.ts'

export type PeerStatus = 'alive' | 'suspect' | 'dead'

export interface ViewConfig {
  /** Silence after which a peer is suspect. */
  suspectAfterMs: number
  /** Silence after which a peer is dead. */
  deadAfterMs: number
  /** Once its connection closed, how long a peer has to come back before it is dead. */
  disconnectedDeadAfterMs: number
  /** How long a dead peer stays listed before it is forgotten. */
  forgetAfterMs: number
}

export interface ViewEntry {
  peerId: string
  state: NodeState
  lastSeenMs: number
  status: PeerStatus
  /** When the connection to this peer closed, if it is closed now. */
  disconnectedAtMs?: number
}

export type MergeResult = 'new' | 'updated' | 'stale'

export interface StatusChange {
  peerId: string
  from: PeerStatus
  to: PeerStatus
}

/** Whether `a` was written after `b`. */
export function isNewer (a: NodeState, b: NodeState): boolean {
  if (a.incarnation !== b.incarnation) return a.incarnation > b.incarnation
  return a.seq > b.seq
}

export class ClusterView {
  readonly self: string
  readonly #config: ViewConfig
  readonly #entries = new Map<string, ViewEntry>()
  /** Every status change since the last `takeChanges`, whatever caused it. */
  #changes: StatusChange[] = []

  constructor (self: string, config: ViewConfig) {
    this.self = self
    this.#config = config
  }

  /** Takes a state heard from the network (or our own); keeps the newest per peer. */
  merge (state: NodeState, nowMs: number): MergeResult {
    const entry = this.#entries.get(state.peerId)
    if (entry == null) {
      this.#entries.set(state.peerId, { peerId: state.peerId, state, lastSeenMs: nowMs, status: 'alive' })
      return 'new'
    }
    if (!isNewer(state, entry.state)) {
      // An old or repeated copy still proves the sender was alive recently only
      // if it came from the peer itself; the caller tells us that with `heard`.
      return 'stale'
    }
    entry.state = state
    entry.lastSeenMs = Math.max(entry.lastSeenMs, nowMs)
    this.#set(entry, 'alive')
    delete entry.disconnectedAtMs
    return 'updated'
  }

  /** The peer showed a sign of life (a message, a successful request, a connection). */
  heard (peerId: string, nowMs: number): void {
    const entry = this.#entries.get(peerId)
    if (entry == null) return
    entry.lastSeenMs = Math.max(entry.lastSeenMs, nowMs)
    delete entry.disconnectedAtMs
    this.#set(entry, 'alive')
  }

  /** Our last connection to the peer closed: suspect it at once. */
  disconnected (peerId: string, nowMs: number): void {
    const entry = this.#entries.get(peerId)
    if (entry == null || peerId === this.self) return
    entry.disconnectedAtMs ??= nowMs
    if (entry.status === 'alive') this.#set(entry, 'suspect')
  }

  /** The status changes since the last call (merges, signs of life, disconnections and ticks alike), oldest first. */
  takeChanges (): StatusChange[] {
    const out = this.#changes
    this.#changes = []
    return out
  }

  #set (entry: ViewEntry, status: PeerStatus): void {
    if (entry.status === status) return
    this.#changes.push({ peerId: entry.peerId, from: entry.status, to: status })
    entry.status = status
  }

  /**
   * Moves peers along alive → suspect → dead → forgotten; returns what changed.
   * `refreshMs` is how long a healthy peer may now stay silent (its refresh
   * interval grows with the cluster): a peer is suspect after at least two of
   * them and dead after at least four, whatever the configured timeouts.
   */
  tick (nowMs: number, refreshMs = 0): StatusChange[] {
    const changes: StatusChange[] = []
    const c = {
      ...this.#config,
      suspectAfterMs: Math.max(this.#config.suspectAfterMs, 2 * refreshMs),
      deadAfterMs: Math.max(this.#config.deadAfterMs, 4 * refreshMs)
    }
    for (const [peerId, entry] of this.#entries) {
      if (peerId === this.self) continue
      const silent = nowMs - entry.lastSeenMs
      let next: PeerStatus = 'alive'
      if (silent >= c.deadAfterMs) next = 'dead'
      else if (entry.disconnectedAtMs != null && nowMs - entry.disconnectedAtMs >= c.disconnectedDeadAfterMs) next = 'dead'
      else if (silent >= c.suspectAfterMs || entry.disconnectedAtMs != null) next = 'suspect'
      if (next === 'dead' && silent >= c.deadAfterMs + c.forgetAfterMs) {
        this.#entries.delete(peerId)
        continue
      }
      if (next !== entry.status) {
        changes.push({ peerId, from: entry.status, to: next })
        this.#set(entry, next)
      }
    }
    return changes
  }

  get (peerId: string): ViewEntry | undefined {
    return this.#entries.get(peerId)
  }

  entries (): ViewEntry[] {
    return [...this.#entries.values()]
  }

  /** States of the peers we believe can take work. */
  alive (): NodeState[] {
    const out: NodeState[] = []
    for (const e of this.#entries.values()) if (e.status === 'alive') out.push(e.state)
    return out
  }

  get size (): number {
    return this.#entries.size
  }
}
