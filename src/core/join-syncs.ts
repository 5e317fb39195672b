/**
 * When a joining agent asks a peer it just connected to for the states it
 * lacks (agent/peer-exchange.ts). In its first minute an agent asks the peers
 * it connects to: the others published their states before it was there, and
 * refresh them only every few minutes in a large local cluster. But it asks
 * one at a time — asked together, each peer answered the same states — and
 * no more once `caughtUpAfter` answers in a row brought nothing: its view has
 * caught up, and anti-entropy (core/view-sync-schedule.ts) goes on from there.
 * Measured during a `cluster up` of 100 on this machine (docs/many-agents.md):
 * before, 39 join syncs a second cluster-wide, whose answers
 * carried 188 states a second the asker already held; after, 7 and 10.
 */

/** How long after its start an agent asks the peers it connects to. */
export const JOIN_WINDOW_MS = 60_000
/** Join syncs in a row that brought nothing, after which a joiner asks no more at connect. */
export const JOIN_SYNCS_CAUGHT_UP = 2

export class JoinSyncs {
  readonly #startedAtMs: number
  readonly #windowMs: number
  readonly #caughtUpAfter: number
  #asking = false
  #quiet = 0

  constructor (startedAtMs: number, windowMs = JOIN_WINDOW_MS, caughtUpAfter = JOIN_SYNCS_CAUGHT_UP) {
    this.#startedAtMs = startedAtMs
    this.#windowMs = windowMs
    this.#caughtUpAfter = caughtUpAfter
  }

  /** Whether to ask the peer just connected; if so, the sync is under way until `done`. */
  begin (nowMs: number): boolean {
    if (this.#asking || this.caughtUp || nowMs - this.#startedAtMs > this.#windowMs) return false
    this.#asking = true
    return true
  }

  /** The sync `begin` allowed ended: `news` states lacked or held older here, undefined when the peer was not asked or did not answer. */
  done (news: number | undefined): void {
    this.#asking = false
    if (news != null) this.#quiet = news > 0 ? 0 : this.#quiet + 1
  }

  /** Answers in a row brought nothing: no more join syncs. */
  get caughtUp (): boolean {
    return this.#quiet >= this.#caughtUpAfter
  }
}
