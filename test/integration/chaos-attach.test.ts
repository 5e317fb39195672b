/**
 * `discovery chaos --attach DIR` on a cluster started by `discovery cluster
 * up --admin`, as the README shows it: the harness kills, pauses and
 * partitions that cluster's agents under a workload, finds nothing wrong,
 * and leaves the cluster running — every agent it killed restarted with the
 * command line recorded in cluster.json, whose pids it keeps current, so
 * that `cluster down` then stops them all.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { ApiClient, expectNoViolations, readChaosReport, readCluster, runCli, tempDir, waitFor } from './helpers.ts'

const SEED = Number(process.env.CHAOS_SEED ?? 5)
const dir = tempDir('chaos-attach')

function alive (pid: number): boolean {
  try { process.kill(pid, 0); return true } catch { return false }
}

afterAll(async () => { await runCli(['cluster', 'down', '--dir', dir], 60_000) })

describe('discovery chaos --attach', () => {
  it('runs on a cluster started by cluster up, clean, and leaves it running and known to cluster down', async () => {
    const up = await runCli(['cluster', 'up', '--nodes', '4', '--admin', '--dir', dir, '--base-port', '0', '--wait', '120s', '--json'], 180_000)
    expect(up.code, up.stderr).toBe(0)
    const pidsBefore = readCluster(dir).nodes.map(n => n.pid)
    const report = join(dir, 'report')
    process.stdout.write(`chaos attach test: seed ${SEED} (CHAOS_SEED=N to change), report in ${report}\n`)
    const run = await runCli(['chaos', '--attach', dir, '--duration', '25s', '--kill-every', '5s', '--pause-every', '12s', '--partition-every', '12s',
      '--max-down', '1', '--rate', '4', '--seed', String(SEED), '--report', report, '--json'], 300_000)
    const r = readChaosReport(report, run)
    process.stdout.write(`chaos attach test: ${JSON.stringify({ faults: r.faults.injected, requests: r.requests.byStatus, verdict: r.verdict })}\n`)
    expect(r.faults.injected.kill).toBeGreaterThanOrEqual(3)
    expect(r.faults.injected.restart).toBe(r.faults.injected.kill)
    expect(r.counts.acknowledged).toBeGreaterThan(10)
    expectNoViolations(r)
    expect(run.code).toBe(0)
    // Still running, every agent answering, the killed ones under new pids that cluster.json knows.
    const file = readCluster(dir)
    expect(file.nodes).toHaveLength(4)
    expect(file.nodes.filter((n, i) => n.pid !== pidsBefore[i]).length).toBeGreaterThanOrEqual(1)
    const token = readFileSync(join(dir, 'api.token'), 'utf8').trim()
    for (const n of file.nodes) {
      expect(alive(n.pid)).toBe(true)
      expect((await new ApiClient(n.api, token).call<{ peerId: string }>('GET', '/v1/health')).peerId).toMatch(/^12D3KooW/)
    }
    const down = await runCli(['cluster', 'down', '--dir', dir], 60_000)
    expect(down.code, down.stderr).toBe(0)
    await waitFor('no agent of the cluster left', () => file.nodes.every(n => !alive(n.pid)) ? true : undefined, 30_000, 200)
  }, 400_000)
})
