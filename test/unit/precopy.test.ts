import { describe, expect, it } from 'vitest'
import { precopy, type PrecopyInput, type PrecopyResult } from '../../src/core/precopy.ts'
import { seededRng } from '../../src/core/rng.ts'

// DESIGN's worked example: 1,024 MiB at 125 MiB/s (1 Gbit/s), the VM's CPU fully busy.
const example: PrecopyInput = { memMiB: 1024, bandwidthMiBps: 125, cpuBusy: 1, dirtyIntensity: 0, maxDowntimeMs: 30 }

function ok (r: PrecopyResult): Extract<PrecopyResult, { ok: true }> {
  if (!r.ok) throw new Error(`expected a migration, got ${r.code}: ${r.reason}`)
  return r
}

function refused (r: PrecopyResult): Extract<PrecopyResult, { ok: false }> {
  if (r.ok) throw new Error(`expected a refusal, got a migration of ${r.totalMs} ms`)
  return r
}

describe('precopy: the worked example', () => {
  it('the first pass takes 8.192 s', () => {
    const r = ok(precopy(example))
    expect(r.timeline[0]).toEqual({ round: 0, sendMiB: 1024, ms: 8192 })
  })

  it.each<{ intensity: number, totalS: number, rounds: number }>([
    { intensity: 0, totalS: 8.2, rounds: 1 },
    { intensity: 0.1, totalS: 9.1, rounds: 3 },
    { intensity: 0.3, totalS: 11.7, rounds: 5 },
    { intensity: 0.5, totalS: 16.4, rounds: 9 }
  ])('intensity $intensity: about 8.192 s / (1 − intensity) = $totalS s, downtime ≤ 30 ms', ({ intensity, totalS, rounds }) => {
    const r = ok(precopy({ ...example, dirtyIntensity: intensity }))
    expect(Math.round(r.totalMs / 100) / 10).toBe(totalS)
    // The geometric series is cut short by the stop-and-copy: never more than the closed form.
    expect(r.totalMs).toBeLessThanOrEqual(8192 / (1 - intensity) + 1e-9)
    expect(r.downtimeMs).toBeLessThanOrEqual(30)
    expect(r.rounds).toBe(rounds)
    expect(r.timeline).toHaveLength(rounds)
  })

  it('gives these exact figures', () => {
    const figures = [0, 0.1, 0.3, 0.5].map(dirtyIntensity => {
      const r = ok(precopy({ ...example, dirtyIntensity }))
      return { dirtyIntensity, totalMs: round3(r.totalMs), downtimeMs: round3(r.downtimeMs), bytesMiB: round3(r.bytesMiB), rounds: r.rounds }
    })
    expect(figures).toEqual([
      { dirtyIntensity: 0, totalMs: 8192, downtimeMs: 0, bytesMiB: 1024, rounds: 1 },
      { dirtyIntensity: 0.1, totalMs: 9101.312, downtimeMs: 8.192, bytesMiB: 1137.664, rounds: 3 },
      { dirtyIntensity: 0.3, totalMs: 11694.326, downtimeMs: 19.907, bytesMiB: 1461.791, rounds: 5 },
      { dirtyIntensity: 0.5, totalMs: 16368, downtimeMs: 16, bytesMiB: 2046, rounds: 9 }
    ])
  })

  it.each([1, 1.5, 10])('intensity %d never converges and is refused, naming the dirty rate and the bandwidth', intensity => {
    const r = refused(precopy({ ...example, dirtyIntensity: intensity }))
    expect(r.code).toBe('never-converges')
    expect(r.reason).toContain(`${125 * intensity} MiB/s`)
    expect(r.reason).toContain('bandwidth 125 MiB/s')
    expect(r.reason).not.toContain('\n')
  })

  it.each([0, 1, 5, 100])('cpuBusy 0 means a single pass, whatever the intensity (%d)', intensity => {
    const r = ok(precopy({ ...example, cpuBusy: 0, dirtyIntensity: intensity }))
    expect(r).toEqual({ ok: true, totalMs: 8192, downtimeMs: 0, bytesMiB: 1024, rounds: 1, timeline: [{ round: 0, sendMiB: 1024, ms: 8192 }] })
  })

  it('an idle-ish VM converges even when its intensity alone is ≥ 1: it is the product that counts', () => {
    const r = ok(precopy({ ...example, cpuBusy: 0.25, dirtyIntensity: 2 }))
    expect(Math.round(r.totalMs / 100) / 10).toBe(16.4)
  })
})

describe('precopy: defaults', () => {
  it('maxDowntimeMs defaults to 30 and maxRounds to 64', () => {
    const { maxDowntimeMs: _, ...rest } = example
    expect(precopy({ ...rest, dirtyIntensity: 0.5 })).toEqual(precopy({ ...example, dirtyIntensity: 0.5, maxRounds: 64 }))
    // 0.99 needs 559 rounds: refused by the default cap.
    expect(refused(precopy({ ...rest, dirtyIntensity: 0.99 })).code).toBe('too-many-rounds')
  })
})

