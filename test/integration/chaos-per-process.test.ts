/**
 * `discovery chaos --per-process 3`: a chaos run over agents three to a
 * process. A kill, pause or restart is done to a whole process (all its
 * agents, recorded together; --max-down counts processes), each process
 * killed is started again on its agents' data dirs, and the checker must
 * find nothing: no VM lost, duplicated or resurrected, no crash. With the
 * default two replica holders, a VM whose owner and both holders were in the
 * killed process would be lost: they are taken in other processes
 * (core/replica-rule.ts; whether a run meets such a VM depends on the ring,
 * so per-process.test.ts checks the holders themselves). The run prints its
 * seed; `CHAOS_SEED=N` replays it.
 */
import { describe, expect, it } from 'vitest'
import { expectNoViolations, readChaosReport, runCli, tempDir } from './helpers.ts'

const SEED = Number(process.env.CHAOS_SEED ?? 5)

interface Fault { kind: string, agents: number[], ok: boolean }

describe('discovery chaos --per-process', () => {
  it('seven agents three to a process: whole processes killed, paused and restarted under a workload; verdict clean', async () => {
    const dir = tempDir('chaos-per-process')
    process.stdout.write(`chaos per-process test: seed ${SEED} (CHAOS_SEED=N to change), report in ${dir}\n`)
    // The default two holders and one process down at a time (--max-down 1).
    const run = await runCli(['chaos', '--nodes', '7', '--per-process', '3', '--duration', '45s', '--kill-every', '5s', '--pause-every', '20s', '--partition-every', '20s',
      '--replicas', '2', '--max-down', '1', '--rate', '4', '--seed', String(SEED), '--report', dir, '--json'], 330_000)
    const report = readChaosReport(dir, run)
    const faults = report.faults.records as Fault[]
    const kills = faults.filter(f => f.kind === 'kill' && f.ok)
    const restarts = faults.filter(f => f.kind === 'restart' && f.ok)
    process.stdout.write(`chaos per-process test: ${JSON.stringify({ faults: report.faults.injected, kills: kills.map(k => k.agents), counts: report.counts, convergedAfterMs: report.settle.convergedAfterMs })}\n`)
    expect(report.command).toContain('--per-process 3')
    // Both agents of a process go down together, and come back together.
    expect(kills.filter(k => k.agents.length === 3).length).toBeGreaterThanOrEqual(1)
    expect(restarts.map(r => r.agents.join()).sort()).toEqual(kills.map(k => k.agents.join()).sort())
    expect(report.faults.injected.pause).toBeGreaterThanOrEqual(1)
    expect(report.counts.acknowledged).toBeGreaterThan(20)
    expectNoViolations(report)
    expect(report.verdict).toBe('clean')
    expect(run.code).toBe(0)
  }, 360_000)
})
