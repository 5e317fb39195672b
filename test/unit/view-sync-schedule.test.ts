/** The anti-entropy schedule of view syncs (core/view-sync-schedule.ts): soon again after news, the interval otherwise, never when off. */
import { describe, expect, it } from 'vitest'
import { nextViewSyncMs, VIEW_GROWTH_WINDOW_MS, VIEW_SYNC_AGAIN_MS, VIEW_SYNC_GROWING_MS } from '../../src/core/view-sync-schedule.ts'

describe('view sync schedule', () => {
  it('asks again within 2 s after a sync that brought states, after the interval after one that brought none, never when off', () => {
    expect(nextViewSyncMs(3, 30_000)).toBe(VIEW_SYNC_AGAIN_MS)
    expect(nextViewSyncMs(0, 30_000)).toBe(30_000)
    expect(nextViewSyncMs(5, 1_000)).toBe(1_000)
    expect(nextViewSyncMs(5, 0)).toBeUndefined()
    expect(nextViewSyncMs(0, 0)).toBeUndefined()
  })
})

describe('view sync schedule while agents join', () => {
  it('asks again within 5 s after a sync that brought nothing while the view grew in the last 10 s, the interval once it stopped growing', () => {
    expect(VIEW_GROWTH_WINDOW_MS).toBe(10_000)
    expect(nextViewSyncMs(0, 30_000, 1_000)).toBe(VIEW_SYNC_GROWING_MS)
    expect(nextViewSyncMs(0, 30_000, 9_999)).toBe(VIEW_SYNC_GROWING_MS)
    expect(nextViewSyncMs(0, 30_000, 10_000)).toBe(30_000)
    expect(nextViewSyncMs(0, 30_000, 29_999)).toBe(30_000)
    expect(nextViewSyncMs(0, 8_000, 7_999)).toBe(VIEW_SYNC_GROWING_MS)
    expect(nextViewSyncMs(0, 8_000, 8_000)).toBe(8_000)
    expect(nextViewSyncMs(0, 30_000)).toBe(30_000)
    expect(nextViewSyncMs(2, 30_000, 1_000)).toBe(VIEW_SYNC_AGAIN_MS)
    expect(nextViewSyncMs(0, 3_000, 1_000)).toBe(3_000)
    expect(nextViewSyncMs(0, 0, 1_000)).toBeUndefined()
  })
})
