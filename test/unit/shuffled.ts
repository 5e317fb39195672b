/** Test helper: `list` in a seeded random order (Fisher–Yates over core/rng.ts), the same for the same seed. */
import { seededRng } from '../../src/core/rng.ts'

export function shuffled<T> (list: readonly T[], seed: number): T[] {
  const rng = seededRng(seed)
  const out = [...list]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1))
    ;[out[i], out[j]] = [out[j], out[i]]
  }
  return out
}
