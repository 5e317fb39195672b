/**
 * Requests waiting for a VM to become known to this agent (`GET
 * /v1/vms/:id?wait=5s`): by its own placement, or by a peer's gossip. Each
 * waits until the VM shows up or its deadline passes; at most `max` wait at
 * once, so that waiting costs bounded memory whatever clients do.
 */
export class VmWaiters {
  readonly #max: number
  readonly #waiting = new Map<string, Set<(seen: boolean) => void>>()
  #count = 0

  constructor (max: number) {
    this.#max = max
  }

  /** How many requests wait now. */
  get size (): number {
    return this.#count
  }

  /** Resolves true when `seen` is called for `id` within `timeoutMs`, false otherwise (or when full). */
  async wait (id: string, timeoutMs: number): Promise<boolean> {
    if (this.#count >= this.#max || timeoutMs <= 0) return false
    return await new Promise<boolean>(resolve => {
      const set = this.#waiting.get(id) ?? new Set()
      this.#waiting.set(id, set)
      this.#count++
      const done = (seen: boolean): void => {
        clearTimeout(timer)
        if (!set.delete(done)) return
        this.#count--
        if (set.size === 0 && this.#waiting.get(id) === set) this.#waiting.delete(id)
        resolve(seen)
      }
      const timer = setTimeout(() => { done(false) }, timeoutMs)
      timer.unref()
      set.add(done)
    })
  }

  /** These VMs are known now: their waiters are answered. */
  seen (ids: Iterable<string>): void {
    if (this.#count === 0) return
    for (const id of ids) this.#wake(id, true)
  }

  /** Every waiting id that `known` says is known now is answered. */
  check (known: (id: string) => boolean): void {
    if (this.#count === 0) return
    for (const id of [...this.#waiting.keys()]) if (known(id)) this.#wake(id, true)
  }

  /** Answers every waiter: not seen (the agent stops). */
  clear (): void {
    for (const id of [...this.#waiting.keys()]) this.#wake(id, false)
  }

  #wake (id: string, seen: boolean): void {
    const set = this.#waiting.get(id)
    if (set == null) return
    for (const done of [...set]) done(seen)
  }
}
