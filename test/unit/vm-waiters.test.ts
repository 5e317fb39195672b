import { describe, expect, it } from 'vitest'
import { VmWaiters } from '../../src/agent/vm-waiters.ts'

describe('VmWaiters', () => {
  it('answers a waiter when its VM is seen, and only its own', async () => {
    const w = new VmWaiters(10)
    const a = w.wait('vm-a', 10_000)
    const b = w.wait('vm-b', 50)
    expect(w.size).toBe(2)
    w.seen(['vm-x', 'vm-a'])
    expect(await a).toBe(true)
    expect(await b).toBe(false)
    expect(w.size).toBe(0)
  })

  it('answers every waiter of one VM, through check as well as seen', async () => {
    const w = new VmWaiters(10)
    const both = [w.wait('vm-a', 10_000), w.wait('vm-a', 10_000)]
    const other = w.wait('vm-b', 10_000)
    w.check(id => id === 'vm-a')
    expect(await Promise.all(both)).toEqual([true, true])
    expect(w.size).toBe(1)
    w.clear()
    expect(await other).toBe(false)
    expect(w.size).toBe(0)
  })

  it('lets no more than its maximum wait, and does not wait for nothing', async () => {
    const w = new VmWaiters(2)
    const held = [w.wait('vm-1', 10_000), w.wait('vm-2', 10_000)]
    expect(await w.wait('vm-3', 10_000)).toBe(false)
    expect(await w.wait('vm-1', 0)).toBe(false)
    expect(w.size).toBe(2)
    w.seen(['vm-1', 'vm-2'])
    expect(await Promise.all(held)).toEqual([true, true])
  })
})
