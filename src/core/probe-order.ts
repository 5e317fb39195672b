/**
 * The order in which a node probes its peers (SWIM's round-robin probe
 * target selection): a shuffled list walked one peer per protocol period,
 * shuffled again from the `Rng` at the end of each pass. Every live peer is
 * probed once per pass, so a failed one is found by each member within n
 * periods at worst, and by the first of them within a few periods on
 * average; a newcomer goes at a random place, not at the end, so that it is
 * not probed last by everyone (memberlist's aliveNode).
 */
import type { MemberDirectory } from './member-directory.ts'
import type { Rng } from './rng.ts'

/** Which peer to probe next, and random peers (helpers, gossip targets). */
export interface ProbeOrder {
  readonly size: number
  has: (id: string) => boolean
  add: (id: string) => void
  remove: (id: string) => void
  next: (eligible: (id: string) => boolean) => string | undefined
  sample: (k: number, eligible: (id: string) => boolean) => string[]
}

export class ShuffledOrder implements ProbeOrder {
  readonly #rng: Rng
  #list: string[] = []
  readonly #members = new Set<string>()
  #index = 0

  constructor (rng: Rng) {
    this.#rng = rng
  }

  get size (): number {
    return this.#list.length
  }

  has (id: string): boolean {
    return this.#members.has(id)
  }

  add (id: string): void {
    if (this.#members.has(id)) return
    this.#members.add(id)
    const at = Math.floor(this.#rng.next() * (this.#list.length + 1))
    this.#list.push(id)
    ;[this.#list[at], this.#list[this.#list.length - 1]] = [this.#list[this.#list.length - 1], this.#list[at]]
    // The swap may have put an unprobed peer behind the cursor: it waits for the next pass, like memberlist's.
  }

  remove (id: string): void {
    if (!this.#members.delete(id)) return
    const at = this.#list.indexOf(id)
    if (at < 0) return
    this.#list.splice(at, 1)
    if (at < this.#index) this.#index--
  }

  /** The next peer for which `eligible` holds, or undefined when none does in a whole pass. */
  next (eligible: (id: string) => boolean): string | undefined {
    for (let checked = 0; checked <= this.#list.length; checked++) {
      if (this.#index >= this.#list.length) {
        this.#shuffle()
        this.#index = 0
      }
      if (this.#list.length === 0) return undefined
      const id = this.#list[this.#index++]
      if (eligible(id)) return id
    }
    return undefined
  }

  /**
   * Up to `k` distinct peers for which `eligible` holds, at random: a few
   * random draws first (cheap in a large cluster), then a scan of the rest.
   */
  sample (k: number, eligible: (id: string) => boolean): string[] {
    const out = new Set<string>()
    const l = this.#list
    if (k <= 0 || l.length === 0) return []
    for (let tries = 0; tries < 3 * k && out.size < k; tries++) {
      const id = l[Math.floor(this.#rng.next() * l.length)]
      if (!out.has(id) && eligible(id)) out.add(id)
    }
    if (out.size < k) {
      const rest = l.filter(id => !out.has(id) && eligible(id))
      while (out.size < k && rest.length > 0) {
        const i = Math.floor(this.#rng.next() * rest.length)
        out.add(rest[i])
        rest[i] = rest[rest.length - 1]
        rest.pop()
      }
    }
    return [...out]
  }

  /** The list as it stands (for tests). */
  snapshot (): string[] {
    return [...this.#list]
  }

  #shuffle (): void {
    const l = this.#list
    for (let i = l.length - 1; i > 0; i--) {
      const j = Math.floor(this.#rng.next() * (i + 1))
      ;[l[i], l[j]] = [l[j], l[i]]
    }
  }
}

/**
 * The same round-robin over a shared directory's members (the simulator's
 * large runs), without a list per node: each pass walks the indices in the
 * order i ↦ (a·i + b) mod p, p the smallest prime ≥ n, with a and b drawn
 * from the `Rng` for each pass — every member once per pass, in an order
 * that changes from pass to pass and from node to node, in O(1) memory.
 */
export class DirectoryOrder implements ProbeOrder {
  readonly #rng: Rng
  readonly #dir: MemberDirectory
  readonly #self: string
  readonly #p: number
  #a = 1
  #b = 0
  #pos: number

  constructor (rng: Rng, directory: MemberDirectory, self: string) {
    this.#rng = rng
    this.#dir = directory
    this.#self = self
    this.#p = nextPrime(Math.max(2, directory.size))
    this.#pos = this.#p
  }

  get size (): number {
    return this.#dir.size - (this.#dir.has(this.#self) ? 1 : 0)
  }

  has (id: string): boolean {
    return id !== this.#self && this.#dir.has(id)
  }

  /** Members outside the directory are not probed in this mode. */
  add (): void {}
  remove (): void {}

  next (eligible: (id: string) => boolean): string | undefined {
    const n = this.#dir.size
    for (let checked = 0; checked <= this.#p; checked++) {
      if (this.#pos >= this.#p) {
        this.#a = 1 + Math.floor(this.#rng.next() * (this.#p - 1))
        this.#b = Math.floor(this.#rng.next() * this.#p)
        this.#pos = 0
      }
      const i = (this.#a * this.#pos++ + this.#b) % this.#p
      if (i >= n) continue
      const id = this.#dir.ids[i]
      if (id !== this.#self && eligible(id)) return id
    }
    return undefined
  }

  sample (k: number, eligible: (id: string) => boolean): string[] {
    const out = new Set<string>()
    const ids = this.#dir.ids
    for (let tries = 0; tries < 8 * k + 16 && out.size < k; tries++) {
      const id = ids[Math.floor(this.#rng.next() * ids.length)]
      if (id !== this.#self && !out.has(id) && eligible(id)) out.add(id)
    }
    return [...out]
  }
}

function nextPrime (n: number): number {
  for (let c = n; ; c++) {
    let prime = c >= 2
    for (let d = 2; d * d <= c; d++) if (c % d === 0) { prime = false; break }
    if (prime) return c
  }
}
