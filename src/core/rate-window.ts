/** Events per second over the last `windowMs`, in buckets of a tenth of it: constant memory whatever the rate. Time is passed in. */
export class RateWindow {
  readonly #bucketMs: number
  readonly #counts: number[]
  #bucketAt = 0

  constructor (windowMs: number, buckets = 10) {
    this.#bucketMs = windowMs / buckets
    this.#counts = new Array<number>(buckets).fill(0)
  }

  add (nowMs: number, n = 1): void {
    this.#advance(nowMs)
    this.#counts[this.#counts.length - 1] += n
  }

  perSecond (nowMs: number): number {
    this.#advance(nowMs)
    return this.#counts.reduce((a, b) => a + b, 0) * 1000 / (this.#bucketMs * this.#counts.length)
  }

  #advance (nowMs: number): void {
    const bucket = Math.floor(nowMs / this.#bucketMs)
    const steps = Math.min(this.#counts.length, bucket - this.#bucketAt)
    for (let i = 0; i < steps; i++) {
      this.#counts.shift()
      this.#counts.push(0)
    }
    if (steps > 0 || this.#bucketAt === 0) this.#bucketAt = bucket
  }
}
