/** How busy the host keeps an agent's process (agent/host-load.ts): /proc/self/schedstat's run and wait times, as (run + wait) / run, smoothed. */
import { readdirSync, readlinkSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { HostLoad, schedTimes } from '../../src/agent/host-load.ts'

const MS = 1_000_000

describe('host load', () => {
  it('reads run and wait times from schedstat; nothing when it cannot', () => {
    expect(schedTimes(() => '11084394522 203411429677 12385\n')).toEqual({ runNs: 11084394522, waitNs: 203411429677, wakeups: 12385 })
    expect(schedTimes(() => { throw new Error('ENOENT') })).toBeUndefined()
    expect(schedTimes(() => 'garbage')).toBeUndefined()
  })

  it('reads this process on Linux', () => {
    if (process.platform !== 'linux') return
    const t = schedTimes()
    expect(t?.runNs).toBeGreaterThan(0)
  })

  it('reads this process through a file kept open, the same figures as a fresh read and growing, and closes it', () => {
    if (process.platform !== 'linux') return
    const fds = (): number => readdirSync('/proc/self/fd').filter(fd => { try { return readlinkSync(`/proc/self/fd/${fd}`).endsWith('/schedstat') } catch { return false } }).length
    const before = fds()
    const h = new HostLoad()
    const first = h.read()!
    let spin = 0
    for (let i = 0; i < 2_000_000; i++) spin += i
    expect(spin).toBeGreaterThan(0)
    const second = h.read()!
    const fresh = schedTimes()!
    expect(second.runNs).toBeGreaterThan(first.runNs)
    expect(fresh.runNs).toBeGreaterThanOrEqual(second.runNs)
    expect(fds()).toBe(before + 1)
    h.read()
    expect(fds()).toBe(before + 1)
    h.close()
    expect(fds()).toBe(before)
  })

  it('is 1 on a host with room, moves towards (run + wait beyond 1 ms a wake-up) / run on a busy one, and ignores a process that barely ran', () => {
    const h = new HostLoad()
    expect(h.sample({ runNs: 0, waitNs: 0, wakeups: 0 })).toBeUndefined()
    // Short bursts on an idle host: 3 ms run, 2 ms waited over 70 wake-ups: no slowdown.
    expect(h.sample({ runNs: 3 * MS, waitNs: 2 * MS, wakeups: 70 })).toBe(1)
    // 30 ms run and 886 ms waited over 21 wake-ups in a second, as measured with 50 agents under load: about 29×.
    let v = h.sample({ runNs: 33 * MS, waitNs: 888 * MS, wakeups: 91 })!
    expect(v).toBeGreaterThan(5)
    expect(v).toBeLessThan(29)
    for (let i = 2; i < 30; i++) v = h.sample({ runNs: (3 + 30 * i) * MS, waitNs: (2 + 886 * i) * MS, wakeups: 70 + 21 * i })!
    expect(v).toBeGreaterThan(28)
    expect(v).toBeLessThan(30)
    // An idle second (0.1 ms run) is no evidence either way: the ratio counts as 1.
    const before = v
    v = h.sample({ runNs: (3 + 30 * 29) * MS + 100_000, waitNs: (2 + 886 * 29) * MS + 5 * MS, wakeups: 70 + 21 * 29 + 5 })!
    expect(v).toBeLessThan(before)
  })
})
