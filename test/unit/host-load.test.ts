/** The host's run queue as the agent reads it for its detector (agent/host-load.ts): /proc/loadavg's runnable threads, ourselves excepted, smoothed. */
import { describe, expect, it } from 'vitest'
import { HostLoad, runnableNow } from '../../src/agent/host-load.ts'

describe('host load', () => {
  it('reads the runnable threads of /proc/loadavg, less our own', () => {
    expect(runnableNow(() => '0.52 0.58 0.59 7/805 24649\n')).toBe(6)
    expect(runnableNow(() => '154.52 70.95 40.45 166/805 24649\n')).toBe(165)
    expect(runnableNow(() => '0.00 0.00 0.00 1/90 1\n')).toBe(0)
  })

  it('falls back to the one-minute load average when the file cannot be read or parsed', () => {
    const fallback = runnableNow(() => { throw new Error('ENOENT') })
    expect(fallback).toBeGreaterThanOrEqual(0)
    expect(runnableNow(() => 'garbage')).toBe(fallback)
  })

  it('smooths: a burst moves it part of the way, a steady queue is reached', () => {
    const h = new HostLoad()
    expect(h.sample(0)).toBe(0)
    const once = h.sample(100)!
    expect(once).toBeGreaterThan(0)
    expect(once).toBeLessThan(50)
    let v = once
    for (let i = 0; i < 30; i++) v = h.sample(100)!
    expect(v).toBeGreaterThan(99)
    expect(h.cores).toBeGreaterThanOrEqual(1)
  })
})
