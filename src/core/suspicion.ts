/**
 * How long a suspect has to refute before it is declared dead (Lifeguard's
 * dynamic suspicion, as in hashicorp/memberlist's suspicion.go): the timeout
 * starts at its maximum and shrinks toward the minimum, on a log scale, as
 * independent accusers confirm the suspicion. A suspicion only one member
 * holds (maybe the sick one) lasts long; one many members confirm ends soon.
 *
 * One `Suspicion` holds the accusations of one member at one incarnation:
 * who accused it and when the first accusation came. Pure: the time is passed in.
 */

/**
 * The minimum timeout: `mult × max(1, log10(n)) × interval` (memberlist's
 * `suspicionTimeout`): the time an accusation needs to reach the cluster
 * grows with log n, and so must the time a suspect has to hear it and refute.
 */
export function suspicionTimeoutMs (mult: number, n: number, intervalMs: number): number {
  const nodeScale = Math.max(1, Math.log10(Math.max(1, n)))
  return Math.floor(mult * nodeScale * intervalMs)
}

/**
 * Time left on a suspicion that `confirmations` independent accusers have
 * confirmed out of the `k` that bring it to `minMs` (memberlist's
 * `remainingSuspicionTime`): `max − log(n+1)/log(k+1) × (max − min)`, never
 * under `min`, less the time elapsed. May be negative: then it is over.
 */
export function remainingSuspicionMs (confirmations: number, k: number, elapsedMs: number, minMs: number, maxMs: number): number {
  if (k < 1) return minMs - elapsedMs
  const frac = Math.log(confirmations + 1) / Math.log(k + 1)
  const raw = maxMs - frac * (maxMs - minMs)
  return Math.max(minMs, Math.floor(raw)) - elapsedMs
}

/**
 * Accusers kept per suspicion: far more than any quorum or confirmation count
 * needs, and counting them stays cheap when a thousand members accuse a
 * killed one at once.
 */
export const MAX_ACCUSERS_KEPT = 32

export interface SuspicionInit {
  startMs: number
  /** Confirmations (accusers beyond the first) that bring the timeout down to `minMs`. */
  k: number
  minMs: number
  maxMs: number
}

/** The accusations of one member at one incarnation. */
export class Suspicion {
  startMs: number
  readonly k: number
  readonly minMs: number
  readonly maxMs: number
  /** Every accuser heard of, with when we first heard of its accusation. */
  readonly accusers = new Map<string, number>()

  constructor (init: SuspicionInit) {
    this.startMs = init.startMs
    this.k = init.k
    this.minMs = init.minMs
    this.maxMs = init.maxMs
  }

  /** Moves the start later: time this node spent unable to run (paused, starved) does not count against the suspect. */
  delay (ms: number): void {
    this.startMs += ms
  }

  /** Records an accuser; false when it was known already. */
  add (accuser: string, nowMs: number): boolean {
    if (this.accusers.has(accuser) || this.accusers.size >= MAX_ACCUSERS_KEPT) return false
    this.accusers.set(accuser, nowMs)
    return true
  }

  has (accuser: string): boolean {
    return this.accusers.has(accuser)
  }

  /**
   * When the suspicion is over, given which accusers count (those we believe
   * alive, and ourselves): the first accuser starts it, each further one
   * confirms it.
   */
  deadlineMs (counts: (accuser: string) => boolean): number {
    const n = this.count(counts)
    return this.startMs + remainingSuspicionMs(Math.max(0, n - 1), this.k, 0, this.minMs, this.maxMs)
  }

  /** Accusers that count. */
  count (counts: (accuser: string) => boolean): number {
    let n = 0
    for (const a of this.accusers.keys()) if (counts(a)) n++
    return n
  }

  /** Accusers that count, at most `max`, first heard first. */
  list (counts: (accuser: string) => boolean, max: number): string[] {
    const out: string[] = []
    for (const a of this.accusers.keys()) {
      if (out.length >= max) break
      if (counts(a)) out.push(a)
    }
    return out
  }
}
