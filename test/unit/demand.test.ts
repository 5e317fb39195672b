import { describe, expect, it } from 'vitest'
import { DEFAULT_DEMAND, demandTrace, drawDemand, exponential, gaussian, InvalidDemandConfigError, nextChangeInS, quantizeDemand, validateDemandConfig, type DemandConfig } from '../../src/core/demand.ts'
import { seededRng } from '../../src/core/rng.ts'

/**
 * The exact mean and variance of `drawDemand` under `cfg`: the clamped,
 * rounded Gaussian integrated numerically (midpoint rule over ±12σ). This is
 * what the sample mean must approach; it differs from `cfg.mean` because
 * clamping cuts the tails unevenly (for the defaults, about −0.0016).
 */
function exactMoments (cfg: DemandConfig): { mean: number, variance: number } {
  if (cfg.stddev === 0) return { mean: quantizeDemand(cfg.mean, cfg.step), variance: 0 }
  const n = 400_000
  const lo = cfg.mean - 12 * cfg.stddev
  const h = 24 * cfg.stddev / n
  let m1 = 0
  let m2 = 0
  for (let i = 0; i < n; i++) {
    const x = lo + (i + 0.5) * h
    const z = (x - cfg.mean) / cfg.stddev
    const w = Math.exp(-z * z / 2) / (cfg.stddev * Math.sqrt(2 * Math.PI)) * h
    const v = quantizeDemand(x, cfg.step)
    m1 += v * w
    m2 += v * v * w
  }
  return { mean: m1, variance: m2 - m1 * m1 }
}

const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length
const isMultiple = (v: number, step: number) => Math.abs(v / step - Math.round(v / step)) < 1e-9

describe('gaussian and exponential', () => {
  it.each([1, 42, 987654321])('gaussian(mean 3, stddev 2) has the right moments (seed %d)', seed => {
    const rng = seededRng(seed)
    const n = 50_000
    const xs = Array.from({ length: n }, () => gaussian(rng, 3, 2))
    const m = mean(xs)
    const variance = xs.reduce((s, x) => s + (x - m) ** 2, 0) / (n - 1)
    const within1 = xs.filter(x => Math.abs(x - 3) < 2).length / n
    // Five standard errors: the standard error of the mean is σ/√n, of the variance σ²√(2/(n−1)), of a proportion √(p(1−p)/n).
    expect(Math.abs(m - 3)).toBeLessThan(5 * 2 / Math.sqrt(n))
    expect(Math.abs(variance - 4)).toBeLessThan(5 * 4 * Math.sqrt(2 / (n - 1)))
    expect(Math.abs(within1 - 0.682689)).toBeLessThan(5 * Math.sqrt(0.682689 * 0.317311 / n))
    expect(xs.every(Number.isFinite)).toBe(true)
  })

  it('gaussian with stddev 0 is the mean', () => {
    expect(gaussian(seededRng(7), 0.6, 0)).toBe(0.6)
  })

  it('gaussian is finite even when the generator returns 0', () => {
    expect(Number.isFinite(gaussian({ next: () => 0 }, 0, 1))).toBe(true)
  })

  it.each([1, 42, 987654321])('exponential(mean 300) has mean 300 and is never negative (seed %d)', seed => {
    const rng = seededRng(seed)
    const n = 50_000
    const xs = Array.from({ length: n }, () => exponential(rng, 300))
    expect(xs.every(x => x >= 0 && Number.isFinite(x))).toBe(true)
    // An exponential's standard deviation equals its mean.
    expect(Math.abs(mean(xs) - 300)).toBeLessThan(5 * 300 / Math.sqrt(n))
    // Memoryless: P(X > mean) = e^−1.
    const over = xs.filter(x => x > 300).length / n
    expect(Math.abs(over - Math.exp(-1))).toBeLessThan(5 * Math.sqrt(Math.exp(-1) * (1 - Math.exp(-1)) / n))
  })
})

describe('quantizeDemand', () => {
  it.each<{ value: number, step: number, out: number }>([
    { value: 0.62, step: 0.05, out: 0.6 },
    { value: 0.63, step: 0.05, out: 0.65 },
    { value: 0.149, step: 0.05, out: 0.15 },
    { value: 0.349, step: 0.05, out: 0.35 },
    { value: -0.3, step: 0.05, out: 0 },
    { value: 1.7, step: 0.05, out: 1 },
    { value: 0.99, step: 0.05, out: 1 },
    { value: 0.97, step: 0.3, out: 0.9 },
    { value: 1.4, step: 0.3, out: 0.9 },
    { value: 0.4, step: 1, out: 0 },
    { value: 0.6, step: 1, out: 1 }
  ])('$value at step $step → $out', ({ value, step, out }) => {
    expect(quantizeDemand(value, step)).toBe(out)
  })
})

