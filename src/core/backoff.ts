/**
 * Doubling back-off, as a pure schedule: the caller passes the time and asks
 * whether a try is due. The first failure waits `minMs`, each further one
 * twice as long as the one before, up to `maxMs`; a success forgets the key,
 * so the next failure starts from `minMs` again. No jitter (none was there
 * before it was a schedule of its own); an `Rng` would come in here if agents
 * retrying one address in step ever shows.
 */
import { expectNumber } from './options.ts'

export interface BackoffPolicy {
  /** Wait after a first failure, ms (> 0). */
  minMs: number
  /** Longest wait, ms (>= minMs). */
  maxMs: number
}

export interface BackoffState {
  /** When the next try is due, ms. */
  readonly nextAtMs: number
  /** The wait that ends at `nextAtMs`; the next failure waits twice as long, up to the policy's maximum. */
  readonly delayMs: number
  /** Of the failures since the last success, how many were timeouts (absent: none); see `stretchedTimeoutMs`. */
  readonly timeouts?: number
}

/** The state after a failure at `nowMs` (a timeout when `timedOut`), given the state before it (none: no failure since the last success). */
export function afterFailure (prev: BackoffState | undefined, nowMs: number, policy: BackoffPolicy, timedOut = false): BackoffState {
  const delayMs = prev == null ? policy.minMs : Math.min(prev.delayMs * 2, policy.maxMs)
  const timeouts = (prev?.timeouts ?? 0) + (timedOut ? 1 : 0)
  return timeouts > 0 ? { nextAtMs: nowMs + delayMs, delayMs, timeouts } : { nextAtMs: nowMs + delayMs, delayMs }
}

/** Whether a try is due at `nowMs`; always with no failure recorded. */
export function isDue (state: BackoffState | undefined, nowMs: number): boolean {
  return state == null || state.nextAtMs <= nowMs
}

/**
 * A deadline that doubles with each timeout of the same thing since its last
 * success (a refusal between two timeouts does not start it over),
 * up to `2 ** maxDoublings` times `baseMs`. On a host whose cores are
 * saturated (a thousand agents on two cores: the joiners' dials to their
 * bootstrap peers timed out at 5 s, one 18 times in its first minute, and
 * 12 joiners never got in), a try that always times out at the base never completes, and
 * each one costs the other end a handshake begun for nothing.
 */
export function stretchedTimeoutMs (baseMs: number, timeouts: number, maxDoublings: number): number {
  return baseMs * 2 ** Math.min(Math.max(0, Math.floor(timeouts)), Math.max(0, Math.floor(maxDoublings)))
}

export interface BackoffInit extends BackoffPolicy {
  /** Keys remembered at most (those that keep failing); the oldest is forgotten beyond this. Default 10,000. */
  maxKeys?: number
}

/** One back-off schedule per key (an address, a peer). */
export class Backoff<K> {
  readonly #policy: BackoffPolicy
  readonly #maxKeys: number
  readonly #states = new Map<K, BackoffState>()

  constructor (init: BackoffInit) {
    const minMs = expectNumber('minMs', init.minMs, { above: 0 })
    const maxMs = expectNumber('maxMs', init.maxMs, { min: minMs })
    this.#policy = { minMs, maxMs }
    this.#maxKeys = expectNumber('maxKeys', init.maxKeys ?? 10_000, { min: 1, integer: true })
  }

  /** Keys with a failure on record. */
  get size (): number {
    return this.#states.size
  }

  isDue (key: K, nowMs: number): boolean {
    return isDue(this.#states.get(key), nowMs)
  }

  /** When the next try of `key` is due; undefined when it is due now (no failure on record). */
  nextAtMs (key: K): number | undefined {
    return this.#states.get(key)?.nextAtMs
  }

  /** How many of the failures of `key` since its last success were timeouts. */
  timeoutsOf (key: K): number {
    return this.#states.get(key)?.timeouts ?? 0
  }

  /** Records a failure at `nowMs` (a timeout when `timedOut`); returns when the next try is due. */
  failed (key: K, nowMs: number, timedOut = false): number {
    const state = afterFailure(this.#states.get(key), nowMs, this.#policy, timedOut)
    this.#set(key, state)
    return state.nextAtMs
  }

  /** A key that can never succeed (an address that does not parse): never due again. */
  never (key: K): void {
    this.#set(key, { nextAtMs: Number.POSITIVE_INFINITY, delayMs: this.#policy.maxMs })
  }

  succeeded (key: K): void {
    this.#states.delete(key)
  }

  #set (key: K, state: BackoffState): void {
    this.#states.delete(key)
    this.#states.set(key, state)
    if (this.#states.size > this.#maxKeys) this.#states.delete(this.#states.keys().next().value as K)
  }
}
