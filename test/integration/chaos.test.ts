/**
 * A real chaos run: `discovery chaos` starts eight agents and, for about a
 * minute, kills (at least ten times), pauses (three) and partitions (two)
 * them while a workload creates, deletes and migrates VMs; the checker must
 * find nothing, and the report must be written. The run prints its seed and
 * the report's path: a failure names the violations, and the seed replays
 * the schedule.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { expectNoViolations, readChaosReport, runCli, tempDir } from './helpers.ts'

const SEED = Number(process.env.CHAOS_SEED ?? 11)

describe('discovery chaos', () => {
  it('eight agents, a minute of kills, pauses and partitions under a workload: verdict clean, report written', async () => {
    const dir = tempDir('chaos')
    process.stdout.write(`chaos test: seed ${SEED} (CHAOS_SEED=N to change), report in ${dir}\n`)
    // Three replicas so that two agents may be down at once: ten kills and three pauses in a minute need it. A kill
    // every 4 s for 70 s: on a loaded machine restarts are slow and kills wait for room under --max-down.
    const run = await runCli(['chaos', '--nodes', '8', '--duration', '70s', '--kill-every', '4s', '--pause-every', '15s', '--partition-every', '20s',
      '--replicas', '3', '--max-down', '2', '--rate', '5', '--seed', String(SEED), '--report', dir, '--json'], 400_000)
    const report = readChaosReport(dir, run)
    expect(JSON.parse(run.stdout).seed).toBe(SEED)
    const html = readFileSync(join(dir, 'report.html'), 'utf8')
    expect(html).toMatch(/<svg/)
    expect(html).not.toMatch(/<script|https?:\/\/(?!www\.w3\.org)/)
    expect(html).toContain(`--seed ${SEED}`)
    process.stdout.write(`chaos test: ${JSON.stringify({ faults: report.faults.injected, requests: report.requests.byStatus, counts: report.counts, detection: report.detection.lastP50Ms, restartedAgain: report.restarts.again, convergedAfterMs: report.settle.convergedAfterMs })}\n`)
    expect(report.faults.injected.kill).toBeGreaterThanOrEqual(10)
    expect(report.faults.injected.restart).toBe(report.faults.injected.kill)
    expect(report.faults.injected.pause).toBeGreaterThanOrEqual(3)
    expect(report.faults.injected.partition).toBeGreaterThanOrEqual(2)
    expect(report.counts.acknowledged).toBeGreaterThan(50)
    expectNoViolations(report)
    expect(report.verdict).toBe('clean')
    expect(run.code).toBe(0)
  }, 420_000)
})