describe('drawDemand and nextChangeInS', () => {
  it.each([3, 1234])('draws are fractions in [0, 1], multiples of the step, and gaps are positive (seed %d)', seed => {
    const rng = seededRng(seed)
    for (const cfg of [DEFAULT_DEMAND, { ...DEFAULT_DEMAND, mean: 0.95, stddev: 0.5, step: 0.1 }, { ...DEFAULT_DEMAND, mean: 0, stddev: 0.3, step: 0.25 }]) {
      for (let i = 0; i < 5000; i++) {
        const d = drawDemand(rng, cfg)
        expect(d).toBeGreaterThanOrEqual(0)
        expect(d).toBeLessThanOrEqual(1)
        expect(isMultiple(d, cfg.step)).toBe(true)
        expect(nextChangeInS(rng, cfg)).toBeGreaterThanOrEqual(0)
      }
    }
  })
})

describe('demandTrace', () => {
  it('the same seed gives the same trace', () => {
    const a = demandTrace(seededRng(99), DEFAULT_DEMAND, 86_400)
    const b = demandTrace(seededRng(99), DEFAULT_DEMAND, 86_400)
    expect(a).toEqual(b)
    expect(a.length).toBeGreaterThan(100)
  })

  it('different seeds give different traces', () => {
    const traces = [1, 2, 3, 4, 5].map(seed => JSON.stringify(demandTrace(seededRng(seed), DEFAULT_DEMAND, 86_400)))
    expect(new Set(traces).size).toBe(5)
  })

  it('the order of the draws is fixed: first level, then a gap and a level per change (seed 1)', () => {
    const rng = seededRng(1)
    const first = drawDemand(rng, DEFAULT_DEMAND)
    const gap = nextChangeInS(rng, DEFAULT_DEMAND)
    const second = drawDemand(rng, DEFAULT_DEMAND)
    const trace = demandTrace(seededRng(1), DEFAULT_DEMAND, gap + 1e-6)
    expect(trace).toEqual([{ atS: 0, demand: first }, { atS: gap, demand: second }])
  })

  it('starts at 0, stays before durationS, and moves forward', () => {
    const trace = demandTrace(seededRng(5), DEFAULT_DEMAND, 3600)
    expect(trace[0].atS).toBe(0)
    for (let i = 1; i < trace.length; i++) expect(trace[i].atS).toBeGreaterThan(trace[i - 1].atS)
    expect(trace[trace.length - 1].atS).toBeLessThan(3600)
  })

  it('a zero duration is the initial level alone', () => {
    const trace = demandTrace(seededRng(5), DEFAULT_DEMAND, 0)
    expect(trace).toHaveLength(1)
    expect(trace[0].atS).toBe(0)
  })

  it.each([-1, NaN, Infinity])('durationS %d is refused', durationS => {
    expect(() => demandTrace(seededRng(5), DEFAULT_DEMAND, durationS)).toThrow(`Expected \`durationS\` to be a finite number >= 0, got \`${durationS}\` (number)`)
  })

  // Long traces: ~40,000 changes each. The tolerance is five standard errors
  // around the *exact* mean of a clamped, rounded draw (see exactMoments), not
  // around cfg.mean: for mean 0.9, stddev 0.3 clamping pulls the mean down by
  // about 0.07, far more than the noise, and the test says so.
  const configs: Array<{ name: string, cfg: DemandConfig, shiftAtLeast?: number }> = [
    { name: 'defaults', cfg: DEFAULT_DEMAND },
    { name: 'heavy clamping at 1 (mean 0.9, stddev 0.3)', cfg: { ...DEFAULT_DEMAND, mean: 0.9, stddev: 0.3 }, shiftAtLeast: 0.05 },
    { name: 'heavy clamping at 0, coarse steps (mean 0.1, stddev 0.2, step 0.1)', cfg: { meanChangeIntervalS: 60, mean: 0.1, stddev: 0.2, step: 0.1 }, shiftAtLeast: 0.03 },
    { name: 'no spread (stddev 0)', cfg: { ...DEFAULT_DEMAND, stddev: 0 } }
  ]
  const seeds = [11, 2024, 31337]
  const cases = configs.flatMap(c => seeds.map(seed => ({ ...c, seed })))

  it.each(cases)('$name, seed $seed: the mean demand and the mean gap match the configuration', ({ cfg, seed, shiftAtLeast }) => {
    const durationS = cfg.meanChangeIntervalS * 40_000
    const trace = demandTrace(seededRng(seed), cfg, durationS)
    const demands = trace.map(p => p.demand)
    const n = demands.length

    expect(demands.every(d => d >= 0 && d <= 1 && isMultiple(d, cfg.step))).toBe(true)

    const exact = exactMoments(cfg)
    const tolerance = 5 * Math.sqrt(exact.variance / n) + 1e-9
    expect(Math.abs(mean(demands) - exact.mean)).toBeLessThan(tolerance)
    if (shiftAtLeast !== undefined) expect(Math.abs(exact.mean - cfg.mean)).toBeGreaterThan(shiftAtLeast)
    else expect(Math.abs(exact.mean - cfg.mean)).toBeLessThan(0.005)

    // Changes are a Poisson process: their count over durationS has mean and variance durationS / interval,
    // and the mean gap between them is near the configured interval (standard error interval / √gaps).
    const expectedChanges = durationS / cfg.meanChangeIntervalS
    expect(Math.abs((n - 1) - expectedChanges)).toBeLessThan(5 * Math.sqrt(expectedChanges))
    const gaps = trace.slice(1).map((p, i) => p.atS - trace[i].atS)
    expect(Math.abs(mean(gaps) - cfg.meanChangeIntervalS)).toBeLessThan(5 * cfg.meanChangeIntervalS / Math.sqrt(gaps.length))
  })

  it('the defaults shift the mean by clamping only slightly: 0.6 − 0.0016', () => {
    const exact = exactMoments(DEFAULT_DEMAND)
    expect(exact.mean).toBeCloseTo(0.5984, 3)
  })
})

