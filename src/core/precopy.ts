/**
 * Pre-copy live migration, the model SimGrid uses (Hirofuchi et al.,
 * "Adding a live migration model into SimGrid").
 *
 * Round 0 sends all of the VM's RAM at the link's bandwidth. While a round of
 * duration t runs, the VM dirties min(mem, r·t) MiB, r = dirtyIntensity ×
 * cpuBusy × bandwidth: a VM that computes more writes more pages, and the
 * intensity says how write-heavy its work is. The next round resends what was
 * dirtied. As soon as what is left could be sent within the maximum downtime,
 * the VM pauses, the rest goes (that is the downtime) and it resumes at the
 * destination.
 *
 * With q = dirtyIntensity × cpuBusy each round sends q times the one before,
 * so round k sends mem·qᵏ and the total is about (mem / bandwidth) / (1 − q).
 * When q ≥ 1 a round dirties at least what it sends: it never converges, and
 * we refuse up front rather than loop. The number of rounds is predicted from
 * the closed form (the smallest n with mem·qⁿ ≤ bandwidth × maxDowntime), so
 * a hopeless migration is refused without simulating it, and the simulation
 * that follows costs O(rounds).
 *
 * Pure: no clock, no I/O. Figures are in MiB, MiB/s and ms.
 */

export interface PrecopyInput {
  /** The VM's RAM, MiB. Round 0 sends all of it. */
  memMiB: number
  /** What the link gives this migration, MiB/s. */
  bandwidthMiBps: number
  /** The VM's CPU demand as a fraction of its vCPUs, 0..1. */
  cpuBusy: number
  /** How write-heavy the VM's work is, ≥ 0: the dirty rate is dirtyIntensity × cpuBusy × bandwidth. */
  dirtyIntensity: number
  /** Longest pause the VM may see at the switch-over, ≥ 0. Default 30 ms: QEMU's historical default `max_downtime`, which SimGrid's model took over (newer QEMU allows 300 ms). */
  maxDowntimeMs?: number
  /** Refuse when more pre-copy rounds than this would be needed. Default 64. */
  maxRounds?: number
  /** Refuse when the migration (rounds + downtime) would take longer than this. No cap by default. */
  maxTotalMs?: number
}

export type PrecopyRefusal = 'never-converges' | 'too-many-rounds' | 'too-long' | 'invalid'

export type PrecopyResult =
  | {
    ok: true
    /** Sum of the rounds' durations plus the downtime. */
    totalMs: number
    /** The final stop-and-copy: what was left, over the bandwidth. */
    downtimeMs: number
    /** Everything sent, the final stop-and-copy included. */
    bytesMiB: number
    /** Pre-copy rounds, round 0 included (the stop-and-copy is not a round). */
    rounds: number
    /** One entry per pre-copy round; the stop-and-copy is `downtimeMs`. */
    timeline: Array<{ round: number, sendMiB: number, ms: number }>
  }
  | {
    ok: false
    /** One line: why, with the figures. */
    reason: string
    code: PrecopyRefusal
  }

export const DEFAULT_MAX_DOWNTIME_MS = 30
export const DEFAULT_MAX_ROUNDS = 64

