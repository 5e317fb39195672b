/**
 * Real agents with `--driver qemu` (TCG, real QEMU processes, real live
 * migration over TCP between two agents): a VM created on A migrates to B
 * (QMP on B says running, A's QEMU has exited, the figures are reported);
 * B SIGKILLed in the middle of a migration leaves the VM running on A; an
 * agent restarted adopts its running VMs (same QEMU, not restarted), starts
 * again one whose QEMU died meanwhile and reports one that may not be
 * restarted as lost; a QEMU killed under a running agent is restarted in
 * place. Every QEMU a test started is killed at its end, whatever happened.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { QmpClient } from '../../src/hypervisor/qmp.ts'
import { type AgentProcess, metricValue, runCli, startAgent, tempDir, waitFor } from './helpers.ts'
import { dirtyingDisk } from './qemu-guests.ts'

const QEMU = 'qemu-system-x86_64'
const HAVE_QEMU = [QEMU, 'qemu-img'].every(bin => spawnSync(bin, ['--version'], { stdio: 'ignore' }).status === 0)
const MISSING = `${QEMU} or qemu-img is not installed: .ci/run must install them (apt-get install -y qemu-system-x86 qemu-utils)`

const agents: AgentProcess[] = []
const dirs: string[] = []

afterEach(async () => {
  for (const a of agents.splice(0)) {
    a.proc.kill('SIGKILL')
    await a.exited
  }
  // Whatever a test left, even when it failed half-way: every QEMU started under its dirs, then the dirs.
  for (const dir of dirs.splice(0)) {
    for (const pid of qemuPids(dir)) killPid(pid)
    await waitFor(`the QEMUs of ${dir} to exit`, () => qemuPids(dir).length === 0 ? true : undefined, 10_000, 50)
    rmSync(dir, { recursive: true, force: true })
  }
})

function newDir (): string {
  const dir = tempDir('qemu-agent')
  dirs.push(dir)
  return dir
}

/** The QEMUs whose command line names a path under `dir` (pid files may be gone already). */
function qemuPids (dir: string): number[] {
  const out: number[] = []
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue
    let cmd = ''
    try { cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8') } catch { continue }
    if (cmd.split('\0')[0].endsWith(QEMU) && cmd.includes(dir) && alive(Number(p))) out.push(Number(p))
  }
  return out
}

function alive (pid: number): boolean {
  try {
    return !/^\S+ \(.*\) [ZX]/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return false
  }
}

function killPid (pid: number): void {
  try { process.kill(pid, 'SIGKILL') } catch {}
}

function pidOf (dataDir: string, id: string): number {
  return Number(readFileSync(join(dataDir, 'qemu', id, 'qemu.pid'), 'utf8').trim())
}

/** QEMU's own word on a VM, through its second QMP socket (the agent holds the first). */
async function qmpStatus (dataDir: string, id: string): Promise<string> {
  const qmp = await QmpClient.connect(join(dataDir, 'qemu', id, 'monitor.sock'), { timeoutMs: 5_000 })
  try {
    return (await qmp.execute<{ status: string }>('query-status')).status
  } finally {
    qmp.close()
  }
}

async function start (dataDir: string, extra: string[] = []): Promise<AgentProcess> {
  const agent = await startAgent(['--driver', 'qemu', '--qemu-accel', 'tcg', '--data-dir', dataDir, '--api', '127.0.0.1:0', '--cpu', '2', '--mem', '1GiB', '--monitor-interval', '250ms', ...extra], 60_000)
  agents.push(agent)
  return agent
}

