/**
 * The ring the rebalancing events travel along: peers ordered by a hash of
 * their id (FNV-1a, 32 bits; ties by id), so that neighbours on the ring are
 * unrelated to start order or address. Pure and deterministic.
 */
import { fnv1a } from './hash.ts'
export class Ring {
  readonly #ids: string[]
  readonly #hashes: number[]
  readonly #index = new Map<string, number>()

  constructor (peerIds: Iterable<string>) {
    const entries = [...new Set(peerIds)].map(id => ({ id, h: fnv1a(id) }))
    entries.sort((a, b) => a.h - b.h || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    this.#ids = entries.map(e => e.id)
    this.#hashes = entries.map(e => e.h)
    this.#ids.forEach((id, i) => this.#index.set(id, i))
  }

  get size (): number { return this.#ids.length }

  has (id: string): boolean { return this.#index.has(id) }

  ids (): readonly string[] { return this.#ids }

  /** The next peer after `id` on the ring; for an id not on the ring, the first peer after its hash. */
  successor (id: string): string | undefined {
    if (this.#ids.length === 0) return undefined
    const i = this.#index.get(id)
    if (i != null) return this.#ids.length === 1 ? undefined : this.#ids[(i + 1) % this.#ids.length]
    const h = fnv1a(id)
    let lo = 0
    let hi = this.#ids.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (this.#hashes[mid] < h || (this.#hashes[mid] === h && this.#ids[mid] <= id)) lo = mid + 1
      else hi = mid
    }
    return this.#ids[lo % this.#ids.length]
  }

  /** The peer before `id` on the ring (undefined for an id not on it, or alone). */
  predecessor (id: string): string | undefined {
    const i = this.#index.get(id)
    if (i == null || this.#ids.length === 1) return undefined
    return this.#ids[(i - 1 + this.#ids.length) % this.#ids.length]
  }

  /** The `k` peers after `id`, without `id` itself. */
  successors (id: string, k: number): string[] {
    const out: string[] = []
    let cur = id
    for (let n = 0; n < Math.min(k, this.#ids.length - (this.#index.has(id) ? 1 : 0)); n++) {
      const next = this.successor(cur)
      if (next == null || next === id) break
      out.push(next)
      cur = next
    }
    return out
  }
}
