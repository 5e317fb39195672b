/**
 * Small statistics over samples, for the simulator's reports and the
 * benchmarks: one nearest-rank percentile (q from 0 to 1), mean, max. Pure.
 */

/** The nearest-rank `q`-quantile of `values`, q from 0 to 1 (0.99 is the p99); NaN of nothing. */
export function percentile (values: readonly number[], q: number): number {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]
}

/** NaN of nothing. */
export function mean (values: readonly number[]): number {
  return values.length === 0 ? NaN : values.reduce((a, b) => a + b, 0) / values.length
}

/** NaN of nothing. */
export function max (values: readonly number[]): number {
  return values.length === 0 ? NaN : values.reduce((a, b) => Math.max(a, b), -Infinity)
}
