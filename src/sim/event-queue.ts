/** A binary min-heap of timed events; equal times run in insertion order, so a run is deterministic. */
export interface SimEvent {
  atMs: number
  seq: number
  run: () => void
}

export class EventQueue {
  readonly #heap: SimEvent[] = []
  #seq = 0

  get size (): number { return this.#heap.length }

  push (atMs: number, run: () => void): void {
    const e = { atMs, seq: this.#seq++, run }
    const h = this.#heap
    h.push(e)
    let i = h.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!before(h[i], h[p])) break
      ;[h[i], h[p]] = [h[p], h[i]]
      i = p
    }
  }

  pop (): SimEvent | undefined {
    const h = this.#heap
    if (h.length === 0) return undefined
    const top = h[0]
    const last = h.pop()!
    if (h.length > 0) {
      h[0] = last
      let i = 0
      while (true) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < h.length && before(h[l], h[m])) m = l
        if (r < h.length && before(h[r], h[m])) m = r
        if (m === i) break
        ;[h[i], h[m]] = [h[m], h[i]]
        i = m
      }
    }
    return top
  }

  peekTime (): number | undefined {
    return this.#heap[0]?.atMs
  }
}

function before (a: SimEvent, b: SimEvent): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq)
}
