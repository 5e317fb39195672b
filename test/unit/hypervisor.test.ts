/**
 * The drivers' pure parts: the qemu driver's options, command line and
 * migration-URI check, and the sim driver's model of the extensions the
 * qemu driver brought to the `Driver` interface.
 */
import { describe, expect, it } from 'vitest'
import { ManualClock } from '../../src/core/clock.ts'
import type { VmSpec } from '../../src/core/messages.ts'
import { resolveQemuInit } from '../../src/hypervisor/driver-init.ts'
import { createDriver, SimDriver } from '../../src/hypervisor/index.ts'
import { parseIncomingUri } from '../../src/hypervisor/qemu-migration.ts'
import { qemuArgv, vmPaths } from '../../src/hypervisor/qemu-process.ts'

const clock = new ManualClock(1_000)
const spec: VmSpec = { id: 'vm-0123456789ab', name: 'web', cpu: 2, memMiB: 512, createdAtMs: 0 }

describe('qemu driver options', () => {
  it('fills in the defaults and makes the data dir absolute', () => {
    const o = resolveQemuInit({ dataDir: 'rel/dir', clock })
    expect(o.dataDir.startsWith('/')).toBe(true)
    expect(o).toMatchObject({ accel: 'auto', qemuBinary: 'qemu-system-x86_64', maxDowntimeMs: 30, bandwidthMiBps: 1250, migrationDeadlineMs: 300_000, migrationHost: '127.0.0.1', migrationAdvertiseHost: '127.0.0.1', sampleIntervalMs: 1000 })
    expect(o.imagesDir).toBe(`${o.dataDir}/images`)
  })

  it.each([
    [{ dataDir: '' }, 'Expected `dataDir` to be a non-empty path, got `` (string)'],
    [{ accel: 'hvf' }, 'Expected `accel` to be one of auto, kvm, tcg, got `hvf` (string)'],
    [{ maxDowntimeMs: 0 }, 'Expected `maxDowntimeMs` to be a finite number >= 1, got `0` (number)'],
    [{ bandwidthMiBps: -1 }, 'Expected `bandwidthMiBps` to be a finite number > 0, got `-1` (number)'],
    [{ migrationDeadlineMs: Number.NaN }, 'Expected `migrationDeadlineMs` to be a finite number > 0, got `NaN` (number)'],
    [{ sampleIntervalMs: '1s' }, 'Expected `sampleIntervalMs` to be a finite number >= 10, got `1s` (string)']
  ])('refuses %j', (bad, message) => {
    expect(() => resolveQemuInit({ dataDir: '/d', clock, ...bad } as any)).toThrow(message)
  })

  it('refuses an unknown driver name', () => {
    expect(() => createDriver('xen' as any, { dataDir: '/d', clock })).toThrow('Expected the driver to be sim or qemu, got `xen`')
  })
})

describe('qemu command line', () => {
  const paths = vmPaths('/var/lib/discovery', spec.id)

  it('names the process after the VM, detaches it, and puts its files in its own dir', () => {
    const argv = qemuArgv({ id: spec.id, cpu: 2, memMiB: 512, accel: 'tcg', paths })
    const arg = (flag: string): string | undefined => argv[argv.indexOf(flag) + 1]
    expect(arg('-name')).toBe(`${spec.id},process=discovery-${spec.id},debug-threads=on`)
    expect(arg('-accel')).toBe('tcg')
    expect(arg('-smp')).toBe('2')
    expect(arg('-m')).toBe('512')
    expect(arg('-qmp')).toBe(`unix:/var/lib/discovery/qemu/${spec.id}/qmp.sock,server=on,wait=off`)
    expect(arg('-pidfile')).toBe(`/var/lib/discovery/qemu/${spec.id}/qemu.pid`)
    expect(argv).toContain('-daemonize')
    expect(argv).not.toContain('-incoming')
    expect(argv).not.toContain('-drive')
  })

  it.each(['../etc', '', 'a/b', '.hidden', 'x'.repeat(65)])('refuses %j as a VM id: it would not be one directory under the data dir', id => {
    expect(() => vmPaths('/var/lib/discovery', id)).toThrow(/Expected a VM id/)
  })

  it('opens a second QMP socket for operators and tests (the driver holds the first)', () => {
    const argv = qemuArgv({ id: spec.id, cpu: 1, memMiB: 128, accel: 'tcg', paths })
    const qmps = argv.flatMap((a, i) => a === '-qmp' ? [argv[i + 1]] : [])
    expect(qmps).toEqual([`unix:${paths.qmp},server=on,wait=off`, `unix:${paths.monitor},server=on,wait=off`])
  })

  it('boots a kernel image directly, its console in the VM\'s dir, the same on a migration\'s destination', () => {
    const kernel = { kernel: '/img/bb/vmlinuz', initrd: '/img/bb/initrd', append: 'console=ttyS0 quiet' }
    for (const incoming of [false, true]) {
      const argv = qemuArgv({ id: spec.id, cpu: 1, memMiB: 256, accel: 'tcg', paths, kernel, incoming })
      const arg = (flag: string): string | undefined => argv[argv.indexOf(flag) + 1]
      expect([arg('-kernel'), arg('-initrd'), arg('-append'), arg('-serial')]).toEqual([kernel.kernel, kernel.initrd, kernel.append, `file:${paths.console}`])
      expect(argv).not.toContain('-drive')
    }
  })

  it('waits for a migration with -incoming defer, and attaches the overlay as the disk', () => {
    const argv = qemuArgv({ id: spec.id, cpu: 1, memMiB: 128, accel: 'kvm', paths, disk: paths.disk, incoming: true })
    expect(argv.slice(argv.indexOf('-incoming'), argv.indexOf('-incoming') + 2)).toEqual(['-incoming', 'defer'])
    expect(argv[argv.indexOf('-drive') + 1]).toBe(`file=${paths.disk},format=qcow2,if=virtio,id=disk0`)
  })
})

