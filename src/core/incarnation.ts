/**
 * A member's incarnation: `run`, the start time of its process (a restarted
 * agent starts above every incarnation of its previous run), and `inc`,
 * raised by one each time it refutes an accusation within that run.
 */
import type { SwimUpdate } from './swim-messages.ts'

export interface Incarnation {
  run: number
  inc: number
}

/** Negative, zero or positive as `a` is older than, the same as, or newer than `b`. */
export function compareIncarnation (a: Incarnation, b: Incarnation): number {
  return a.run !== b.run ? a.run - b.run : a.inc - b.inc
}

/**
 * Our incarnation after an update about us: an accusation at ours or above
 * (or word of a later run: a clock set back) is refuted by raising it;
 * undefined when there is nothing to refute.
 */
export function refutation (u: SwimUpdate, own: Incarnation): Incarnation | undefined {
  const cmp = compareIncarnation(u, own)
  if (u.status === 'alive' ? cmp <= 0 : cmp < 0) return undefined
  return u.run > own.run ? { run: u.run, inc: u.inc + 1 } : { run: own.run, inc: Math.max(own.inc, u.inc) + 1 }
}
