/** Randomness is passed into core, never drawn inside it: a seeded PRNG (mulberry32) for tests and the simulator. */
export interface Rng {
  /** A number in [0, 1). */
  next (): number
}

export function seededRng (seed: number): Rng {
  let a = seed >>> 0
  return {
    next () {
      a = (a + 0x6D2B79F5) >>> 0
      let t = a
      t = Math.imul(t ^ (t >>> 15), t | 1)
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296
    }
  }
}
