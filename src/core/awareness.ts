/**
 * Lifeguard's local health awareness (hashicorp/memberlist's awareness.go): a
 * score of how unsure this node is of its own ability to probe in time. Its
 * probes failing while the helpers' nacks do not come back, its having to
 * refute accusations, its timers firing late (its event loop starved, or the
 * process paused) raise it; each probe answered in time lowers it. Timeouts
 * and the probe interval are stretched by (score + 1): a node that is the
 * slow one waits longer before it accuses healthy peers.
 */
export class Awareness {
  readonly #max: number
  #score = 0

  /** `max`: the largest multiplier (the score stays below it). */
  constructor (max: number) {
    this.#max = Math.max(1, Math.floor(max))
  }

  get score (): number {
    return this.#score
  }

  /** Whether the score is as high as it goes: this node believes itself the unhealthy one. */
  get atMax (): boolean {
    return this.#score >= this.#max - 1
  }

  /** Adds `delta`, keeping the score within 0 … max − 1; returns whether it changed. */
  apply (delta: number): boolean {
    const before = this.#score
    this.#score = Math.min(this.#max - 1, Math.max(0, this.#score + delta))
    return this.#score !== before
  }

  /** A duration stretched by the current score. */
  scale (ms: number): number {
    return ms * (this.#score + 1)
  }
}