/** A and B, each labelled `host=a` / `host=b` so that a test says where a VM goes, seeing each other. */
async function pair (extra: string[] = []): Promise<{ a: AgentProcess, b: AgentProcess, aDir: string, bDir: string }> {
  const root = newDir()
  const [aDir, bDir] = [join(root, 'a'), join(root, 'b')]
  const a = await start(aDir, ['--labels', 'host=a', ...extra])
  const b = await start(bDir, ['--labels', 'host=b', '--bootstrap', a.addrs[0], ...extra])
  for (const x of [a, b]) await waitFor('A and B to see each other', async () => (await x.api.call<any[]>('GET', '/v1/nodes')).filter(n => n.state === 'alive').length === 2 ? true : undefined, 30_000)
  return { a, b, aDir, bDir }
}

async function createOn (agent: AgentProcess, host: string, body: Record<string, unknown> = {}): Promise<string> {
  const res = await agent.api.request('POST', '/v1/vms', { cpu: 1, memMiB: 128, constraints: { labels: { host } }, ...body })
  expect(res.status, JSON.stringify(res.body)).toBe(201)
  await waitFor(`${res.body.id} running`, async () => (await agent.api.call('GET', `/v1/vms/${res.body.id}`)).state === 'running' ? true : undefined, 30_000)
  return res.body.id
}

async function events (agent: AgentProcess, type: string): Promise<any[]> {
  const res = await fetch(`${agent.api.url}/v1/events?types=${type}&lastEventId=0`, { signal: AbortSignal.timeout(1_500) }).catch(() => undefined)
  if (res?.body == null) return []
  let text = ''
  const reader = res.body.getReader()
  try {
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      text += Buffer.from(value).toString('utf8')
    }
  } catch {}
  return text.split('\n').filter(l => l.startsWith('data: ')).map(l => JSON.parse(l.slice(6)))
}

if (!HAVE_QEMU && process.env.CI != null) {
  describe('agents with the qemu driver', () => {
    it('needs qemu-system-x86_64 on the CI machine', () => { throw new Error(MISSING) })
  })
}

