/**
 * The qemu driver with real QEMU (TCG, no KVM needed): VMs as processes,
 * adoption by a second driver on the same data dir (a restarted agent), and
 * live migrations between two drivers on two data dirs (two agents),
 * including the failures that must leave the VM running at its source.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterEach, describe, expect, it } from 'vitest'
import type { VmSpec } from '../../src/core/messages.ts'
import { QemuDriver, type VmStateChange } from '../../src/hypervisor/index.ts'
import { QmpClient } from '../../src/hypervisor/qmp.ts'
import { tempDir, waitFor } from './helpers.ts'
import { blankDisk, dirtyingDisk } from './qemu-guests.ts'

const QEMU = 'qemu-system-x86_64'
const HAVE_QEMU = [QEMU, 'qemu-img', 'qemu-io'].every(bin => spawnSync(bin, ['--version'], { stdio: 'ignore' }).status === 0)
const MISSING = `${QEMU}, qemu-img or qemu-io is not installed: .ci/run must install them (apt-get install -y qemu-system-x86 qemu-utils)`
if (!HAVE_QEMU && process.env.CI == null) console.warn(`qemu driver tests skipped: ${MISSING}`)
const clock = { now: () => Date.now() }

const drivers: QemuDriver[] = []
const dataDirs: string[] = []

afterEach(async () => {
  for (const d of drivers.splice(0)) await d.stop()
  // Whatever a test left (it may have failed half-way): every QEMU of its data dirs, then the dirs.
  for (const dir of dataDirs.splice(0)) {
    for (const pid of qemuPids(dir)) killPid(pid)
    rmSync(dir, { recursive: true, force: true })
  }
})

function newDataDir (): string {
  const dir = tempDir('qemu')
  dataDirs.push(dir)
  return dir
}

function newDriver (dataDir = newDataDir()): QemuDriver {
  const d = new QemuDriver({ dataDir, clock, accel: 'tcg', sampleIntervalMs: 100 })
  drivers.push(d)
  return d
}

function spec (memMiB: number, image?: string): VmSpec {
  return { id: `vm-${randomBytes(6).toString('hex')}`, name: 'test', cpu: 1, memMiB, createdAtMs: 0, ...(image != null ? { image } : {}) }
}

function pidOf (dataDir: string, id: string): number | undefined {
  const file = join(dataDir, 'qemu', id, 'qemu.pid')
  return existsSync(file) ? Number(readFileSync(file, 'utf8').trim()) : undefined
}

/** The QEMUs started for this data dir, found by their command line (pid files may already be gone). */
function qemuPids (dataDir: string): number[] {
  const out: number[] = []
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue
    let cmd = ''
    try { cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8') } catch { continue }
    if (cmd.startsWith(QEMU) || cmd.includes(`/${QEMU}\0`)) if (cmd.includes(join(dataDir, 'qemu'))) out.push(Number(p))
  }
  return out
}

function alive (pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return !/^\S+ \(.*\) [ZX]/.test(stat)
  } catch {
    return false
  }
}

function killPid (pid: number): void {
  try { process.kill(pid, 'SIGKILL') } catch {}
}

async function gone (pid: number): Promise<void> {
  await waitFor(`QEMU ${pid} to exit`, () => alive(pid) ? undefined : true, 10_000, 20)
}

/** Creates a VM and waits for the driver to report it running. */
async function createRunning (driver: QemuDriver, s: VmSpec): Promise<void> {
  const changes: VmStateChange[] = []
  driver.onStateChange(c => { if (c.id === s.id) changes.push(c) })
  await driver.create(s)
  await waitFor(`${s.id} running`, () => changes.some(c => c.state === 'running') ? true : undefined, 20_000, 20)
}

/**
 * The dirtying guest has booted from its disk and touched its whole hot set
 * (the BIOS takes a moment): its QEMU's resident memory shows it, whatever
 * share of the CPU the machine gives it.
 */
async function dirtying (driver: QemuDriver, id: string, hotMiB: number): Promise<void> {
  await waitFor(`${id} to dirty its ${hotMiB} MiB`, async () => ((await driver.stats(id))?.rssMiB ?? 0) > hotMiB + 16 ? true : undefined, 60_000, 50)
}

/** A base image in the driver's images dir. */
function image (dataDir: string, name: string, make: (file: string) => void): string {
  mkdirSync(join(dataDir, 'images'), { recursive: true })
  make(join(dataDir, 'images', name))
  return name
}

