/**
 * CPU demand of a VM over time, after VMPlaceS (Lebre et al.): the demand
 * holds still, then jumps at random instants to a new level. The instants are
 * a Poisson process (exponential gaps of mean `meanChangeIntervalS`); each new
 * level is drawn from a Gaussian, clamped to [0, 1] of the VM's vCPUs and
 * rounded to `step`. Why this shape: it is what VMPlaceS used to compare
 * centralized, hierarchical and distributed schedulers (DVMS, the ancestor of
 * our rebalancing protocol), so our figures can be set beside theirs; and the
 * steps make overloads appear at known instants, which is what a scheduler is
 * judged on.
 *
 * Pure: every draw comes from the `Rng` passed in, so a seed gives the same
 * trace on every machine.
 */
import { DiscoveryError } from './errors.ts'
import type { Rng } from './rng.ts'

export interface DemandConfig {
  /** Mean time between two changes of a VM's demand, s. Default 300 s: a VM's load moves every few minutes, the scale at which a scheduler must react. */
  meanChangeIntervalS: number
  /** Mean of the Gaussian the new demand is drawn from, as a fraction of the VM's vCPUs. Default 0.6: busy enough that packed nodes overload now and then. */
  mean: number
  /** Its standard deviation, same unit. Default 0.2: about 2 % of the draws exceed 1 and are clamped, 0.1 % fall below 0. */
  stddev: number
  /** Demand is rounded to a multiple of this, in (0, 1]. Default 0.05: coarse levels, so that small wobbles do not count as changes. */
  step: number
}

export const DEFAULT_DEMAND: DemandConfig = Object.freeze({
  meanChangeIntervalS: 300,
  mean: 0.6,
  stddev: 0.2,
  step: 0.05
})

export class InvalidDemandConfigError extends DiscoveryError {
  static name = 'InvalidDemandConfigError'
  /** The field that was wrong. */
  readonly field: string

  static defaultMessage = 'Invalid demand configuration'

  constructor (message?: string, field = '') {
    super(message)
    this.field = field
  }
}

/** A normal draw, Box–Muller (the cosine half; the sine twin is dropped to keep the function stateless). */
export function gaussian (rng: Rng, mean: number, stddev: number): number {
  // 1 − next() is in (0, 1], so the logarithm is finite.
  const u1 = 1 - rng.next()
  const u2 = rng.next()
  return mean + stddev * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2)
}

/** An exponential draw of the given mean, by inversion. */
export function exponential (rng: Rng, mean: number): number {
  return -mean * Math.log(1 - rng.next())
}

/** Clamp to [0, 1] and round to the nearest multiple of `step` that is ≤ 1; exact decimals, not 0.15000000000000002. */
export function quantizeDemand (value: number, step: number): number {
  const clamped = Math.min(1, Math.max(0, value))
  const top = Math.floor(1 / step + 1e-9)
  const k = Math.min(top, Math.round(clamped / step))
  return Math.round(k * step * 1e9) / 1e9
}

/** A new demand level: a fraction 0..1 of the VM's vCPUs, a multiple of `step`. */
export function drawDemand (rng: Rng, cfg: DemandConfig): number {
  return quantizeDemand(gaussian(rng, cfg.mean, cfg.stddev), cfg.step)
}

/** Seconds until the demand changes again. */
export function nextChangeInS (rng: Rng, cfg: DemandConfig): number {
  return exponential(rng, cfg.meanChangeIntervalS)
}

/**
 * A whole trace for one VM up to `durationS`: [{ atS, demand }] starting with
 * atS = 0, every instant < durationS. Deterministic for a seed: the draws are
 * taken in a fixed order (first level, then a gap and a level per change).
 * A change may land on the same level as before; it is kept, so that the
 * instants stay a Poisson process.
 */
export function demandTrace (rng: Rng, cfg: DemandConfig, durationS: number): Array<{ atS: number, demand: number }> {
  if (typeof durationS !== 'number' || !Number.isFinite(durationS) || durationS < 0) {
    throw new RangeError(`Expected \`durationS\` to be a finite number >= 0, got \`${String(durationS)}\` (${typeof durationS})`)
  }
  const trace = [{ atS: 0, demand: drawDemand(rng, cfg) }]
  let atS = nextChangeInS(rng, cfg)
  while (atS < durationS) {
    trace.push({ atS, demand: drawDemand(rng, cfg) })
    atS += nextChangeInS(rng, cfg)
  }
  return trace
}

/** Fill in the defaults and check every field once, up front. Throws `InvalidDemandConfigError` naming the field, what was expected and what came. */
export function validateDemandConfig (cfg: Partial<DemandConfig>): DemandConfig {
  if (typeof cfg !== 'object' || cfg === null) {
    throw new InvalidDemandConfigError(`Expected the demand configuration to be an object, got \`${String(cfg)}\` (${typeof cfg})`)
  }
  const out: DemandConfig = { ...DEFAULT_DEMAND }
  const checks: Array<[keyof DemandConfig, string, (v: number) => boolean]> = [
    ['meanChangeIntervalS', 'a finite number > 0', v => v > 0],
    ['mean', 'a finite number in [0, 1]', v => v >= 0 && v <= 1],
    ['stddev', 'a finite number >= 0', v => v >= 0],
    ['step', 'a finite number in (0, 1]', v => v > 0 && v <= 1]
  ]
  for (const [field, expected, ok] of checks) {
    const value: unknown = cfg[field]
    if (value === undefined) continue
    if (typeof value !== 'number' || !Number.isFinite(value) || !ok(value)) {
      throw new InvalidDemandConfigError(`Expected \`${field}\` to be ${expected}, got \`${String(value)}\` (${typeof value})`, field)
    }
    out[field] = value
  }
  return out
}