describe('the destination\'s migration URI (it comes from a peer)', () => {
  it.each(['tcp:127.0.0.1:4444', 'tcp:10.0.0.7:1', 'tcp:[::1]:65535', 'tcp:node-3.edge.example:49152'])('accepts %s', uri => {
    expect(parseIncomingUri(uri)).toBe(uri)
  })

  it.each(['exec:rm -rf /', 'unix:/run/x.sock', 'file:/etc/passwd', 'tcp:127.0.0.1', 'tcp:127.0.0.1:0', 'tcp:127.0.0.1:65536', 'tcp:a b:1', 'rdma:1.2.3.4:5', ' tcp:1.2.3.4:5'])('refuses %j', uri => {
    expect(() => parseIncomingUri(uri)).toThrow(/Expected the destination's URI to be tcp:HOST:PORT/)
  })
})

describe('sim driver: the extensions of the Driver interface', () => {
  it('counts CPU time as the integral of the demand, and RSS as the VM\'s memory', async () => {
    const c = new ManualClock(0)
    const d = new SimDriver({ demand: null, staticDemand: 0.5, clock: c, bootDelayMs: 1 })
    await d.create(spec)
    c.advance(1_000)
    expect(await d.stats(spec.id)).toEqual({ vcpuTimeMs: 1_000, cpuTimeMs: 1_000, rssMiB: 512 }) // 0.5 × 2 vCPUs × 1 s
    d.setDemand(spec.id, 1)
    c.advance(500)
    expect((await d.stats(spec.id))!.vcpuTimeMs).toBe(2_000)
    expect(await d.stats('vm-nothere00')).toBeUndefined()
    await d.stop()
  })

  it('hands out an incoming URI, refuses one for a VM it runs, and never adopts (nothing outlives it)', async () => {
    const d = new SimDriver({ clock })
    expect(await d.prepareIncoming(spec)).toEqual({ uri: `sim:${spec.id}` })
    await d.create(spec, { incoming: true })
    expect(d.state(spec.id)).toBe('running')
    await expect(d.prepareIncoming(spec)).rejects.toMatchObject({ name: 'VmExistsError' })
    expect(await d.adopt(spec)).toBe('gone')
    expect(await d.sweep([])).toEqual([])
    await d.resume(spec.id)
    expect(d.state(spec.id)).toBe('running')
    await d.stop()
  })

  it('gives the model\'s rounds, never throttles, and refuses what cannot finish before the deadline', async () => {
    const d = new SimDriver({ demand: null, staticDemand: 0.5, clock })
    await d.create(spec, { incoming: true })
    const r = await d.transferOut(spec.id, { bandwidthMiBps: 100_000, maxDowntimeMs: 30, signal: new AbortController().signal })
    expect(r.rounds).toBeGreaterThanOrEqual(1)
    expect(r.throttled).toBe(false)
    await expect(d.transferOut(spec.id, { bandwidthMiBps: 10, maxDowntimeMs: 30, deadlineMs: 1_000, signal: new AbortController().signal }))
      .rejects.toMatchObject({ name: 'TransferRefusedError', message: expect.stringMatching(/more than maxTotalMs 1000 ms/) })
    await d.stop()
  })
})
