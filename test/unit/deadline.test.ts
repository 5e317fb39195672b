/**
 * `deadline` (src/net/deadline.ts): a signal that aborts with a TimeoutError
 * after its time, and never once cleared; `withDeadline` clears it however
 * its function ends.
 */
import { describe, expect, it, vi } from 'vitest'
import { deadline, withDeadline } from '../../src/net/deadline.ts'

describe('deadline', () => {
  it('aborts with a TimeoutError once its time is up', () => {
    vi.useFakeTimers()
    try {
      const d = deadline(500)
      vi.advanceTimersByTime(499)
      expect(d.signal.aborted).toBe(false)
      vi.advanceTimersByTime(1)
      expect(d.signal.aborted).toBe(true)
      expect((d.signal.reason as DOMException).name).toBe('TimeoutError')
    } finally {
      vi.useRealTimers()
    }
  })

  it('never aborts once cleared', () => {
    vi.useFakeTimers()
    try {
      const d = deadline(500)
      let fired = 0
      d.signal.addEventListener('abort', () => { fired++ })
      d.clear()
      vi.advanceTimersByTime(10_000)
      expect(d.signal.aborted).toBe(false)
      expect(fired).toBe(0)
    } finally {
      vi.useRealTimers()
    }
  })

  it('withDeadline clears the deadline when its function returns or throws', async () => {
    vi.useFakeTimers()
    try {
      let seen: AbortSignal | undefined
      expect(await withDeadline(500, async (signal) => { seen = signal; return 7 })).toBe(7)
      await expect(withDeadline(500, async () => { throw new Error('boom') })).rejects.toThrow('boom')
      expect(vi.getTimerCount()).toBe(0)
      vi.advanceTimersByTime(10_000)
      expect(seen!.aborted).toBe(false)
    } finally {
      vi.useRealTimers()
    }
  })
})