describe('validateDemandConfig', () => {
  it.each<{ name: string, input: Partial<DemandConfig>, out: DemandConfig }>([
    { name: 'nothing given: the defaults', input: {}, out: { meanChangeIntervalS: 300, mean: 0.6, stddev: 0.2, step: 0.05 } },
    { name: 'one field given', input: { mean: 0.3 }, out: { meanChangeIntervalS: 300, mean: 0.3, stddev: 0.2, step: 0.05 } },
    { name: 'every field given', input: { meanChangeIntervalS: 10, mean: 1, stddev: 0, step: 1 }, out: { meanChangeIntervalS: 10, mean: 1, stddev: 0, step: 1 } },
    { name: 'bounds included', input: { mean: 0, step: 1 }, out: { meanChangeIntervalS: 300, mean: 0, stddev: 0.2, step: 1 } },
    { name: 'undefined means the default', input: { stddev: undefined }, out: { meanChangeIntervalS: 300, mean: 0.6, stddev: 0.2, step: 0.05 } }
  ])('$name', ({ input, out }) => {
    expect(validateDemandConfig(input)).toEqual(out)
  })

  it('does not hand out the shared defaults', () => {
    const cfg = validateDemandConfig({})
    cfg.mean = 0.1
    expect(DEFAULT_DEMAND.mean).toBe(0.6)
  })

  it.each<{ input: Record<string, unknown>, field: string, message: string }>([
    { input: { meanChangeIntervalS: 0 }, field: 'meanChangeIntervalS', message: 'Expected `meanChangeIntervalS` to be a finite number > 0, got `0` (number)' },
    { input: { meanChangeIntervalS: -1 }, field: 'meanChangeIntervalS', message: 'Expected `meanChangeIntervalS` to be a finite number > 0, got `-1` (number)' },
    { input: { meanChangeIntervalS: Infinity }, field: 'meanChangeIntervalS', message: 'Expected `meanChangeIntervalS` to be a finite number > 0, got `Infinity` (number)' },
    { input: { meanChangeIntervalS: '300' }, field: 'meanChangeIntervalS', message: 'Expected `meanChangeIntervalS` to be a finite number > 0, got `300` (string)' },
    { input: { mean: 1.5 }, field: 'mean', message: 'Expected `mean` to be a finite number in [0, 1], got `1.5` (number)' },
    { input: { mean: -0.1 }, field: 'mean', message: 'Expected `mean` to be a finite number in [0, 1], got `-0.1` (number)' },
    { input: { mean: NaN }, field: 'mean', message: 'Expected `mean` to be a finite number in [0, 1], got `NaN` (number)' },
    { input: { stddev: -0.2 }, field: 'stddev', message: 'Expected `stddev` to be a finite number >= 0, got `-0.2` (number)' },
    { input: { stddev: null }, field: 'stddev', message: 'Expected `stddev` to be a finite number >= 0, got `null` (object)' },
    { input: { step: 0 }, field: 'step', message: 'Expected `step` to be a finite number in (0, 1], got `0` (number)' },
    { input: { step: 1.5 }, field: 'step', message: 'Expected `step` to be a finite number in (0, 1], got `1.5` (number)' },
    { input: { mean: 2, step: 0 }, field: 'mean', message: 'Expected `mean` to be a finite number in [0, 1], got `2` (number)' }
  ])('$message', ({ input, field, message }) => {
    let caught: unknown
    try {
      validateDemandConfig(input as Partial<DemandConfig>)
    } catch (err) {
      caught = err
    }
    expect(caught).toBeInstanceOf(InvalidDemandConfigError)
    const err = caught as InvalidDemandConfigError
    expect(err.name).toBe('InvalidDemandConfigError')
    expect(err.field).toBe(field)
    expect(err.message).toBe(message)
  })

  it('refuses what is not an object', () => {
    expect(() => validateDemandConfig(null as unknown as Partial<DemandConfig>)).toThrow('Expected the demand configuration to be an object, got `null` (object)')
  })

  it('the error class carries its name statically, for callers that compare err.name', () => {
    expect(InvalidDemandConfigError.name).toBe('InvalidDemandConfigError')
    expect(new InvalidDemandConfigError().message).toBe('Invalid demand configuration')
  })
})
