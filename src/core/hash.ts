/**
 * Spreads, not secrets: the hashes that order peers on rings and pair
 * ranks (ring.ts, fanout.ts, monitor-rings.ts) and the simulator's fates of
 * messages. Pure and deterministic.
 */

/** FNV-1a, 32 bits. */
export function fnv1a (s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

/**
 * MurmurHash3's 32-bit finalizer: every input bit moves every output bit.
 * FNV-1a alone leaves ids that differ only in their last characters close
 * together.
 */
export function fmix32 (h: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/**
 * FNV-1a then the finalizer. Without the finalizer, ids that differ in their
 * last characters only (as peer ids of one cluster may) got ranks close
 * together, and a few agents were everybody's first choice.
 */
export function spreadHash (text: string): number {
  return fmix32(fnv1a(text))
}
