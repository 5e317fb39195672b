/**
 * The benchmarks' rule for a settled cluster (bench/lib/measure.ts): idle
 * figures are sampled once the cluster's CPU stops falling, not while a
 * cluster just started still converges.
 */
import { describe, expect, it } from 'vitest'
import { busyPercent, machineTicks, settled, settledQuiet } from '../../bench/lib/measure.ts'

describe('settled', () => {
  it.each<{ windows: number[], expected: boolean, why: string }>([
    { windows: [], expected: false, why: 'nothing measured yet' },
    { windows: [90], expected: false, why: 'one window says nothing of a trend' },
    { windows: [200, 150], expected: false, why: 'falling by a quarter: still settling' },
    { windows: [200, 150, 140], expected: true, why: 'falling by less than a fifth' },
    { windows: [100, 130], expected: true, why: 'busier than before: not a transient that decays' },
    { windows: [197, 120, 96, 70], expected: false, why: 'the last fell by more than a fifth' },
    { windows: [197, 120, 96, 81], expected: true, why: 'the last fell by 16 %' }
  ])('$windows → $expected ($why)', ({ windows, expected }) => {
    expect(settled(windows)).toBe(expected)
  })

  it('takes the tolerance it is given', () => {
    expect(settled([100, 85], 0.1)).toBe(false)
    expect(settled([100, 95], 0.1)).toBe(true)
  })

  it.each<{ windows: number[], opened: number[], expected: boolean, why: string }>([
    { windows: [84, 65], opened: [40, 9], expected: false, why: 'CPU falling by less than a fifth, but 9 connections opened in the last window: still settling' },
    { windows: [65, 84], opened: [12, 30], expected: false, why: 'busier than before while it opens connections: not idle' },
    { windows: [60, 55], opened: [12, 5], expected: true, why: 'CPU flat and at most 5 opened' },
    { windows: [60, 40], opened: [12, 2], expected: false, why: 'quiet, but the CPU still fell by a third' },
    { windows: [60, 55], opened: [5], expected: false, why: 'a window whose connections were not counted' }
  ])('$windows with $opened opened, at most 5 → $expected ($why)', ({ windows, opened, expected }) => {
    expect(settledQuiet(windows, opened, 5)).toBe(expected)
  })
})

describe('a quiet machine before a cluster comes up', () => {
  const stat = (user: number, idle: number, iowait = 0): string => `cpu  ${user} 0 10 ${idle} ${iowait} 0 0 0 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\nintr 1\n`

  it('reads the busy and total jiffies of the cpu line, idle and iowait not busy', () => {
    expect(machineTicks(stat(100, 800, 50))).toEqual({ busy: 110, total: 960 })
  })

  it('gives the share of all cores busy between two readings', () => {
    expect(busyPercent(machineTicks(stat(100, 800)), machineTicks(stat(150, 950)))).toBeCloseTo(100 * 50 / 200)
    expect(busyPercent(machineTicks(stat(100, 800)), machineTicks(stat(100, 1000)))).toBe(0)
    expect(busyPercent(machineTicks(stat(100, 800)), machineTicks(stat(100, 800)))).toBeNaN()
  })

  it('says what it expected of a /proc/stat it cannot read', () => {
    expect(() => machineTicks('intr 1\n')).toThrow(/Expected \/proc\/stat to start with a "cpu" line/)
    expect(() => machineTicks('cpu  a b c d e\n')).toThrow(/"cpu" line of numbers/)
  })
})
