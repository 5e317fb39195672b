/** Number formatting for the benchmarks' tables (the statistics themselves are core/stats.ts, shared with the simulator). */

/** A number for a table: fixed decimals, `-` when there is none. */
export function fmt (n: number, digits = 1): string {
  return Number.isFinite(n) ? n.toFixed(digits) : '-'
}
