/**
 * What starting agents costs (issue: a hundred agents on one machine):
 * - one agent answers `/v1/health` within a bounded CPU time — CPU seconds
 *   read from /proc, not wall time, which a loaded machine stretches — and
 *   again when started after it stopped, with the code cache it left
 *   (bin/bundle-run.js);
 * - `cluster up --nodes 30 --max-connections 8` comes up, every agent sees
 *   all 30 alive, the idle cluster's CPU over 10 s stays under a bound; with
 *   that cap on connections, 30 VMs of one spread group created through 30
 *   different agents land on 30 different nodes (placement reaches every
 *   node) and every agent's view converges on all of them; `cluster down`
 *   leaves no agent process; VMs created through one agent land on it or on
 *   peers it is connected to (creates try those first under a bounded fan-out).
 * The bounds are generous (several times what was measured): these
 * machines are shared, and the figures are the benchmark's to report
 * (`npm run bench -- placement`). Each run prints what it measured.
 */
import { availableParallelism } from 'node:os'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { DEFAULT_NICE } from '../../src/cli/cluster-up.ts'
import { ApiClient, metricValue, readCluster, runCli, startAgent, tempDir, waitFor } from './helpers.ts'

const TICKS_PER_S = 100
const ROOT = fileURLToPath(new URL('../..', import.meta.url))

