/**
 * The order in which a node probes its peers (SWIM's round-robin probe
 * target selection): a shuffled list walked one peer per protocol period,
 * shuffled again from the `Rng` at the end of each pass. Every live peer is
 * probed once per pass, so a failed one is found by each member within n
 * periods at worst, and by the first of them within a few periods on
 * average; a newcomer goes at a random place, not at the end, so that it is
 * not probed last by everyone (memberlist's aliveNode).
 */
import type { Rng } from './rng.ts'

export class ProbeOrder {
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
