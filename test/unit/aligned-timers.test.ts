/**
 * One timer for the agent's periodic work (src/net/aligned-timers.ts): each
 * task runs at the multiples of its period on the clock, tasks due together
 * run in one turn of the event loop (one wake-up instead of one each), a run
 * missed while the loop was busy is not made up for, a clock set back does
 * not stall them, and a cleared task runs no more.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { alignedTasks, everyAligned } from '../../src/net/aligned-timers.ts'

describe('everyAligned', () => {
  beforeEach(() => {
    vi.useFakeTimers()
    vi.setSystemTime(1_000_000_123)
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  it('runs each task at the multiples of its period, and tasks due together in one turn', () => {
    const quarter: number[] = []
    const second: number[] = []
    const pending: number[] = []
    const a = everyAligned(250, () => { quarter.push(Date.now()) })
    const b = everyAligned(1000, () => { second.push(Date.now()); pending.push(vi.getTimerCount()) })
    const c = everyAligned(1000, () => {})
    // Three tasks, one timer.
    expect(vi.getTimerCount()).toBe(1)
    vi.advanceTimersByTime(3_000)
    expect(pending).toEqual([1, 1, 1])
    a.clear()
    b.clear()
    c.clear()
    expect(vi.getTimerCount()).toBe(0)
    expect(quarter.length).toBe(12)
    expect(second.length).toBe(3)
    for (const t of quarter) expect(t % 250).toBe(0)
    // Each one-second run at a time a quarter-second one ran: the same wake-up.
    for (const t of second) {
      expect(t % 1000).toBe(0)
      expect(quarter).toContain(t)
    }
    expect(alignedTasks()).toBe(0)
  })

  it('does not make up for runs missed while the event loop was busy, nor stall when the clock is set back', () => {
    const runs: number[] = []
    const t = everyAligned(100, () => { runs.push(Date.now()) })
    vi.advanceTimersByTime(1_000)
    expect(runs.length).toBe(10)
    // The loop blocked for 550 ms: one late run, then the multiples again.
    vi.setSystemTime(Date.now() + 550)
    vi.advanceTimersByTime(200)
    expect(runs.length).toBeLessThanOrEqual(13)
    expect(runs.at(-1)! % 100).toBe(0)
    // The clock set back an hour: it runs again within a period, not in an hour.
    const before = runs.length
    vi.setSystemTime(Date.now() - 3_600_000)
    vi.advanceTimersByTime(250)
    expect(runs.length).toBeGreaterThan(before)
    t.clear()
  })

  it('runs a cleared task no more, and refuses a period that is not a positive number', () => {
    let n = 0
    const t = everyAligned(50, () => { n++ })
    vi.advanceTimersByTime(200)
    t.clear()
    t.clear()
    const was = n
    vi.advanceTimersByTime(500)
    expect(was).toBeGreaterThan(0)
    expect(n).toBe(was)
    expect(alignedTasks()).toBe(0)
    expect(() => everyAligned(0, () => {})).toThrow(RangeError)
    expect(() => everyAligned(Number.NaN, () => {})).toThrow(/period/)
  })
})