if (!HAVE_QEMU && process.env.CI != null) {
  describe('qemu driver', () => {
    it('needs qemu-system-x86_64 on the CI machine', () => { throw new Error(MISSING) })
  })
}

describe.skipIf(!HAVE_QEMU)(HAVE_QEMU ? 'qemu driver' : `qemu driver — skipped: ${MISSING}`, () => {
  it('creates a VM as a QEMU process that QMP says is running; stats; delete leaves no process and no file', async () => {
    const dir = newDataDir()
    const d = newDriver(dir)
    const s = spec(64)
    await d.create(s)
    expect(d.state(s.id)).toBe('creating')
    await waitFor('running', () => d.state(s.id) === 'running' ? true : undefined, 20_000, 20)
    expect(await d.status(s.id)).toBe('running')
    const pid = pidOf(dir, s.id)!
    expect(alive(pid)).toBe(true)
    expect(readFileSync(`/proc/${pid}/comm`, 'utf8').trim()).toBe(`discovery-${s.id}`.slice(0, 15))
    expect(existsSync(join(dir, 'qemu', s.id, 'qmp.sock'))).toBe(true)

    const stats = await d.stats(s.id)
    expect(stats).toBeDefined()
    expect(stats!.cpuTimeMs).toBeGreaterThan(0)
    expect(stats!.vcpuTimeMs).toBeLessThanOrEqual(stats!.cpuTimeMs)
    expect(stats!.rssMiB).toBeGreaterThan(5)
    expect(stats!.rssMiB).toBeLessThan(64 + 256)
    // A BIOS guest with nothing to boot halts: its demand falls to about nothing.
    await waitFor('an idle demand', () => d.demand(s.id) < 0.2 ? true : undefined, 10_000, 50)

    const deleted: VmStateChange[] = []
    d.onStateChange(c => { if (c.state === 'deleted') deleted.push(c) })
    await d.delete(s.id)
    expect(alive(pid)).toBe(false)
    expect(existsSync(join(dir, 'qemu', s.id))).toBe(false)
    expect(d.state(s.id)).toBeUndefined()
    expect(deleted.map(c => c.id)).toEqual([s.id])
    await d.delete(s.id) // a retried delete is a no-op
  })

  it('measures demand from the guest\'s vCPU time: a busy guest against an idle one', async () => {
    const dir = newDataDir()
    const d = newDriver(dir)
    const busy = spec(64, image(dir, 'dirty.raw', f => { dirtyingDisk(f, 32) }))
    const idle = spec(64)
    await createRunning(d, busy)
    await createRunning(d, idle)
    await dirtying(d, busy.id, 30)
    // The machine may be shared: the busy guest gets what it gets, the idle one (halted in its BIOS) nothing.
    await waitFor('the busy guest to show a demand well above the idle one', () => d.demand(busy.id) > 0.05 && d.demand(busy.id) > 4 * d.demand(idle.id) ? true : undefined, 20_000, 50)
    expect(d.demand(busy.id)).toBeLessThanOrEqual(1)
    const a = (await d.stats(busy.id))!.vcpuTimeMs
    await waitFor('vCPU time to grow', async () => ((await d.stats(busy.id))!.vcpuTimeMs > a + 100 ? true : undefined), 20_000, 50)
  })

  it('reports a VM whose QEMU dies as stopped, with the reason, and starts it again on create', async () => {
    const dir = newDataDir()
    const d = newDriver(dir)
    const s = spec(64)
    await createRunning(d, s)
    const changes: VmStateChange[] = []
    d.onStateChange(c => { changes.push(c) })
    const pid = pidOf(dir, s.id)!
    killPid(pid)
    const stopped = await waitFor('stopped', () => changes.find(c => c.state === 'stopped'), 10_000, 20)
    expect(stopped.reason).toMatch(/exited: killed or crashed/)
    expect(d.state(s.id)).toBe('stopped')
    await createRunning(d, s)
    expect(pidOf(dir, s.id)).not.toBe(pid)
    expect(await d.status(s.id)).toBe('running')
  })

  it('a second driver on the same data dir adopts a running VM, reports a killed one gone, and sweeps the unknown', async () => {
    const dir = newDataDir()
    const first = newDriver(dir)
    const [kept, killed, unknown] = [spec(64), spec(64), spec(64)]
    for (const s of [kept, killed, unknown]) await createRunning(first, s)
    const pids = Object.fromEntries([kept, killed, unknown].map(s => [s.id, pidOf(dir, s.id)!]))
    // The first agent is gone (its QMP connections close with it); one of its VMs dies meanwhile.
    await first.stop()
    killPid(pids[killed.id])
    await gone(pids[killed.id])
    expect(alive(pids[kept.id])).toBe(true)

    const second = newDriver(dir)
    expect(await second.adopt(kept)).toBe('adopted')
    expect(await second.adopt(killed)).toBe('gone')
    expect(second.state(kept.id)).toBe('running')
    expect(await second.status(kept.id)).toBe('running')
    expect(pidOf(dir, kept.id)).toBe(pids[kept.id])
    expect((await second.stats(kept.id))!.rssMiB).toBeGreaterThan(0)
    expect(second.list().map(v => v.id)).toEqual([kept.id])

    // The QMP socket serves one client: a third driver cannot adopt what the second holds.
    const third = newDriver(dir)
    await expect(third.adopt(kept)).rejects.toThrow(/does not answer/)
    await third.stop()

    expect(await second.sweep([kept.id, killed.id])).toEqual([unknown.id])
    await gone(pids[unknown.id])
    expect(existsSync(join(dir, 'qemu', unknown.id))).toBe(false)
    // The gone VM restarts (the agent's restart policy) in the same place.
    await createRunning(second, killed)
    await second.delete(kept.id)
    await second.delete(killed.id)
    expect(qemuPids(dir)).toEqual([])
  })

  it('VMs outlive their agent: an agent process killed with its whole process group leaves its QEMU running, for the next one to adopt', async () => {
    const dir = newDataDir()
    const s = spec(64)
    const agent = spawn(process.execPath, [join(import.meta.dirname, 'fixtures', 'qemu-agent.ts'), dir, s.id], { detached: true, stdio: ['ignore', 'pipe', 'inherit'] })
    const exited = new Promise(resolve => agent.once('exit', resolve))
    try {
      const line = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => { reject(new Error('the agent did not report its VM running within 30 s')) }, 30_000)
        createInterface({ input: agent.stdout }).once('line', l => { clearTimeout(timer); resolve(l) })
        agent.once('exit', code => { clearTimeout(timer); reject(new Error(`the agent exited with ${String(code)}`)) })
      })
      expect(line).toBe(`running ${s.id}`)
    } finally {
      process.kill(-agent.pid!, 'SIGKILL')
    }
    await exited
    const pid = pidOf(dir, s.id)!
    expect(alive(pid)).toBe(true)
    const next = newDriver(dir)
    expect(await next.adopt(s)).toBe('adopted')
    expect(await next.status(s.id)).toBe('running')
    await next.delete(s.id)
    await gone(pid)
  })

  it.each([128, 256])('live-migrates a %i MiB VM between two drivers: the destination runs it, the source QEMU ends', async (memMiB) => {
    const [srcDir, dstDir] = [newDataDir(), newDataDir()]
    const src = newDriver(srcDir)
    const dst = newDriver(dstDir)
    const s = spec(memMiB)
    await createRunning(src, s)
    const srcPid = pidOf(srcDir, s.id)!
    const offer = await dst.prepareIncoming(s)
    expect(offer.uri).toMatch(/^tcp:127\.0\.0\.1:\d+$/)
    expect(await dst.prepareIncoming(s)).toEqual(offer) // a repeated proposal gets the same place
    expect(dst.state(s.id)).toBeUndefined() // not the destination's VM until it takes it over
    const r = await src.transferOut(s.id, { uri: offer.uri, bandwidthMiBps: 1250, maxDowntimeMs: 30, signal: new AbortController().signal })
    console.log(`qemu live migration of ${memMiB} MiB (TCG, BIOS guest): total ${r.totalMs} ms, downtime ${r.downtimeMs} ms, ${r.bytesMiB} MiB sent, ${r.rounds} dirty-sync rounds, throttled ${String(r.throttled)}`)
    expect(r.totalMs).toBeGreaterThanOrEqual(r.downtimeMs)
    expect(r.bytesMiB).toBeGreaterThan(0)
    expect(r.rounds).toBeGreaterThanOrEqual(1)
    expect(r.throttled).toBe(false)
    expect(await src.status(s.id)).toBe('postmigrate')
    await dst.create(s, { incoming: true })
    expect(dst.state(s.id)).toBe('running')
    expect(await dst.status(s.id)).toBe('running')
    await src.delete(s.id)
    await gone(srcPid)
    expect(existsSync(join(srcDir, 'qemu', s.id))).toBe(false)
    expect(qemuPids(dstDir)).toHaveLength(1)
  })

  it('resumes the source when the commit fails after a completed transfer', async () => {
    const src = newDriver()
    const dstDir = newDataDir()
    const dst = newDriver(dstDir)
    const s = spec(64)
    await createRunning(src, s)
    const offer = await dst.prepareIncoming(s)
    await src.transferOut(s.id, { uri: offer.uri, bandwidthMiBps: 1250, maxDowntimeMs: 30, signal: new AbortController().signal })
    expect(await src.status(s.id)).toBe('postmigrate')
    // The agent's commit was refused: the destination drops its copy, the source runs again.
    await dst.delete(s.id)
    await src.resume(s.id)
    expect(await src.status(s.id)).toBe('running')
    expect(qemuPids(dstDir)).toEqual([])
  })

  it('migrates a VM with a disk: the qcow2 overlay\'s content follows it', async () => {
    const [srcDir, dstDir] = [newDataDir(), newDataDir()]
    for (const dir of [srcDir, dstDir]) image(dir, 'blank.raw', f => { blankDisk(f) })
    const src = newDriver(srcDir)
    const dst = newDriver(dstDir)
    const s = spec(64, 'blank.raw')
    // What the guest wrote to its disk, made beforehand in the overlay the driver will reuse.
    const overlay = join(srcDir, 'qemu', s.id, 'disk.qcow2')
    mkdirSync(join(srcDir, 'qemu', s.id), { recursive: true })
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', join(srcDir, 'images', 'blank.raw'), overlay])
    execFileSync('qemu-io', ['-c', 'write -P 0x5a 0 64k', overlay], { stdio: 'ignore' })
    await createRunning(src, s)
    const offer = await dst.prepareIncoming(s)
    const r = await src.transferOut(s.id, { uri: offer.uri, bandwidthMiBps: 1250, maxDowntimeMs: 30, signal: new AbortController().signal })
    await dst.create(s, { incoming: true })
    expect(await dst.status(s.id)).toBe('running')
    await src.delete(s.id)
    expect(r.bytesMiB).toBeGreaterThan(0.06)
    // Let go of the destination and make its QEMU quit (which flushes the disk), keeping its files, then read the disk.
    await dst.stop()
    const qmp = await QmpClient.connect(join(dstDir, 'qemu', s.id, 'qmp.sock'))
    const pid = pidOf(dstDir, s.id)!
    await qmp.execute('quit').catch(() => {})
    await gone(pid)
    const read = (offset: string): string => spawnSync('qemu-io', ['-r', '-c', `read -P 0x5a ${offset} 64k`, join(dstDir, 'qemu', s.id, 'disk.qcow2')], { encoding: 'utf8' }).stdout
    expect(read('0')).toMatch(/^read 65536\/65536 bytes/)
    expect(read('64k')).toMatch(/Pattern verification failed/)
  })

  it('keeps the VM running at the source when the destination is killed mid-way', async () => {
    const [srcDir, dstDir] = [newDataDir(), newDataDir()]
    for (const dir of [srcDir, dstDir]) image(dir, 'dirty.raw', f => { dirtyingDisk(f, 120) })
    const src = newDriver(srcDir)
    const dst = newDriver(dstDir)
    const s = spec(128, 'dirty.raw')
    await createRunning(src, s)
    await dirtying(src, s.id, 118)
    const offer = await dst.prepareIncoming(s)
    const dstPid = pidOf(dstDir, s.id)!
    const baseline = (await dst.stats(s.id))!.rssMiB
    const transfer = src.transferOut(s.id, { uri: offer.uri, bandwidthMiBps: 32, maxDowntimeMs: 30, deadlineMs: 60_000, signal: new AbortController().signal })
    transfer.catch(() => {})
    // Mid-way: the destination has received a good part of the memory, not all of it.
    await waitFor('memory arriving at the destination', async () => ((await dst.stats(s.id))?.rssMiB ?? 0) > baseline + 24 ? true : undefined, 20_000, 20)
    killPid(dstPid)
    await expect(transfer).rejects.toMatchObject({ name: 'TransferAbortedError', message: expect.stringMatching(/migration failed/) })
    expect(await src.status(s.id)).toBe('running')
    expect(src.state(s.id)).toBe('running')
    const before = (await src.stats(s.id))!.vcpuTimeMs
    await waitFor('the guest to keep computing', async () => ((await src.stats(s.id))!.vcpuTimeMs > before + 100 ? true : undefined), 10_000, 50)
    await expect(dst.create(s, { incoming: true })).rejects.toMatchObject({ name: 'IncomingMissingError' })
    await waitFor('the destination to forget it', () => qemuPids(dstDir).length === 0 && !existsSync(join(dstDir, 'qemu', s.id)) ? true : undefined, 10_000, 20)
  })

  it('cancels a migration that cannot converge before its deadline, with the reason; the VM runs at the source', async () => {
    const [srcDir, dstDir] = [newDataDir(), newDataDir()]
    for (const dir of [srcDir, dstDir]) image(dir, 'dirty.raw', f => { dirtyingDisk(f, 60) })
    const src = newDriver(srcDir)
    const dst = newDriver(dstDir)
    const s = spec(64, 'dirty.raw')
    await createRunning(src, s)
    await dirtying(src, s.id, 58)
    const offer = await dst.prepareIncoming(s)
    const started = Date.now()
    const err = await src.transferOut(s.id, { uri: offer.uri, bandwidthMiBps: 16, maxDowntimeMs: 30, deadlineMs: 3_000, signal: new AbortController().signal }).catch((e: Error) => e)
    expect(err).toMatchObject({ name: 'TransferRefusedError' })
    expect((err as Error).message).toMatch(/did not converge within 3000 ms: [\d.]+ MiB still to send, the guest dirties [\d.]+ MiB\/s against [\d.]+ MiB\/s sent, after \d+ dirty-sync rounds/)
    expect(Date.now() - started).toBeLessThan(15_000)
    expect(await src.status(s.id)).toBe('running')
    await waitFor('the destination QEMU to exit', () => qemuPids(dstDir).length === 0 ? true : undefined, 10_000, 20)
  })

  it('aborts a migration on its signal; the VM runs at the source', async () => {
    const [srcDir, dstDir] = [newDataDir(), newDataDir()]
    for (const dir of [srcDir, dstDir]) image(dir, 'dirty.raw', f => { dirtyingDisk(f, 60) })
    const src = newDriver(srcDir)
    const dst = newDriver(dstDir)
    const s = spec(64, 'dirty.raw')
    await createRunning(src, s)
    await dirtying(src, s.id, 58)
    const offer = await dst.prepareIncoming(s)
    const ctl = new AbortController()
    const transfer = src.transferOut(s.id, { uri: offer.uri, bandwidthMiBps: 16, maxDowntimeMs: 30, deadlineMs: 60_000, signal: ctl.signal })
    transfer.catch(() => {})
    await waitFor('the transfer under way', async () => ((await src.status(s.id)) === 'running' && qemuPids(dstDir).length === 1 && ((await dst.stats(s.id))?.rssMiB ?? 0) > 20) ? true : undefined, 20_000, 20)
    ctl.abort(new Error('the destination was lost'))
    await expect(transfer).rejects.toMatchObject({ name: 'TransferAbortedError', message: 'the destination was lost' })
    expect(await src.status(s.id)).toBe('running')
    await waitFor('the destination QEMU to exit', () => qemuPids(dstDir).length === 0 ? true : undefined, 10_000, 20)
  })

  it('refuses a destination URI that is not tcp:HOST:PORT (QEMU would run exec: URIs)', async () => {
    const d = newDriver()
    const s = spec(64)
    await createRunning(d, s)
    const marker = join(newDataDir(), 'ran')
    for (const uri of [`exec:touch ${marker}`, 'unix:/tmp/x.sock', 'tcp:127.0.0.1', 'tcp:127.0.0.1:99999']) {
      await expect(d.transferOut(s.id, { uri, bandwidthMiBps: 100, maxDowntimeMs: 30, signal: new AbortController().signal })).rejects.toMatchObject({ name: 'TransferRefusedError' })
    }
    expect(existsSync(marker)).toBe(false)
    expect(await d.status(s.id)).toBe('running')
  })

  it('with accel auto, a VM runs on whatever the probe chose', async () => {
    const dataDir = newDataDir()
    const d = new QemuDriver({ dataDir, clock, accel: 'auto' })
    drivers.push(d)
    const probe = await d.accel()
    expect(['kvm', 'tcg']).toContain(probe.accel)
    if (probe.accel === 'tcg') expect(probe.reason).toMatch(/KVM does not work here/)
    const s = spec(64)
    await createRunning(d, s)
    expect(readFileSync(`/proc/${pidOf(dataDir, s.id)!}/cmdline`, 'utf8').split('\0')).toContain(probe.accel)
  })
})
