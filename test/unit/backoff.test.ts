/** The redial back-off as a pure schedule: doubling from min to max, due when its time comes, forgotten on success. */
import { describe, expect, it } from 'vitest'
import { afterFailure, Backoff, isDue, stretchedTimeoutMs, type BackoffState } from '../../src/core/backoff.ts'

describe('afterFailure', () => {
  it.each([
    { name: 'doubles from min to max, from the time of each failure', minMs: 100, maxMs: 1000, failuresAt: [0, 100, 300, 700, 1500, 2500], nextAt: [100, 300, 700, 1500, 2500, 3500] },
    { name: 'a late retry waits from when it failed, not from when it was due', minMs: 100, maxMs: 1000, failuresAt: [0, 5000, 9000], nextAt: [100, 5200, 9400] },
    { name: 'a maximum that is not a power of two of the minimum caps the delay', minMs: 300, maxMs: 1000, failuresAt: [0, 300, 900, 1900], nextAt: [300, 900, 1900, 2900] },
    { name: 'min equal to max: a constant delay', minMs: 500, maxMs: 500, failuresAt: [0, 500, 1000], nextAt: [500, 1000, 1500] }
  ])('$name', ({ minMs, maxMs, failuresAt, nextAt }) => {
    let state: BackoffState | undefined
    const got: number[] = []
    for (const t of failuresAt) {
      state = afterFailure(state, t, { minMs, maxMs })
      got.push(state.nextAtMs)
    }
    expect(got).toEqual(nextAt)
  })
})

describe('isDue', () => {
  it.each([
    { state: undefined, now: 0, due: true },
    { state: { nextAtMs: 100, delayMs: 100 }, now: 99, due: false },
    { state: { nextAtMs: 100, delayMs: 100 }, now: 100, due: true },
    { state: { nextAtMs: 100, delayMs: 100 }, now: 101, due: true },
    { state: { nextAtMs: Number.POSITIVE_INFINITY, delayMs: 100 }, now: Number.MAX_SAFE_INTEGER, due: false }
  ])('at $now with $state: $due', ({ state, now, due }) => {
    expect(isDue(state, now)).toBe(due)
  })
})

describe('Backoff per key', () => {
  it('keeps a schedule per key, resets a key on success, and never dials a key marked never', () => {
    const b = new Backoff<string>({ minMs: 100, maxMs: 400 })
    expect(b.isDue('a', 0)).toBe(true)
    expect(b.nextAtMs('a')).toBeUndefined()
    expect(b.failed('a', 0)).toBe(100)
    expect(b.failed('b', 50)).toBe(150)
    expect([b.isDue('a', 99), b.isDue('a', 100), b.isDue('b', 100), b.isDue('c', 0)]).toEqual([false, true, false, true])
    expect(b.failed('a', 100)).toBe(300)
    expect(b.failed('a', 300)).toBe(700)
    expect(b.failed('a', 700)).toBe(1100)
    b.succeeded('a')
    expect(b.isDue('a', 700)).toBe(true)
    expect(b.failed('a', 2000)).toBe(2100)
    b.never('bad')
    expect(b.isDue('bad', Number.MAX_SAFE_INTEGER)).toBe(false)
    expect(b.size).toBe(3)
  })

  it('forgets the oldest key beyond maxKeys', () => {
    const b = new Backoff<number>({ minMs: 10, maxMs: 10, maxKeys: 2 })
    b.failed(1, 0)
    b.failed(2, 0)
    b.failed(1, 5)
    b.failed(3, 0)
    expect([b.nextAtMs(1), b.nextAtMs(2), b.nextAtMs(3)]).toEqual([15, undefined, 10])
  })

  it.each([
    { init: { minMs: 0, maxMs: 100 }, error: 'Expected `minMs` to be a finite number > 0, got `0` (number)' },
    { init: { minMs: 100, maxMs: 50 }, error: 'Expected `maxMs` to be a finite number >= 100, got `50` (number)' },
    { init: { minMs: 100, maxMs: Number.NaN }, error: 'Expected `maxMs` to be a finite number >= 100, got `NaN` (number)' },
    { init: { minMs: '1s' as unknown as number, maxMs: 100 }, error: 'Expected `minMs` to be a finite number > 0, got `1s` (string)' },
    { init: { minMs: 1, maxMs: 1, maxKeys: 0.5 }, error: 'Expected `maxKeys` to be an integer >= 1, got `0.5` (number)' }
  ])('refuses $init with a message that says what was expected', ({ init, error }) => {
    expect(() => new Backoff(init)).toThrow(expect.objectContaining({ name: 'InvalidOptionError', message: error }))
  })
})

describe('Backoff timeouts', () => {
  it('counts the failures of a key that were timeouts, keeps the count through other failures, and forgets it at a success', () => {
    const b = new Backoff<string>({ minMs: 1, maxMs: 1 })
    expect(b.timeoutsOf('a')).toBe(0)
    b.failed('a', 0, true)
    b.failed('a', 1, true)
    expect(b.timeoutsOf('a')).toBe(2)
    b.failed('a', 2)
    expect(b.timeoutsOf('a')).toBe(2)
    expect(b.timeoutsOf('b')).toBe(0)
    b.succeeded('a')
    expect(b.timeoutsOf('a')).toBe(0)
  })
})

describe('stretchedTimeoutMs', () => {
  it('doubles the base with each timeout counted, up to maxDoublings, and takes nonsense counts as none', () => {
    expect([0, 1, 2, 3, 4, 100].map(n => stretchedTimeoutMs(5_000, n, 3))).toEqual([5_000, 10_000, 20_000, 40_000, 40_000, 40_000])
    expect(stretchedTimeoutMs(5_000, -1, 3)).toBe(5_000)
    expect(stretchedTimeoutMs(5_000, 1.5, 3)).toBe(10_000)
    expect(stretchedTimeoutMs(5_000, 2, 0)).toBe(5_000)
  })
})
