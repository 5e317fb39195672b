import { describe, expect, it } from 'vitest'
import { max, mean, percentile } from '../../src/core/stats.ts'

describe('percentile (q from 0 to 1, nearest rank)', () => {
  it.each([
    { values: [5], p: 0.99, want: 5 },
    { values: [3, 1, 2], p: 0, want: 1 },
    { values: [3, 1, 2], p: 0.5, want: 2 },
    { values: [3, 1, 2], p: 1, want: 3 },
    { values: Array.from({ length: 100 }, (_, i) => 100 - i), p: 0.99, want: 99 },
    { values: Array.from({ length: 100 }, (_, i) => i + 1), p: 0.5, want: 50 }
  ])('p$p of $values.length values → $want', ({ values, p, want }) => {
    expect(percentile(values, p)).toBe(want)
  })

  it('of nothing is NaN', () => {
    expect(percentile([], 0.5)).toBeNaN()
  })
})

describe('mean and max', () => {
  it.each([
    { values: [4], mean: 4, max: 4 },
    { values: [1, 2, 3, 6], mean: 3, max: 6 },
    { values: [-2, -8], mean: -5, max: -2 }
  ])('$values', ({ values, mean: m, max: x }) => {
    expect(mean(values)).toBe(m)
    expect(max(values)).toBe(x)
  })

  it('of nothing are NaN', () => {
    expect(mean([])).toBeNaN()
    expect(max([])).toBeNaN()
  })
})