describe('precopy: properties', () => {
  const seed = 20240611
  it(`over random inputs (seed ${seed}): bytes ≥ RAM, downtime ≤ max, total = rounds + downtime, each round resends what the one before dirtied`, () => {
    const rng = seededRng(seed)
    let checked = 0
    for (let i = 0; i < 2000; i++) {
      const input: PrecopyInput = {
        memMiB: 1 + Math.floor(rng.next() * 65536),
        bandwidthMiBps: 1 + rng.next() * 1250,
        cpuBusy: rng.next(),
        dirtyIntensity: rng.next() * 1.2,
        maxDowntimeMs: rng.next() * 500,
        maxRounds: 1000
      }
      const r = precopy(input)
      if (!r.ok) {
        expect(['never-converges', 'too-many-rounds']).toContain(r.code)
        if (r.code === 'never-converges') expect(input.dirtyIntensity * input.cpuBusy).toBeGreaterThanOrEqual(1)
        continue
      }
      checked++
      expect(r.bytesMiB).toBeGreaterThanOrEqual(input.memMiB)
      expect(r.downtimeMs).toBeLessThanOrEqual(input.maxDowntimeMs! + 1e-9)
      const roundsMs = r.timeline.reduce((s, t) => s + t.ms, 0)
      expect(r.totalMs).toBeCloseTo(roundsMs + r.downtimeMs, 6)
      expect(r.timeline[0].sendMiB).toBe(input.memMiB)
      const q = input.dirtyIntensity * input.cpuBusy
      for (let k = 1; k < r.timeline.length; k++) {
        expect(r.timeline[k].round).toBe(k)
        expect(r.timeline[k].sendMiB).toBeCloseTo(r.timeline[k - 1].sendMiB * q, 6)
        // Every round but the last left more than the stop-and-copy may take.
        expect(r.timeline[k].sendMiB).toBeGreaterThan(input.bandwidthMiBps * input.maxDowntimeMs! / 1000)
      }
    }
    expect(checked).toBeGreaterThan(1000)
  })

  it('monotonic: more intensity, a longer migration and more bytes', () => {
    const intensities = [0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
    const runs = intensities.map(dirtyIntensity => ok(precopy({ ...example, dirtyIntensity, maxRounds: 1000 })))
    for (let i = 1; i < runs.length; i++) {
      expect(runs[i].totalMs).toBeGreaterThan(runs[i - 1].totalMs)
      expect(runs[i].bytesMiB).toBeGreaterThan(runs[i - 1].bytesMiB)
      expect(runs[i].rounds).toBeGreaterThanOrEqual(runs[i - 1].rounds)
    }
  })

  it('monotonic: a busier CPU, a longer migration', () => {
    const busy = [0, 0.2, 0.4, 0.6, 0.8, 1]
    const runs = busy.map(cpuBusy => ok(precopy({ ...example, dirtyIntensity: 0.5, cpuBusy })))
    for (let i = 1; i < runs.length; i++) expect(runs[i].totalMs).toBeGreaterThan(runs[i - 1].totalMs)
  })

  it.each<{ maxDowntimeMs: number, rounds: number }>([
    { maxDowntimeMs: 1, rounds: 13 },
    { maxDowntimeMs: 30, rounds: 9 },
    { maxDowntimeMs: 300, rounds: 5 },
    { maxDowntimeMs: 3000, rounds: 2 },
    { maxDowntimeMs: 10000, rounds: 1 }
  ])('a larger maxDowntime, fewer rounds: $maxDowntimeMs ms → $rounds rounds', ({ maxDowntimeMs, rounds }) => {
    const r = ok(precopy({ ...example, dirtyIntensity: 0.5, maxDowntimeMs }))
    expect(r.rounds).toBe(rounds)
    expect(r.downtimeMs).toBeLessThanOrEqual(maxDowntimeMs)
  })

  it('maxDowntime 0 works only when nothing is dirtied', () => {
    expect(ok(precopy({ ...example, maxDowntimeMs: 0 })).downtimeMs).toBe(0)
    const r = refused(precopy({ ...example, dirtyIntensity: 0.1, maxDowntimeMs: 0 }))
    expect(r.code).toBe('too-many-rounds')
    expect(r.reason).toContain('never finishes')
  })
})

describe('precopy: refusals', () => {
  it.each<{ name: string, input: Partial<PrecopyInput>, code: 'ok' | 'too-many-rounds' | 'too-long', reason?: string[] }>([
    { name: 'exactly maxRounds rounds is fine', input: { dirtyIntensity: 0.5, maxRounds: 9 }, code: 'ok' },
    { name: 'one round short', input: { dirtyIntensity: 0.5, maxRounds: 8 }, code: 'too-many-rounds', reason: ['needs 9 rounds', 'maxRounds 8', '3.75 MiB', '30 ms at 125 MiB/s'] },
    { name: 'far short: predicted, not simulated', input: { dirtyIntensity: 0.5, maxRounds: 1 }, code: 'too-many-rounds', reason: ['needs 9 rounds', 'maxRounds 1'] },
    { name: 'slow convergence hits the default cap', input: { dirtyIntensity: 0.99 }, code: 'too-many-rounds', reason: ['needs 559 rounds', 'maxRounds 64'] },
    { name: 'total within the cap', input: { dirtyIntensity: 0.5, maxTotalMs: 16368 }, code: 'ok' },
    { name: 'total just over the cap, the rounds within it', input: { dirtyIntensity: 0.5, maxTotalMs: 16360 }, code: 'too-long', reason: ['it would take 16368 ms', 'maxTotalMs 16360 ms'] },
    { name: 'the first pass alone is over the cap', input: { dirtyIntensity: 0.5, maxTotalMs: 5000 }, code: 'too-long', reason: ['its first round alone takes 8192 ms', 'maxTotalMs 5000 ms'] },
    { name: 'rounds are checked before time', input: { dirtyIntensity: 0.5, maxRounds: 2, maxTotalMs: 100 }, code: 'too-many-rounds' }
  ])('$name', ({ input, code, reason }) => {
    const r = precopy({ ...example, ...input })
    if (code === 'ok') {
      expect(r.ok).toBe(true)
      return
    }
    const no = refused(r)
    expect(no.code).toBe(code)
    for (const part of reason ?? []) expect(no.reason).toContain(part)
    expect(no.reason).not.toContain('\n')
  })

  it('stays cheap when maxRounds is huge and convergence slow', () => {
    const r = ok(precopy({ ...example, dirtyIntensity: 0.999, maxRounds: 1_000_000_000 }))
    expect(r.rounds).toBe(5607)
    // About 30 million rounds needed, a million allowed: refused from the closed form, without simulating a round.
    const started = performance.now()
    const no = refused(precopy({ ...example, dirtyIntensity: 0.999999, maxDowntimeMs: 1e-9, maxRounds: 1_000_000 }))
    expect(no.code).toBe('too-many-rounds')
    expect(no.reason).toMatch(/needs 29\d{6} rounds/)
    // Simulating a million rounds takes seconds; the prediction, microseconds. A loose bound, so a loaded machine does not fail it.
    expect(performance.now() - started).toBeLessThan(1000)
  })
})

describe('precopy: invalid input', () => {
  it.each<{ input: Record<string, unknown>, reason: string }>([
    { input: { bandwidthMiBps: -1 }, reason: 'Expected `bandwidthMiBps` to be a finite number > 0, got `-1` (number)' },
    { input: { bandwidthMiBps: 0 }, reason: 'Expected `bandwidthMiBps` to be a finite number > 0, got `0` (number)' },
    { input: { bandwidthMiBps: Infinity }, reason: 'Expected `bandwidthMiBps` to be a finite number > 0, got `Infinity` (number)' },
    { input: { memMiB: 0 }, reason: 'Expected `memMiB` to be a finite number > 0, got `0` (number)' },
    { input: { memMiB: NaN }, reason: 'Expected `memMiB` to be a finite number > 0, got `NaN` (number)' },
    { input: { memMiB: '1024' }, reason: 'Expected `memMiB` to be a finite number > 0, got `1024` (string)' },
    { input: { cpuBusy: 1.5 }, reason: 'Expected `cpuBusy` to be a finite number in [0, 1], got `1.5` (number)' },
    { input: { cpuBusy: -0.1 }, reason: 'Expected `cpuBusy` to be a finite number in [0, 1], got `-0.1` (number)' },
    { input: { cpuBusy: undefined }, reason: 'Expected `cpuBusy` to be a finite number in [0, 1], got `undefined` (undefined)' },
    { input: { dirtyIntensity: -0.5 }, reason: 'Expected `dirtyIntensity` to be a finite number >= 0, got `-0.5` (number)' },
    { input: { dirtyIntensity: null }, reason: 'Expected `dirtyIntensity` to be a finite number >= 0, got `null` (object)' },
    { input: { maxDowntimeMs: -30 }, reason: 'Expected `maxDowntimeMs` to be a finite number >= 0, got `-30` (number)' },
    { input: { maxRounds: 0 }, reason: 'Expected `maxRounds` to be an integer >= 1, got `0` (number)' },
    { input: { maxRounds: 2.5 }, reason: 'Expected `maxRounds` to be an integer >= 1, got `2.5` (number)' },
    { input: { maxRounds: Infinity }, reason: 'Expected `maxRounds` to be an integer >= 1, got `Infinity` (number)' },
    { input: { maxTotalMs: 0 }, reason: 'Expected `maxTotalMs` to be a finite number > 0, got `0` (number)' }
  ])('$reason', ({ input, reason }) => {
    const r = refused(precopy({ ...example, ...input } as PrecopyInput))
    expect(r).toEqual({ ok: false, code: 'invalid', reason })
  })

  it('invalid wins over never-converges', () => {
    expect(refused(precopy({ ...example, dirtyIntensity: 2, memMiB: -1 })).code).toBe('invalid')
  })
})

function round3 (n: number): number {
  return Math.round(n * 1000) / 1000
}
