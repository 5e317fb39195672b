import { describe, expect, it } from 'vitest'
import { add, dominantShare, equals, fits, free, sub, sum, ZERO, type Resources } from '../../src/core/resources.ts'

const r = (cpu: number, memMiB: number): Resources => ({ cpu, memMiB })

describe('add / sub', () => {
  it.each([
    { a: r(0, 0), b: r(0, 0), sum: r(0, 0) },
    { a: r(2, 1024), b: r(3, 512), sum: r(5, 1536) },
    { a: r(1, 0), b: r(0, 2048), sum: r(1, 2048) }
  ])('$a + $b = $sum, and ($a + $b) - $b = $a', ({ a, b, sum: expected }) => {
    expect(add(a, b)).toEqual(expected)
    expect(add(b, a)).toEqual(expected)
    expect(sub(add(a, b), b)).toEqual(a)
  })

  it.each([
    { a: r(4, 4096), b: r(1, 1024), diff: r(3, 3072) },
    { a: r(1, 512), b: r(2, 1024), diff: r(-1, -512) }
  ])('$a - $b = $diff (negative results are kept, not clamped)', ({ a, b, diff }) => {
    expect(sub(a, b)).toEqual(diff)
  })

  it('returns new vectors and leaves its arguments alone', () => {
    const a = r(1, 2)
    const b = r(3, 4)
    const s = add(a, b)
    const d = sub(a, b)
    expect(s).not.toBe(a)
    expect(d).not.toBe(a)
    expect(a).toEqual(r(1, 2))
    expect(b).toEqual(r(3, 4))
  })

  it('ZERO is frozen and the identity of add', () => {
    expect(Object.isFrozen(ZERO)).toBe(true)
    expect(add(ZERO, r(7, 9))).toEqual(r(7, 9))
  })
})

describe('sum', () => {
  it.each([
    { list: [], total: r(0, 0) },
    { list: [r(1, 100)], total: r(1, 100) },
    { list: [r(1, 100), r(2, 200), r(3, 300)], total: r(6, 600) }
  ])('sum of $list.length vectors is $total', ({ list, total }) => {
    expect(sum(list)).toEqual(total)
  })

  it('takes any iterable', () => {
    expect(sum(new Map([['a', r(1, 1)], ['b', r(2, 2)]]).values())).toEqual(r(3, 3))
  })
})

describe('fits', () => {
  it.each([
    { need: r(0, 0), free: r(0, 0), fits: true },
    { need: r(2, 1024), free: r(2, 1024), fits: true },
    { need: r(1, 512), free: r(4, 4096), fits: true },
    { need: r(3, 512), free: r(2, 4096), fits: false },
    { need: r(1, 4097), free: r(4, 4096), fits: false },
    { need: r(5, 5000), free: r(4, 4096), fits: false },
    { need: r(0, 0), free: r(-1, 100), fits: false },
    { need: r(1, 1), free: r(-1, -1), fits: false }
  ])('$need in $free → $fits', ({ need, free: available, fits: expected }) => {
    expect(fits(need, available)).toBe(expected)
  })
})

describe('free', () => {
  it.each([
    { capacity: r(8, 16384), committed: r(0, 0), ratio: undefined, free: r(8, 16384) },
    { capacity: r(8, 16384), committed: r(3, 4096), ratio: undefined, free: r(5, 12288) },
    { capacity: r(8, 16384), committed: r(3, 4096), ratio: 1, free: r(5, 12288) },
    // CPU is over-committed by the ratio; memory never is.
    { capacity: r(8, 16384), committed: r(3, 4096), ratio: 2, free: r(13, 12288) },
    { capacity: r(8, 16384), committed: r(16, 16384), ratio: 2, free: r(0, 0) },
    // The over-committed CPU count is rounded down to whole vCPUs: 3 × 1.5 = 4.5 → 4.
    { capacity: r(3, 1024), committed: r(0, 0), ratio: 1.5, free: r(4, 1024) },
    { capacity: r(3, 1024), committed: r(4, 0), ratio: 1.5, free: r(0, 1024) },
    // Committed beyond capacity shows as a negative free.
    { capacity: r(2, 1024), committed: r(3, 2048), ratio: 1, free: r(-1, -1024) }
  ])('capacity $capacity, committed $committed, ratio $ratio → $free', ({ capacity, committed, ratio, free: expected }) => {
    expect(free(capacity, committed, ratio)).toEqual(expected)
  })
})

describe('dominantShare', () => {
  it.each([
    { use: r(0, 0), capacity: r(8, 16384), share: 0 },
    { use: r(4, 1024), capacity: r(8, 16384), share: 0.5 },
    { use: r(1, 12288), capacity: r(8, 16384), share: 0.75 },
    { use: r(8, 16384), capacity: r(8, 16384), share: 1 },
    { use: r(16, 0), capacity: r(8, 16384), share: 2 },
    // A dimension with no capacity: using none of it costs nothing, using any is infinite.
    { use: r(0, 512), capacity: r(0, 1024), share: 0.5 },
    { use: r(1, 512), capacity: r(0, 1024), share: Infinity },
    { use: r(1, 1), capacity: r(4, 0), share: Infinity },
    { use: r(0, 0), capacity: r(0, 0), share: 0 }
  ])('$use of $capacity → $share', ({ use, capacity, share }) => {
    expect(dominantShare(use, capacity)).toBe(share)
  })
})

describe('equals', () => {
  it.each([
    { a: r(1, 2), b: r(1, 2), equal: true },
    { a: r(1, 2), b: r(2, 2), equal: false },
    { a: r(1, 2), b: r(1, 3), equal: false },
    { a: ZERO, b: r(0, 0), equal: true }
  ])('$a = $b → $equal', ({ a, b, equal }) => {
    expect(equals(a, b)).toBe(equal)
  })
})