describe.skipIf(!HAVE_QEMU)(HAVE_QEMU ? 'agents with the qemu driver' : `agents with the qemu driver — skipped: ${MISSING}`, () => {
  it('a VM created on A migrates to B: QMP on B says running, A\'s QEMU has exited, total time and downtime are reported', async () => {
    const { a, b, aDir, bDir } = await pair()
    const id = await createOn(a, 'a')
    const before = pidOf(aDir, id)
    expect(await qmpStatus(aDir, id)).toBe('running')
    const vm = await a.api.call('GET', `/v1/vms/${id}`)
    expect(vm.stats.rssMiB).toBeGreaterThan(5)
    expect(vm.stats.cpuTimeMs).toBeGreaterThan(0)
    // The qemu driver measures demand: it cannot be forced.
    const forced = await a.api.request('PUT', `/v1/vms/${id}/demand`, { demand: 0.9 })
    expect(forced.status).toBe(409)
    expect(forced.body.error).toBe('demand_measured')

    const res = await a.api.request('POST', `/v1/vms/${id}/migrate`, { to: b.peerId })
    expect(res.status, JSON.stringify(res.body)).toBe(200)
    const m = res.body.migration
    expect(m).toMatchObject({ phase: 'committed', from: a.peerId, to: b.peerId, runsAtDestination: true, interSite: false })
    expect(m.uri).toMatch(/^tcp:127\.0\.0\.1:\d+$/)
    expect(m.totalMs).toBeGreaterThan(0)
    expect(m.downtimeMs).toBeGreaterThanOrEqual(0)
    expect(m.downtimeMs).toBeLessThan(1_000)
    expect(m.bytesMiB).toBeGreaterThan(0)
    expect(m.rounds).toBeGreaterThanOrEqual(1)
    console.log(`qemu agents: 128 MiB VM A -> B: total ${m.totalMs} ms, downtime ${m.downtimeMs} ms, ${m.bytesMiB} MiB in ${m.rounds} rounds, ${m.endedAtMs - m.startedAtMs} ms end to end`)

    expect(await qmpStatus(bDir, id)).toBe('running')
    await waitFor('A\'s QEMU to exit and its files to go', () => alive(before) || existsSync(join(aDir, 'qemu', id)) ? undefined : true, 10_000, 50)
    expect((await b.api.call<any[]>('GET', '/v1/vms')).map(v => [v.id, v.state, v.epoch])).toEqual([[id, 'running', 1]])
    expect(await a.api.call<any[]>('GET', '/v1/vms')).toEqual([])
    const listed = (await a.api.call<any[]>('GET', '/v1/migrations')).find(r => r.id === m.id)
    expect(listed).toMatchObject({ phase: 'committed', totalMs: m.totalMs, downtimeMs: m.downtimeMs, rounds: m.rounds, throttled: false })
  }, 120_000)

  it('SIGKILL B during a migration: the VM still runs on A, in the same QEMU', async () => {
    // 4 MiB/s and a guest dirtying 96 MiB: the transfer takes tens of seconds, B dies in the middle.
    const { a, b, aDir, bDir } = await pair(['--migration-bandwidth', '4'])
    for (const dir of [aDir, bDir]) {
      mkdirSync(join(dir, 'images'), { recursive: true })
      dirtyingDisk(join(dir, 'images', 'dirty.raw'), 98)
    }
    const id = await createOn(a, 'a', { image: 'dirty.raw' })
    const before = pidOf(aDir, id)
    await waitFor('the guest to dirty its memory', async () => ((await a.api.call('GET', `/v1/vms/${id}`)).stats?.rssMiB ?? 0) > 100 ? true : undefined, 60_000, 100)
    const migrating = a.api.request('POST', `/v1/vms/${id}/migrate`, { to: b.peerId })
    await waitFor('the transfer to be under way', async () => (await a.api.call<any[]>('GET', '/v1/migrations')).some(r => r.vmId === id && r.phase === 'transferring') ? true : undefined, 30_000, 50)
    await waitFor('B\'s QEMU to receive', () => qemuPids(bDir).length > 0 ? true : undefined, 10_000, 50)
    await new Promise(resolve => setTimeout(resolve, 500))
    b.proc.kill('SIGKILL')
    await b.exited

    const res = await migrating
    expect(res.status, JSON.stringify(res.body)).toBe(409)
    expect(res.body.migration.phase).toBe('aborted')
    expect(res.body.migration.reason).toMatch(/lost|destination|failed|cancel/)
    expect(await qmpStatus(aDir, id)).toBe('running')
    expect(pidOf(aDir, id)).toBe(before)
    expect((await a.api.call('GET', `/v1/vms/${id}`)).state).toBe('running')
    // B's QEMU, waiting for a migration that was cancelled, exits on its own.
    await waitFor('B\'s QEMU to exit', () => qemuPids(bDir).length === 0 ? true : undefined, 20_000, 100)
  }, 180_000)

  it('an agent restarted re-adopts its running VMs (same QEMU), starts again one whose QEMU died meanwhile, and reports lost one that may not be restarted', async () => {
    const dir = join(newDir(), 'a')
    const first = await start(dir, ['--cpu', '4'])
    const kept = await createOn(first, 'a', { constraints: {} })
    const died = await createOn(first, 'a', { constraints: {} })
    const never = await createOn(first, 'a', { constraints: {}, restartPolicy: 'never' })
    const pids = { kept: pidOf(dir, kept), died: pidOf(dir, died), never: pidOf(dir, never) }
    first.proc.kill('SIGKILL')
    await first.exited
    // VMs outlive their agent.
    for (const pid of Object.values(pids)) expect(alive(pid)).toBe(true)
    killPid(pids.died)
    killPid(pids.never)
    await waitFor('the killed QEMUs to exit', () => alive(pids.died) || alive(pids.never) ? undefined : true, 10_000, 20)

    const second = await start(dir, ['--cpu', '4'])
    const vms = await waitFor('the VMs running again', async () => {
      const list = await second.api.call<any[]>('GET', '/v1/vms')
      return list.length === 2 && list.every(v => v.state === 'running') ? list : undefined
    }, 30_000)
    expect(vms.map(v => v.id).sort()).toEqual([kept, died].sort())
    expect(pidOf(dir, kept)).toBe(pids.kept)
    expect(pidOf(dir, died)).not.toBe(pids.died)
    expect(await qmpStatus(dir, kept)).toBe('running')
    expect(await qmpStatus(dir, died)).toBe('running')
    expect(existsSync(join(dir, 'qemu', never))).toBe(false)
    const stopped = await events(second, 'vm.stopped')
    expect(stopped.map(e => [e.data.id, e.data.action]).sort()).toEqual([[died, 'restart'], [never, 'lost']].sort())
    expect(stopped.find(e => e.data.id === died).data.reason).toMatch(/gone when the agent started/)
    expect((await events(second, 'vm.lost')).map(e => e.data.id)).toEqual([never])
    const metrics = await (await fetch(`${second.api.url}/metrics`)).text()
    expect(metricValue(metrics, 'discovery_vms_lost_total')).toBe(1)
    expect(metricValue(metrics, 'discovery_vm_local_restarts_total')).toBe(1)
  }, 120_000)

  it('a QEMU killed under its running agent is reported stopped and started again in place', async () => {
    const dir = join(newDir(), 'a')
    const agent = await start(dir)
    const id = await createOn(agent, 'a', { constraints: {} })
    const before = pidOf(dir, id)
    killPid(before)
    const stopped = await waitFor('vm.stopped', async () => (await events(agent, 'vm.stopped')).find(e => e.data.id === id), 20_000, 200)
    expect(stopped.data).toMatchObject({ action: 'restart', restartInMs: 0 })
    expect(stopped.data.reason).toMatch(new RegExp(`pid ${before}\\) exited`))
    await waitFor('running again in a new QEMU', async () => (await agent.api.call('GET', `/v1/vms/${id}`)).state === 'running' && existsSync(join(dir, 'qemu', id, 'qemu.pid')) && pidOf(dir, id) !== before ? true : undefined, 30_000)
    expect(await qmpStatus(dir, id)).toBe('running')
  }, 90_000)

  it('cluster up --driver qemu: VMs outlive cluster down, are adopted by the next cluster up, and cluster down --purge stops them', async () => {
    const dir = newDir()
    const up = await runCli(['cluster', 'up', '--nodes', '2', '--dir', dir, '--base-port', '0', '--driver', 'qemu', '--qemu-accel', 'tcg', '--cpu', '2', '--mem', '1GiB', '--json'], 120_000)
    expect(up.code, up.stderr).toBe(0)
    const api = JSON.parse(up.stdout).nodes[0].api as string
    const created = await fetch(`${api}/v1/vms`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ cpu: 1, memMiB: 64 }) })
    expect(created.status).toBe(201)
    await waitFor('its QEMU', () => qemuPids(dir).length === 1 ? true : undefined, 30_000)
    const [pid] = qemuPids(dir)

    const down = await runCli(['cluster', 'down', '--dir', dir], 60_000)
    expect(down.code, down.stderr).toBe(0)
    expect(down.stdout).toMatch(/1 VMs \(QEMU processes\) run on/)
    expect(alive(pid)).toBe(true)

    const again = await runCli(['cluster', 'up', '--nodes', '2', '--dir', dir, '--base-port', '0', '--driver', 'qemu', '--qemu-accel', 'tcg', '--cpu', '2', '--mem', '1GiB', '--json'], 120_000)
    expect(again.code, again.stderr).toBe(0)
    expect(qemuPids(dir)).toEqual([pid])
    const purge = await runCli(['cluster', 'down', '--dir', dir, '--purge', '--json'], 60_000)
    expect(purge.code, purge.stderr).toBe(0)
    expect(JSON.parse(purge.stdout)).toMatchObject({ stopped: 2, vmsStopped: 1, vmsRunning: 0 })
    expect(alive(pid)).toBe(false)
  }, 240_000)
})
