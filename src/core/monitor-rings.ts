/**
 * Who watches whom in the failure detector when not every member may talk to
 * every other (Rapid's monitoring topology, Suresh et al., ATC'18): `k`
 * pseudo-random rings over the members, ring i ordering them by
 * hash(i, id). On each ring a member observes its successor and is observed
 * by its predecessor; deduplicated over the rings, each member observes
 * about `k` subjects and is observed by about `k` observers, so it talks to
 * about 2k peers for detection, whatever the cluster's size. The rings depend
 * on the member ids only: every member that knows the same members computes
 * the same observers of anyone, and can tell whose accusation of a member
 * counts.
 *
 * The rings hold every member known, dead ones included; each walk is given
 * which members are live and steps over the others. So a death or a
 * revival changes no ring (the dead member's predecessors simply observe the
 * next one along), only a member added or forgotten does — and a dead member
 * met on the way to a subject is one a member would observe if it were
 * alive: it is the one that pings it, so that it learns of its death and
 * refutes (after a partition heals, for instance).
 */
import { spreadHash } from './hash.ts'

interface Entry {
  key: number
  id: string
}

function before (a: Entry, b: Entry): boolean {
  return a.key !== b.key ? a.key < b.key : a.id < b.id
}

/** The first index whose entry is not before `e` (where `e` goes). */
function lowerBound (ring: Entry[], e: Entry): number {
  let lo = 0
  let hi = ring.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (before(ring[mid], e)) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** A member's key on ring `i`. */
export function ringKey (i: number, id: string): number {
  return spreadHash(`${i}|${id}`)
}

export interface Walk {
  /** Live members observed (deduplicated), ring by ring. */
  subjects: string[]
  /** Members not live met before a subject: those this member would observe if they were alive. */
  passed: string[]
}

export class MonitorRings {
  readonly k: number
  readonly #rings: Entry[][]
  readonly #ids = new Set<string>()
  #version = 0

  constructor (k: number, ids: Iterable<string> = []) {
    this.k = k
    this.#rings = Array.from({ length: k }, () => [])
    const all = [...new Set(ids)]
    for (const id of all) this.#ids.add(id)
    for (let i = 0; i < k; i++) {
      this.#rings[i] = all.map(id => ({ key: ringKey(i, id), id }))
      this.#rings[i].sort((a, b) => (before(a, b) ? -1 : before(b, a) ? 1 : 0))
    }
  }

  get size (): number {
    return this.#ids.size
  }

  has (id: string): boolean {
    return this.#ids.has(id)
  }

  /** Changes with every member added or removed: what a walk found holds while it and the liveness it was given do not change. */
  get version (): number {
    return this.#version
  }

  add (id: string): void {
    if (this.#ids.has(id)) return
    this.#ids.add(id)
    this.#version++
    for (let i = 0; i < this.k; i++) {
      const e = { key: ringKey(i, id), id }
      this.#rings[i].splice(lowerBound(this.#rings[i], e), 0, e)
    }
  }

  remove (id: string): void {
    if (!this.#ids.delete(id)) return
    this.#version++
    for (let i = 0; i < this.k; i++) {
      const ring = this.#rings[i]
      const at = lowerBound(ring, { key: ringKey(i, id), id })
      if (ring[at]?.id === id) ring.splice(at, 1)
    }
  }

  /** The live members `id` observes: on each ring, the first live member after it; and the members not live on the way. */
  walk (id: string, live: (id: string) => boolean): Walk {
    const subjects = new Set<string>()
    const passed = new Set<string>()
    for (let i = 0; i < this.k; i++) {
      const ring = this.#rings[i]
      const n = ring.length
      if (n === 0) continue
      const start = lowerBound(ring, { key: ringKey(i, id), id })
      for (let step = 0; step < n; step++) {
        const other = ring[(start + step) % n].id
        if (other === id) continue
        if (live(other)) {
          subjects.add(other)
          break
        }
        passed.add(other)
      }
    }
    return { subjects: [...subjects], passed: [...passed].filter(p => !subjects.has(p)) }
  }

  /** The live members that observe `id` (whether `id` is a member or not): on each ring, the first live member before it. */
  observers (id: string, live: (id: string) => boolean): string[] {
    const out = new Set<string>()
    for (let i = 0; i < this.k; i++) {
      const ring = this.#rings[i]
      const n = ring.length
      if (n === 0) continue
      const start = lowerBound(ring, { key: ringKey(i, id), id })
      for (let step = 1; step <= n; step++) {
        const other = ring[(start - step + n * 2) % n].id
        if (other === id) continue
        if (live(other)) {
          out.add(other)
          break
        }
      }
    }
    return [...out]
  }
}

const shared = new WeakMap<object, Map<number, MonitorRings>>()

/** One set of rings per shared member list (the simulator's directory: 10,000 detectors, one copy). */
export function sharedRings (owner: object, ids: readonly string[], k: number): MonitorRings {
  let byK = shared.get(owner)
  if (byK == null) shared.set(owner, byK = new Map())
  let rings = byK.get(k)
  if (rings == null) byK.set(k, rings = new MonitorRings(k, ids))
  return rings
}