/** utime + stime of a process, in seconds (Linux: /proc/PID/stat, fields 14 and 15, in clock ticks). */
function cpuSeconds (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_S
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe('start cost', () => {
  /** Goal 1 s of CPU (issue 11); the bound leaves room for a machine busy with other work. */
  const START_CPU_BOUND_S = 3

  it(`an agent answers /v1/health within ${START_CPU_BOUND_S} s of CPU, and again once stopped, with the code cache`, async () => {
    const { ensureBundle } = await import(pathToFileURL(join(ROOT, 'bin', 'bundle.js')).href) as { ensureBundle: () => Promise<string | undefined> }
    const { cacheFile } = await import(pathToFileURL(join(ROOT, 'bin', 'bundle-run.js')).href) as { cacheFile: (bundle: string, execArgv?: string[]) => string }
    const bundle = await ensureBundle()
    expect(bundle).toBeDefined()
    const start = async (): Promise<{ cpu: number, rssMiB: number, agent: Awaited<ReturnType<typeof startAgent>> }> => {
      const agent = await startAgent(['--data-dir', tempDir('start-cost'), '--api', '127.0.0.1:0', '--listen', '/ip4/127.0.0.1/tcp/0'], 60_000)
      const health = await agent.api.call<{ peerId: string }>('GET', '/v1/health')
      expect(health.peerId).toBe(agent.peerId)
      const cpu = cpuSeconds(agent.proc.pid!)
      const rssMiB = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${agent.proc.pid!}/status`, 'utf8'))![1]) / 1024
      return { cpu, rssMiB, agent }
    }
    // The first may find the code cache of an agent started with the same flags before (another test's); once
    // it has stopped, there is one (bin/bundle-run.js: a process that found none writes one as it exits).
    const first = await start()
    first.agent.proc.kill('SIGTERM')
    expect(await first.agent.exited).toBe(0)
    expect(existsSync(cacheFile(bundle!, []))).toBe(true)
    const second = await start()
    second.agent.proc.kill('SIGKILL')
    process.stdout.write(`start cost: one agent answered /v1/health after ${first.cpu.toFixed(2)} s of CPU, ${first.rssMiB.toFixed(0)} MiB resident; ` +
      `started again with the code cache, ${second.cpu.toFixed(2)} s, ${second.rssMiB.toFixed(0)} MiB\n`)
    expect(first.cpu).toBeLessThan(START_CPU_BOUND_S)
    expect(second.cpu).toBeLessThan(START_CPU_BOUND_S)
  }, 120_000)
})

describe('cluster up --nodes 30 --max-connections 8', () => {
  const N = 30
  /**
   * Idle CPU of the whole cluster, in cores. Goal: 100 agents within half a
   * core (issue 11); at 30 agents, measured 0.3–0.4 cores here with the failure
   * detector probing every 200 ms; the bound is generous for a shared machine.
   */
  const IDLE_CORES_BOUND = 1.2
  const IDLE_SAMPLE_MS = 10_000
  /** VMs created through agent 0 to see them land near it. */
  const NEAR_CREATES = 16
  const dir = tempDir('cluster-30')
  let pids: number[] = []

  afterAll(async () => {
    await runCli(['cluster', 'down', '--dir', dir, '--purge'])
    for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL')
  })

  it('comes up, every agent sees all alive, idles under a bound, places on every node and converges, and cluster down leaves no process', async () => {
    const t0 = Date.now()
    const up = await runCli(['cluster', 'up', '--nodes', String(N), '--dir', dir, '--base-port', '0', '--max-connections', '8', '--wait', '120s', '--json'], 400_000)
    expect(up.code, up.stderr).toBe(0)
    // More than 12 agents a core, one to a process: cluster up says that several to a process come up faster.
    if (N > 12 * availableParallelism()) expect(up.stderr).toMatch(/--per-process 10. starts them about twice as fast/)
    else expect(up.stderr).not.toMatch(/--per-process 10/)
    const upMs = Date.now() - t0
    const file = readCluster(dir)
    pids = file.nodes.map(m => m.pid)
    // Each agent reniced once it answered, so that those still starting came first (field 19 of /proc/PID/stat).
    const nice = (pid: number): number => Number(readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')[16])
    expect(pids.map(nice)).toEqual(pids.map(() => DEFAULT_NICE))
    const apis = file.nodes.map(m => new ApiClient(m.api))
    await waitFor(`every agent to see ${N} agents alive`, async () => {
      const views = await Promise.all(apis.map(async a => await a.call<Array<{ peerId: string, state: string }>>('GET', '/v1/nodes')))
      return views.every(v => new Set(v.filter(n => n.state === 'alive').map(n => n.peerId)).size === N) ? true : undefined
    }, 120_000, 1_000)
    const before = pids.map(cpuSeconds)
    const s0 = Date.now()
    await new Promise(resolve => setTimeout(resolve, IDLE_SAMPLE_MS))
    const cores = pids.map((pid, i) => cpuSeconds(pid) - before[i]).reduce((a, b) => a + b, 0) / ((Date.now() - s0) / 1000)
    process.stdout.write(`start cost: ${N} agents up in ${(upMs / 1000).toFixed(1)} s; idle, together ${(cores * 100).toFixed(0)} % of one core (${(cores * 100 / N).toFixed(2)} % each)\n`)
    expect(cores).toBeLessThan(IDLE_CORES_BOUND)

    // With a bounded fan-out a create tries this agent and the peers it is connected to first (placement-service.ts
    // `near`): each VM created through agent 0 lands on agent 0 or on a peer it was connected to just before. Drawn from
    // the whole view instead, many land elsewhere: 4 of 10 when tried (agent 0 was connected to 13-17 of its 29 peers,
    // more as the creates dialled); at that rate at most one of 16 elsewhere has odds of about 1 in 300. One is allowed:
    // the connections can change between the read of the connected peers and the create (the detector dials a new
    // subject, the bound closes an idle one), and once, in a fresh clone's full suite, one create of eight landed on a
    // peer not in the set read just before.
    const first = new ApiClient(file.nodes[0].api, undefined, 120_000)
    const self0 = (await first.call<{ peerId: string }>('GET', '/v1/health')).peerId
    const elsewhere: string[] = []
    for (let i = 0; i < NEAR_CREATES; i++) {
      const nodes = await first.call<Array<{ peerId: string, connected?: boolean }>>('GET', '/v1/nodes')
      const near = new Set([self0, ...nodes.filter(n => n.connected === true).map(n => n.peerId)])
      expect(near.size).toBeLessThan(N)
      const vm = await first.call<{ id: string, node: string }>('POST', '/v1/vms', { name: `near-${i}`, cpu: 1, memMiB: 256 })
      if (!near.has(vm.node)) elsewhere.push(`near-${i} on ${vm.node}, not agent 0 or one of its ${near.size - 1} connected peers`)
    }
    process.stdout.write(`start cost: ${NEAR_CREATES - elsewhere.length} of ${NEAR_CREATES} creates through agent 0 landed on it or a peer it was connected to${elsewhere.length > 0 ? ` (${elsewhere.join('; ')})` : ''}\n`)
    expect(elsewhere.length, elsewhere.join('; ')).toBeLessThanOrEqual(1)

    // One spread group: no two of its VMs on one node, so 30 of them reach all 30 nodes, each created through another agent.
    // The 30 contend for the same 30 slots at once, each agent dialling candidates beyond its cap of 8: on a saturated
    // 2-core host a create was seen to take over the client's usual 30 s (the full suite running beside it). What is
    // checked here is where they land, not how fast (the placement benchmark measures that): the creates wait up to 120 s.
    const patient = file.nodes.map(m => new ApiClient(m.api, undefined, 120_000))
    const c0 = Date.now()
    const createMs: number[] = []
    const created = await Promise.all(patient.map(async (a, i) => {
      const vm = await a.call<{ id: string, node: string }>('POST', '/v1/vms', { name: `spread-${i}`, cpu: 1, memMiB: 256, constraints: { spread: 'all' } })
      createMs.push(Date.now() - c0)
      return vm
    }))
    process.stdout.write(`start cost: ${N} creates of one spread group at once answered after ${Math.min(...createMs)}–${Math.max(...createMs)} ms\n`)
    expect(new Set(created.map(v => v.node)).size).toBe(N)
    const t1 = Date.now()
    await waitFor(`every agent's view to hold all ${N} VMs`, async () => {
      const views = await Promise.all(apis.map(async a => await a.call<Array<{ id: string }>>('GET', '/v1/vms?scope=cluster')))
      return views.every(v => created.every(c => v.some(x => x.id === c.id))) ? true : undefined
    }, 60_000, 250)
    const connections = await Promise.all(apis.map(async a => metricValue(await a.call<string>('GET', '/metrics'), 'discovery_connections')))
    process.stdout.write(`start cost: ${N} VMs of one spread group on ${N} nodes, in every view after ${Date.now() - t1} ms; connections per agent ${Math.min(...connections)}–${Math.max(...connections)} (cap 8, plus the detector's ring peers in use)\n`)
    const down = await runCli(['cluster', 'down', '--dir', dir, '--purge'])
    expect(down.code, down.stderr).toBe(0)
    await waitFor('no agent process left', () => pids.every(pid => !alive(pid)) ? true : undefined, 30_000, 200)
  }, 600_000)
})
