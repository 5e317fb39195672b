/**
 * What the agent hands the core as time and randomness: the system's clock,
 * and a seeded generator. Decisions draw from the `Rng`, never from
 * `Math.random`, so that a run can be replayed from the seed it logs.
 */
import { randomInt } from 'node:crypto'
import type { Clock } from '../core/clock.ts'
import { type Rng, seededRng } from '../core/rng.ts'

export const systemClock: Clock = Object.freeze({ now: () => Date.now() })

/** The agent's generator: from `seed` when given, else from a fresh random seed (returned, to be logged). */
export function agentRng (seed?: number): { rng: Rng, seed: number } {
  const s = seed ?? randomInt(0, 2 ** 31)
  return { rng: seededRng(s), seed: s }
}