export function precopy (input: PrecopyInput): PrecopyResult {
  const invalid = validate(input)
  if (invalid !== undefined) return { ok: false, code: 'invalid', reason: invalid }

  const mem = input.memMiB
  const bw = input.bandwidthMiBps
  const maxDowntimeMs = input.maxDowntimeMs ?? DEFAULT_MAX_DOWNTIME_MS
  const maxRounds = input.maxRounds ?? DEFAULT_MAX_ROUNDS
  const q = input.dirtyIntensity * input.cpuBusy
  const dirtyRate = q * bw

  if (q >= 1) {
    return {
      ok: false,
      code: 'never-converges',
      reason: `Pre-copy never converges: the VM dirties ${fmt(dirtyRate)} MiB/s (intensity ${fmt(input.dirtyIntensity)} × cpuBusy ${fmt(input.cpuBusy)} × ${fmt(bw)} MiB/s), not less than the bandwidth ${fmt(bw)} MiB/s`
    }
  }

  // What may be left for the stop-and-copy.
  const stopMiB = bw * maxDowntimeMs / 1000
  const predicted = predictRounds(mem, q, stopMiB)
  if (predicted > maxRounds + 1) return tooManyRounds(predicted, maxRounds, stopMiB, maxDowntimeMs, bw)

  const timeline: Array<{ round: number, sendMiB: number, ms: number }> = []
  let send = mem
  let elapsedMs = 0
  let bytesMiB = 0
  for (;;) {
    // The closed form can be off by one at a floating-point boundary; the loop has the last word.
    if (timeline.length >= maxRounds) return tooManyRounds(Math.max(predicted, maxRounds + 1), maxRounds, stopMiB, maxDowntimeMs, bw)
    const ms = send / bw * 1000
    timeline.push({ round: timeline.length, sendMiB: send, ms })
    elapsedMs += ms
    bytesMiB += send
    if (input.maxTotalMs !== undefined && elapsedMs > input.maxTotalMs) return tooLong(elapsedMs, input.maxTotalMs, timeline.length, true)
    send = Math.min(mem, dirtyRate * ms / 1000)
    if (send <= stopMiB) break
  }

  const downtimeMs = send / bw * 1000
  const totalMs = elapsedMs + downtimeMs
  if (input.maxTotalMs !== undefined && totalMs > input.maxTotalMs) return tooLong(totalMs, input.maxTotalMs, timeline.length, false)
  return { ok: true, totalMs, downtimeMs, bytesMiB: bytesMiB + send, rounds: timeline.length, timeline }
}

/** The smallest n ≥ 1 with mem·qⁿ ≤ stopMiB; Infinity when no n will do (q > 0 and nothing may be left). */
function predictRounds (mem: number, q: number, stopMiB: number): number {
  if (q === 0 || mem * q <= stopMiB) return 1
  if (stopMiB <= 0) return Infinity
  return Math.max(1, Math.ceil(Math.log(stopMiB / mem) / Math.log(q)))
}

function tooManyRounds (needed: number, maxRounds: number, stopMiB: number, maxDowntimeMs: number, bw: number): PrecopyResult {
  const need = Number.isFinite(needed) ? `needs ${needed} rounds` : 'never finishes'
  return {
    ok: false,
    code: 'too-many-rounds',
    reason: `Pre-copy ${need} to leave at most ${fmt(stopMiB)} MiB (${fmt(maxDowntimeMs)} ms at ${fmt(bw)} MiB/s) for the stop-and-copy, more than maxRounds ${maxRounds}`
  }
}

function tooLong (ms: number, maxTotalMs: number, rounds: number, partial: boolean): PrecopyResult {
  const what = partial ? (rounds === 1 ? 'its first round alone takes' : `its first ${rounds} rounds already take`) : 'it would take'
  return {
    ok: false,
    code: 'too-long',
    reason: `Pre-copy is too long: ${what} ${fmt(ms)} ms, more than maxTotalMs ${fmt(maxTotalMs)} ms`
  }
}

function validate (input: PrecopyInput): string | undefined {
  if (typeof input !== 'object' || input === null) return `Expected the pre-copy input to be an object, got \`${String(input)}\` (${typeof input})`
  const checks: Array<[keyof PrecopyInput, string, (v: number) => boolean, boolean]> = [
    ['memMiB', 'a finite number > 0', v => v > 0, false],
    ['bandwidthMiBps', 'a finite number > 0', v => v > 0, false],
    ['cpuBusy', 'a finite number in [0, 1]', v => v >= 0 && v <= 1, false],
    ['dirtyIntensity', 'a finite number >= 0', v => v >= 0, false],
    ['maxDowntimeMs', 'a finite number >= 0', v => v >= 0, true],
    ['maxRounds', 'an integer >= 1', v => Number.isInteger(v) && v >= 1, true],
    ['maxTotalMs', 'a finite number > 0', v => v > 0, true]
  ]
  for (const [field, expected, ok, optional] of checks) {
    const value: unknown = input[field]
    if (optional && value === undefined) continue
    if (typeof value !== 'number' || !Number.isFinite(value) || !ok(value)) {
      return `Expected \`${field}\` to be ${expected}, got \`${String(value)}\` (${typeof value})`
    }
  }
  return undefined
}

/** Figures in reasons: at most three decimals, no trailing noise. */
function fmt (n: number): string {
  return String(Math.round(n * 1000) / 1000)
}
