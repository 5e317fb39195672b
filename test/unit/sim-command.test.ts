import { describe, expect, it } from 'vitest'
import { parseBandwidth, parseDirtyIntensity, resolveSimOptions } from '../../src/cli/sim-command.ts'

describe('parseBandwidth', () => {
  it.each([
    { value: '119.2', want: 119.2 },
    { value: '1250MiB/s', want: 1250 },
    { value: '125MB/s', want: 125e6 / 2 ** 20 },
    { value: '1Gbit/s', want: 125e6 / 2 ** 20 },
    { value: '10 Gbit/s', want: 1250e6 / 2 ** 20 },
    { value: '100Mbit/s', want: 12.5e6 / 2 ** 20 },
    { value: '10gbps', want: 1250e6 / 2 ** 20 }
  ])('$value → $want MiB/s', ({ value, want }) => {
    expect(parseBandwidth('--bandwidth', value)).toBeCloseTo(want, 9)
  })

  it.each(['', '0', '-5', 'fast', '1Gbyte', '1e3', '10 Tbit/s/s'])('`%s` is refused, saying what was expected and what came', value => {
    expect(() => parseBandwidth('--bandwidth', value)).toThrow(new RegExp(`Expected --bandwidth to be a bandwidth like .*got \`${value.replace(/[/.*+?^${}()|[\]\\]/g, '\\$&')}\``))
  })
})

describe('parseDirtyIntensity', () => {
  it.each([
    { value: '0.3', want: { lo: 0.3, hi: 0.3 } },
    { value: '0', want: { lo: 0, hi: 0 } },
    { value: '0.1-0.5', want: { lo: 0.1, hi: 0.5 } },
    { value: '.1 - .5', want: { lo: 0.1, hi: 0.5 } },
    { value: '0.1-0.5:5', want: { lo: 0.1, hi: 0.5, classes: 5 } }
  ])('$value', ({ value, want }) => {
    expect(parseDirtyIntensity('--dirty-intensity', value)).toEqual(want)
  })

  it.each(['', 'high', '1.5', '0.5-0.1', '0.1-2', '0.1-0.5:1', '0.1-0.5:x', '-0.1'])('`%s` is refused', value => {
    expect(() => parseDirtyIntensity('--dirty-intensity', value)).toThrow(/Expected --dirty-intensity to be a fraction from 0 to 1/)
  })
})

describe('resolveSimOptions', () => {
  it('vmplaces by default, with VMPlaceS\'s links; the flags override the scenario\'s', () => {
    const base = resolveSimOptions({ nodes: '16' })
    expect(base.scenario.name).toBe('vmplaces')
    expect(base.scenario.bandwidthMiBps).toBeCloseTo(119.209, 3)
    expect(base.scenario.dirtyIntensity).toEqual({ lo: 0.1, hi: 0.5, classes: 5 })
    const o = resolveSimOptions({ nodes: '16', scenario: 'vmplaces-10g', bandwidth: '1Gbit/s', dirtyIntensity: '0.2' })
    expect(o.scenario.name).toBe('vmplaces-10g')
    expect(o.scenario.bandwidthMiBps).toBeCloseTo(119.209, 3)
    expect(o.scenario.dirtyIntensity).toEqual({ lo: 0.2, hi: 0.2 })
  })
})
