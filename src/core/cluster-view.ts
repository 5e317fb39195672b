/**
 * The cluster as one agent sees it: one NodeState per peer, last-writer-wins
 * by (incarnation, seq), and each peer's status — alive, suspect or dead — as
 * the failure detector decided it (core/failure-detector.ts). Gossip brings
 * states, never statuses: a peer silent on the topic is not suspect for that
 * (its refresh may be minutes apart in a large cluster); a peer whose state
 * still arrives is not alive for that either (a relay may carry it). A dead
 * peer is forgotten after a while. Time comes in as an argument; nothing
 * here reads a clock.
 */
import type { NodeState } from './messages.ts'

export type PeerStatus = 'alive' | 'suspect' | 'dead'

export interface ViewConfig {
  /**
   * How long a dead peer stays listed (its VMs hidden, its status shown)
   * before it is forgotten; a peer forgotten that comes back is new again.
   * Default 5 min (local), 1 h (lan/wan): long enough for an operator to see
   * what died, and for a restarted agent to be recognised as the same peer.
   */
  forgetAfterMs: number
}

export interface ViewEntry {
  peerId: string
  state: NodeState
  /** When a state or another sign of life (an answer, a connection) last came from the peer. */
  lastSeenMs: number
  /** When this `state` was merged (not a sign of life: a relayed state counts too). */
  stateSinceMs: number
  status: PeerStatus
  /** Since when it has had this status. */
  statusSinceMs: number
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
  /** Every status change since the last `takeChanges`. */
  #changes: StatusChange[] = []
  #version = 0

  constructor (self: string, config: ViewConfig) {
    this.self = self
    this.#config = config
  }

  /** Takes a state heard from the network (or our own); keeps the newest per peer. A new peer starts alive. */
  merge (state: NodeState, nowMs: number): MergeResult {
    const entry = this.#entries.get(state.peerId)
    if (entry == null) {
      this.#entries.set(state.peerId, { peerId: state.peerId, state, lastSeenMs: nowMs, stateSinceMs: nowMs, status: 'alive', statusSinceMs: nowMs })
      this.#version++
      return 'new'
    }
    if (!isNewer(state, entry.state)) return 'stale'
    if (!sameList(state.addrs, entry.state.addrs)) this.#version++
    entry.state = state
    entry.stateSinceMs = nowMs
    entry.lastSeenMs = Math.max(entry.lastSeenMs, nowMs)
    return 'updated'
  }

  /** The peer showed a sign of life (a message, an answer, a connection): shown as how long ago we heard from it. */
  heard (peerId: string, nowMs: number): void {
    const entry = this.#entries.get(peerId)
    if (entry != null) entry.lastSeenMs = Math.max(entry.lastSeenMs, nowMs)
  }

  /** The failure detector's verdict on a peer; false when it is not in the view or already had that status. */
  setStatus (peerId: string, status: PeerStatus, nowMs: number): boolean {
    const entry = this.#entries.get(peerId)
    if (entry == null || peerId === this.self || entry.status === status) return false
    this.#changes.push({ peerId, from: entry.status, to: status })
    this.#version++
    entry.status = status
    entry.statusSinceMs = nowMs
    return true
  }

  /** The status changes since the last call, oldest first. */
  takeChanges (): StatusChange[] {
    const out = this.#changes
    this.#changes = []
    return out
  }

  /** Forgets the peers dead for `forgetAfterMs`; returns their ids. */
  tick (nowMs: number): string[] {
    const forgotten: string[] = []
    for (const [peerId, entry] of this.#entries) {
      if (entry.status === 'dead' && nowMs - entry.statusSinceMs >= this.#config.forgetAfterMs) {
        this.#entries.delete(peerId)
        forgotten.push(peerId)
      }
    }
    if (forgotten.length > 0) this.#version++
    return forgotten
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

  /**
   * Changes whenever the peers listed, their statuses or their addresses
   * change (not on every state): what is derived from those alone — a ring,
   * the addresses to dial — is rebuilt only then.
   */
  get version (): number {
    return this.#version
  }
}

/**
 * A value derived from `view`'s peers, statuses and addresses alone (a ring,
 * the addresses to dial): the getter builds it again only when the view's
 * `version` has changed since the last build.
 */
export function derivedFrom<T> (view: ClusterView, build: () => T): () => T {
  let held: { version: number, value: T } | undefined
  return () => {
    if (held?.version !== view.version) held = { version: view.version, value: build() }
    return held.value
  }
}

function sameList (a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i])
}
