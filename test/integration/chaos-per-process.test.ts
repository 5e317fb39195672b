/**
 * `discovery chaos --per-process 2`: a chaos run over agents two to a
 * process. A kill, pause or restart is done to a whole process (both its
 * agents, recorded together, counted as two down against --max-down), each
 * process killed is started again on its agents' data dirs, and the checker
 * must find nothing: no VM lost, duplicated or resurrected, no crash. The run
 * prints its seed; `CHAOS_SEED=N` replays it.
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { runCli, tempDir } from './helpers.ts'

const SEED = Number(process.env.CHAOS_SEED ?? 5)

interface Fault { kind: string, agents: number[], ok: boolean }

describe('discovery chaos --per-process', () => {
  it('six agents two to a process: whole processes killed, paused and restarted under a workload; verdict clean', async () => {
    const dir = tempDir('chaos-per-process')
    process.stdout.write(`chaos per-process test: seed ${SEED} (CHAOS_SEED=N to change), report in ${dir}\n`)
    // Three replicas: a process of two down leaves a VM's record on at least one live holder.
    const run = await runCli(['chaos', '--nodes', '6', '--per-process', '2', '--duration', '45s', '--kill-every', '5s', '--pause-every', '20s', '--partition-every', '20s',
      '--replicas', '3', '--max-down', '2', '--rate', '4', '--seed', String(SEED), '--report', dir, '--json'], 330_000)
    expect(existsSync(join(dir, 'report.json')), run.stderr.slice(-2000)).toBe(true)
    const report = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8'))
    const faults = report.faults.records as Fault[]
    const kills = faults.filter(f => f.kind === 'kill' && f.ok)
    const restarts = faults.filter(f => f.kind === 'restart' && f.ok)
    process.stdout.write(`chaos per-process test: ${JSON.stringify({ faults: report.faults.injected, kills: kills.map(k => k.agents), counts: report.counts, convergedAfterMs: report.settle.convergedAfterMs })}\n`)
    expect(report.command).toContain('--per-process 2')
    // Both agents of a process go down together, and come back together.
    expect(kills.filter(k => k.agents.length === 2).length).toBeGreaterThanOrEqual(1)
    expect(restarts.map(r => r.agents.join()).sort()).toEqual(kills.map(k => k.agents.join()).sort())
    expect(report.faults.injected.pause).toBeGreaterThanOrEqual(1)
    expect(report.counts.acknowledged).toBeGreaterThan(20)
    expect(report.violations.map((v: { kind: string, message: string }) => `${v.kind}: ${v.message}`)).toEqual([])
    expect(report.verdict).toBe('clean')
    expect(run.code).toBe(0)
  }, 360_000)
})
