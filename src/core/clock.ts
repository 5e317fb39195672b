/**
 * Time is passed into core, never read inside it. The agent hands core a
 * clock that reads the system's; the simulator one that reads its virtual
 * time; the tests one they move by hand.
 */
export interface Clock {
  /** Milliseconds since the epoch (or since the start of a simulation). */
  now (): number
}

/** A clock the caller sets: for tests and simulations. */
export class ManualClock implements Clock {
  #now: number

  constructor (startMs = 0) {
    this.#now = startMs
  }

  now (): number {
    return this.#now
  }

  set (ms: number): void {
    this.#now = ms
  }

  advance (ms: number): number {
    this.#now += ms
    return this.#now
  }
}
