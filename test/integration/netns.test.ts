/**
 * Agents in network namespaces (`cluster up --netns`, `discovery chaos
 * --netns`; root only, skipped otherwise): each agent runs in its own
 * namespace on its own address; a partition made by the kernel (packets from
 * a peer dropped in the receiving namespace) leaves connections to time out —
 * not refused — and the agents declare each other dead across it, then alive
 * after the heal; `cluster down` leaves no namespace and no bridge. Then a
 * short chaos run whose partitions are the kernel's: verdict clean.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { type ClusterFile } from '../../src/cli/cluster.ts'
import { agentIp, dropFrom, liftDrops, netnsUnavailable, nsName } from '../../src/cli/netns.ts'
import { ApiClient, expectNoViolations, readChaosReport, runCli, tempDir, waitFor } from './helpers.ts'

const skipReason = netnsUnavailable()
const SEED = Number(process.env.CHAOS_SEED ?? 7)
const N = 4

/** The names of the namespaces and links of this machine that start with `prefix`. */
function leftovers (prefix: string): string[] {
  const ns = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map(l => l.split(' ')[0])
  const links = execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).split('\n').map(l => l.split(': ')[1]?.split('@')[0] ?? '')
  return [...ns, ...links].filter(n => n.startsWith(prefix))
}

/** How a TCP connection from inside namespace `ns` to `host:port` ends within 1.5 s: `connected`, `timeout` or the error code. */
function connectFrom (ns: string, host: string, port: number): string {
  const script = `const s=require('net').connect(${port},'${host}');const t=setTimeout(()=>{console.log('timeout');process.exit(0)},1500);s.on('connect',()=>{console.log('connected');process.exit(0)});s.on('error',e=>{console.log(e.code);process.exit(0)})`
  return spawnSync('ip', ['netns', 'exec', ns, process.execPath, '-e', script], { encoding: 'utf8' }).stdout.trim()
}

describe.skipIf(skipReason != null)('agents in network namespaces', () => {
  const dir = tempDir('netns')
  let file: ClusterFile | undefined

  afterAll(async () => {
    // A cluster left up by a failure half-way (its file goes with `cluster down`).
    if (file != null && existsSync(join(dir, 'cluster.json'))) await runCli(['cluster', 'down', '--dir', dir, '--purge'])
  })

  it('each agent on its own address; a kernel partition is declared both ways and healed; down removes every namespace', async () => {
    const up = await runCli(['cluster', 'up', '--netns', '--nodes', String(N), '--dir', dir, '--base-port', '0', '--wait', '120s', '--json'], 180_000)
    expect(up.code, up.stderr).toBe(0)
    file = JSON.parse(up.stdout) as ClusterFile
    const lab = file.netns!
    expect(lab.name).toMatch(/^dn[0-9a-f]{6}$/)
    const token = readFileSync(file.tokenFile!, 'utf8').trim()
    const apis = file.nodes.map(m => new ApiClient(m.api, token))
    const ids: string[] = []
    for (const m of file.nodes) {
      expect(m.netns).toBe(nsName(lab, m.index))
      expect(m.api).toBe(`http://${agentIp(lab, m.index)}:${new URL(m.api).port}`)
      expect(m.listen.startsWith(`/ip4/${agentIp(lab, m.index)}/tcp/`)).toBe(true)
      // The agent's process is in its namespace (ip netns identify reads /proc/PID/ns/net).
      expect(execFileSync('ip', ['netns', 'identify', String(m.pid)], { encoding: 'utf8' }).trim()).toBe(m.netns)
      ids.push((await apis[m.index].call('GET', '/v1/health')).peerId)
    }
    const port0 = Number(new URL(file.nodes[0].api).port)
    expect(connectFrom(nsName(lab, 1), agentIp(lab, 0), port0)).toBe('connected')

    // Agent 0 cut off both ways: each side drops what the other sends.
    await dropFrom(lab, 0, [1, 2, 3])
    for (const j of [1, 2, 3]) await dropFrom(lab, j, [0])
    expect(connectFrom(nsName(lab, 1), agentIp(lab, 0), port0)).toBe('timeout')
    const stateOf = async (api: ApiClient, peer: string): Promise<string | undefined> =>
      (await api.call<Array<{ peerId: string, state: string }>>('GET', '/v1/nodes')).find(n => n.peerId === peer)?.state
    await waitFor('agent 0 declared dead by the three others', async () => {
      const states = await Promise.all([1, 2, 3].map(async j => await stateOf(apis[j], ids[0])))
      return states.every(s => s === 'dead') ? true : undefined
    }, 60_000, 250)
    await waitFor('agent 0 to declare the three others dead', async () => {
      const states = await Promise.all([1, 2, 3].map(async j => await stateOf(apis[0], ids[j])))
      return states.every(s => s === 'dead') ? true : undefined
    }, 60_000, 250)

    for (let i = 0; i < N; i++) await liftDrops(lab, i)
    expect(connectFrom(nsName(lab, 1), agentIp(lab, 0), port0)).toBe('connected')
    await waitFor('every agent to see all four alive again', async () => {
      const views = await Promise.all(apis.map(async a => await a.call<Array<{ state: string }>>('GET', '/v1/nodes')))
      return views.every(v => v.filter(n => n.state === 'alive').length === N) ? true : undefined
    }, 60_000, 250)

    const down = await runCli(['cluster', 'down', '--dir', dir])
    expect(down.code, down.stderr).toBe(0)
    expect(leftovers(lab.name)).toEqual([])
  }, 400_000)

  it('a chaos run whose partitions are the kernel\'s: verdict clean, nothing left behind', async () => {
    const before = leftovers('dn')
    const report = tempDir('chaos-netns')
    process.stdout.write(`chaos netns test: seed ${SEED} (CHAOS_SEED=N to change), report in ${report}\n`)
    const run = await runCli(['chaos', '--netns', '--nodes', '5', '--duration', '40s', '--kill-every', '12s', '--pause-every', '20s', '--partition-every', '8s',
      '--rate', '5', '--seed', String(SEED), '--report', report, '--json'], 400_000)
    const r = readChaosReport(report, run)
    const partitions = r.faults.records.filter((f: { kind: string, ok: boolean }) => f.kind === 'partition' && f.ok)
    process.stdout.write(`chaos netns test: ${JSON.stringify({ faults: r.faults.injected, counts: r.counts, convergedAfterMs: r.settle.convergedAfterMs })}\n`)
    expect(partitions.length).toBeGreaterThanOrEqual(2)
    for (const p of partitions) expect(p.detail).toMatch(/namespaces dropping packets/)
    expect(r.command).toContain('--netns')
    expectNoViolations(r)
    expect(r.verdict).toBe('clean')
    expect(run.code).toBe(0)
    expect(r.options.netns).toBe(true)
    // The run's own namespaces and bridge are gone (anything else of the machine's is as it was).
    expect(leftovers('dn').filter(n => !before.includes(n))).toEqual([])
  }, 420_000)
})
