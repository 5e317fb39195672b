/**
 * The qemu driver: each VM is a `qemu-system-x86_64` process (KVM when it
 * works here, TCG otherwise) with its QMP socket, pid file, log and disk in
 * `<dataDir>/qemu/<id>/`.
 * - QEMU runs detached (qemu-process.ts), so VMs outlive the agent; a new
 *   agent `adopt`s them through their QMP socket. The driver holds one QMP
 *   connection per VM (QEMU serves one client at a time); that connection
 *   closing is how it learns that a QEMU exited.
 * - Demand is measured: the CPU time of the guest's vCPU threads between two
 *   samples, over the time between them and the VM's vCPUs.
 * - Live migration over TCP: the destination opens a port (`-incoming defer`,
 *   `migrate-incoming` on port 0), the source sends (qemu-migration.ts).
 *   A failed migration makes the destination's QEMU exit: the driver drops
 *   that VM quietly, as it was never the agent's.
 */
import { DiscoveryError } from '../core/errors.ts'
import { readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { VmSpec, VmState } from '../core/messages.ts'
import { type AccelProbe, resolveAccel } from './accel.ts'
import { type Driver, IncomingMissingError, type IncomingOffer, TransferAbortedError, TransferRefusedError, type TransferOptions, type TransferResult, VmExistsError, type VmStateChange, type VmStats } from './driver.ts'
import { type DriverInit, type ResolvedQemuInit, resolveQemuInit } from './driver-init.ts'
import { migrateOut, parseIncomingUri } from './qemu-migration.ts'
import { resolveImage } from './qemu-image.ts'
import { cpuTimeMs, isOurQemu, killQemu, qemuArgv, QemuStartError, qemuVersion, readPid, rssMiB, SAFE_VM_ID, startQemu, vmPaths, waitExit } from './qemu-process.ts'
import { endQemu, exists, type QemuVm, removeRuntimeFiles, settle } from './qemu-vm.ts'
import { QmpClient } from './qmp.ts'

/** A QEMU runs for this VM but its QMP socket does not answer (another agent on the same data dir?). */
export class QemuAdoptError extends DiscoveryError {
  static name = 'QemuAdoptError'
  static defaultMessage = 'the VM\'s QEMU runs but cannot be adopted'
}

export class QemuDriver implements Driver {
  readonly name = 'qemu'
  readonly #o: ResolvedQemuInit
  readonly #vms = new Map<string, QemuVm>()
  /** Ids being started: a second create of one of them must not start a second QEMU. */
  readonly #starting = new Set<string>()
  readonly #listeners: Array<(c: VmStateChange) => void> = []
  readonly #sampler: NodeJS.Timeout
  #sampling = false

  constructor (init: DriverInit) {
    this.#o = resolveQemuInit(init)
    this.#sampler = setInterval(() => { void this.#sample() }, this.#o.sampleIntervalMs)
    this.#sampler.unref()
  }

  /** For the agent's start: QEMU's version and the accelerator VMs will get; fails with a clear error when QEMU is missing. */
  async preflight (): Promise<{ version: string, accel: AccelProbe }> {
    const version = await qemuVersion(this.#o.qemuBinary)
    return { version, accel: await this.accel() }
  }

  /** The accelerator VMs get here (KVM is tried once, on first use). */
  async accel (): Promise<AccelProbe> {
    return await resolveAccel(this.#o.accel, this.#o.qemuBinary)
  }

  async create (spec: VmSpec, opts: { incoming?: boolean } = {}): Promise<void> {
    if (opts.incoming === true) {
      await this.#takeIncoming(spec)
      return
    }
    const vm = await this.#launch(spec, false)
    void this.#watchBoot(vm)
  }

  async adopt (spec: VmSpec): Promise<'adopted' | 'gone'> {
    const known = this.#vms.get(spec.id)
    if (known != null && known.state !== 'stopped' && !known.incoming) return 'adopted'
    const paths = vmPaths(this.#o.dataDir, spec.id)
    const pid = await readPid(paths.pid)
    if (pid == null || !(await isOurQemu(pid, paths.qmp))) {
      await removeRuntimeFiles(paths)
      return 'gone'
    }
    let qmp: QmpClient
    try {
      qmp = await QmpClient.connect(paths.qmp, { timeoutMs: 5_000 })
    } catch (err: any) {
      if (!(await isOurQemu(pid, paths.qmp))) return 'gone'
      throw new QemuAdoptError(`VM ${spec.id}: its QEMU (pid ${pid}) runs but its QMP socket does not answer (is another agent using ${this.#o.dataDir}?): ${String(err.message)}`)
    }
    const vm = await this.#attach({ spec, paths, pid, qmp, state: 'running', incoming: false, hasDisk: await exists(paths.disk), tids: [], demand: 0, letGo: false, migrating: false })
    try {
      // An outgoing migration its agent started and never saw end: cancelled, the guest stays here (settle resumes it).
      const m = await qmp.execute<{ status?: string }>('query-migrate')
      if (m.status != null && ['setup', 'active', 'pre-switchover', 'device', 'wait-unplug'].includes(m.status)) await qmp.execute('migrate_cancel')
      const status = await settle(vm)
      if (status !== 'running') throw new Error(`it is ${status}`)
    } catch {
      // Not a VM we can run (shut down, crashed guest, a migration that never came): the agent restarts it.
      vm.letGo = true
      await endQemu(vm)
      return 'gone'
    }
    this.#vms.set(spec.id, vm)
    return 'adopted'
  }

  async delete (id: string): Promise<void> {
    const vm = this.#vms.get(id)
    if (vm == null) {
      if (!SAFE_VM_ID.test(id)) return
      // Maybe a VM of an earlier run that nobody adopted.
      const paths = vmPaths(this.#o.dataDir, id)
      if (!(await exists(paths.dir))) return
      const pid = await readPid(paths.pid)
      if (pid != null) {
        await killQemu(pid, paths.qmp)
        await waitExit(pid, 5_000)
      }
      await rm(paths.dir, { recursive: true, force: true })
      return
    }
    if (vm.deleting != null) {
      await vm.deleting
      return
    }
    vm.letGo = true
    vm.deleting = (async () => {
      await endQemu(vm)
      await rm(vm.paths.dir, { recursive: true, force: true })
      if (this.#vms.get(id) === vm) this.#vms.delete(id)
      if (!vm.incoming) this.#emit({ id, state: 'deleted' })
    })()
    await vm.deleting
  }

  state (id: string): VmState | undefined {
    const vm = this.#vms.get(id)
    return vm == null || vm.incoming ? undefined : vm.state
  }

  list (): Array<{ id: string, state: VmState }> {
    return [...this.#vms.values()].filter(vm => !vm.incoming).map(vm => ({ id: vm.spec.id, state: vm.state }))
  }

  demand (id: string): number {
    return this.#vms.get(id)?.demand ?? 0
  }

  /** Demand is measured here; forcing it means nothing. */
  setDemand (_id: string, _demand: number): void {}

  /** QEMU's own word on a VM (`running`, `paused`, `postmigrate`, `inmigrate`...): for diagnostics and tests. */
  async status (id: string): Promise<string | undefined> {
    const vm = this.#vms.get(id)
    if (vm == null || vm.qmp.isClosed) return undefined
    return (await vm.qmp.execute<{ status: string }>('query-status')).status
  }

  async stats (id: string): Promise<VmStats | undefined> {
    const vm = this.#vms.get(id)
    if (vm == null || vm.state === 'stopped') return undefined
    const [vcpu, cpu, rss] = await Promise.all([cpuTimeMs(vm.pid, vm.tids), cpuTimeMs(vm.pid), rssMiB(vm.pid)])
    if (vcpu == null || cpu == null || rss == null) return undefined
    return { vcpuTimeMs: vcpu, cpuTimeMs: cpu, rssMiB: rss }
  }

  async prepareIncoming (spec: VmSpec): Promise<IncomingOffer> {
    const waiting = this.#vms.get(spec.id)
    if (waiting?.incoming === true && waiting.incomingUri != null && waiting.deleting == null) return { uri: waiting.incomingUri }
    const vm = await this.#launch(spec, true)
    try {
      await vm.qmp.execute('migrate-incoming', { uri: `tcp:${uriHost(this.#o.migrationHost)}:0` })
      const info = await vm.qmp.execute<{ 'socket-address'?: Array<{ port?: string | number }> }>('query-migrate')
      const port = Number(info['socket-address']?.[0]?.port)
      if (!Number.isInteger(port) || port <= 0) throw new QemuStartError(`QEMU did not say which port it listens on for VM ${spec.id}`)
      vm.incomingUri = `tcp:${uriHost(this.#o.migrationAdvertiseHost)}:${port}`
      return { uri: vm.incomingUri }
    } catch (err) {
      await this.delete(spec.id)
      throw err
    }
  }

  async transferOut (id: string, opts: TransferOptions): Promise<TransferResult> {
    const vm = this.#vms.get(id)
    if (vm == null || vm.incoming || vm.state === 'stopped' || vm.deleting != null) throw new TransferAbortedError(`no running VM ${id} on this driver`)
    if (vm.migrating) throw new TransferRefusedError(`VM ${id} is already migrating`)
    if (opts.uri == null) throw new TransferRefusedError('the destination gave no incoming URI (does it run the qemu driver?)')
    // The URI came from a peer: only `tcp:host:port` (QEMU would also run `exec:` URIs as shell commands).
    const uri = parseIncomingUri(opts.uri)
    vm.migrating = true
    try {
      return await migrateOut(vm.qmp, {
        uri,
        bandwidthMiBps: opts.bandwidthMiBps ?? this.#o.bandwidthMiBps,
        maxDowntimeMs: opts.maxDowntimeMs ?? this.#o.maxDowntimeMs,
        deadlineMs: opts.deadlineMs ?? this.#o.migrationDeadlineMs,
        signal: opts.signal,
        hasDisk: vm.hasDisk,
        clock: this.#o.clock
      })
    } finally {
      vm.migrating = false
    }
  }

  async resume (id: string): Promise<void> {
    const vm = this.#vms.get(id)
    if (vm == null || vm.incoming || vm.qmp.isClosed) return
    const { status } = await vm.qmp.execute<{ status: string }>('query-status')
    if (status !== 'running') await vm.qmp.execute('cont')
    vm.sample = undefined
  }

  async sweep (keep: Iterable<string>): Promise<string[]> {
    const kept = new Set(keep)
    const ids = await readdir(join(this.#o.dataDir, 'qemu')).catch(() => [] as string[])
    const removed: string[] = []
    for (const id of ids) {
      if (kept.has(id) || this.#vms.has(id) || this.#starting.has(id) || !SAFE_VM_ID.test(id)) continue
      await this.delete(id)
      removed.push(id)
    }
    return removed
  }

  onStateChange (listener: (change: VmStateChange) => void): void {
    this.#listeners.push(listener)
  }

  /** Lets go of every VM without stopping it: they run on, and the next agent adopts them. */
  async stop (): Promise<void> {
    clearInterval(this.#sampler)
    for (const vm of this.#vms.values()) {
      vm.letGo = true
      vm.qmp.close()
    }
    this.#vms.clear()
  }

  /** Starts a QEMU for `spec` and connects to it; the VM is in the map once this resolves. */
  async #launch (spec: VmSpec, incoming: boolean): Promise<QemuVm> {
    const id = spec.id
    const existing = this.#vms.get(id)
    if ((existing != null && existing.state !== 'stopped') || this.#starting.has(id)) throw new VmExistsError(`VM ${id} already exists`)
    this.#starting.add(id)
    try {
      const paths = vmPaths(this.#o.dataDir, id)
      await removeRuntimeFiles(paths)
      // A migration brings the disk's content: start from a fresh overlay.
      if (incoming) await rm(paths.disk, { force: true })
      const { disk, kernel } = spec.image != null ? await resolveImage(this.#o.imagesDir, spec.image, paths, this.#o.qemuImgBinary) : {}
      const { accel } = await this.accel()
      const pid = await startQemu(this.#o.qemuBinary, qemuArgv({ id, cpu: spec.cpu, memMiB: spec.memMiB, accel, paths, disk, kernel, incoming }), paths)
      let qmp: QmpClient
      try {
        qmp = await QmpClient.connect(paths.qmp)
      } catch (err: any) {
        await killQemu(pid, paths.qmp)
        throw new QemuStartError(`QEMU of VM ${id} started but its QMP socket did not answer: ${String(err.message)}`)
      }
      const vm = await this.#attach({ spec, paths, pid, qmp, state: 'creating', incoming, hasDisk: disk != null, tids: [], demand: 0, letGo: false, migrating: false })
      this.#vms.set(id, vm)
      return vm
    } finally {
      this.#starting.delete(id)
    }
  }

  /** Listens to the VM's QEMU and learns its vCPU threads. */
  async #attach (vm: QemuVm): Promise<QemuVm> {
    vm.qmp.onEvent(e => {
      if (e.event === 'SHUTDOWN') vm.shutdownReason = `shut down: ${String(e.data?.reason ?? 'unknown')}`
    })
    void vm.qmp.closed.then(() => this.#exited(vm))
    const cpus = await vm.qmp.execute<Array<{ 'thread-id'?: number }>>('query-cpus-fast').catch(() => [])
    vm.tids = [...new Set(cpus.map(c => c['thread-id']).filter((t): t is number => typeof t === 'number'))]
    return vm
  }

  /** The VM is set up: it runs (a BIOS guest has nothing more to boot). */
  async #watchBoot (vm: QemuVm): Promise<void> {
    const status = await settle(vm).catch(() => undefined)
    if (status !== 'running' || vm.letGo || vm.state !== 'creating') return
    vm.state = 'running'
    this.#emit({ id: vm.spec.id, state: 'running' })
  }

  /** Takes over the VM a migration brought in: it is ours once its QEMU runs it. */
  async #takeIncoming (spec: VmSpec): Promise<void> {
    const vm = this.#vms.get(spec.id)
    if (vm != null && !vm.incoming && vm.state === 'running') return
    if (vm == null || !vm.incoming || vm.deleting != null) throw new IncomingMissingError(`no incoming migration of ${spec.id} is waiting here (it failed, or was never prepared)`)
    let status: string
    try {
      status = await settle(vm)
    } catch (err: any) {
      throw new IncomingMissingError(`the migration of ${spec.id} did not arrive: ${String(err.message)}`)
    }
    if (status !== 'running') throw new IncomingMissingError(`the migration of ${spec.id} did not arrive: its QEMU is ${status}`)
    vm.spec = spec
    vm.incoming = false
    vm.state = 'running'
  }

  /** The QMP connection closed: unless the driver did it, the QEMU is gone. */
  async #exited (vm: QemuVm): Promise<void> {
    if (vm.letGo || this.#vms.get(vm.spec.id) !== vm) return
    // A connection can also close on a protocol error with QEMU alive: a VM we cannot talk to is ended.
    if (!(await waitExit(vm.pid, 2_000))) await killQemu(vm.pid, vm.paths.qmp)
    await removeRuntimeFiles(vm.paths)
    if (vm.letGo || this.#vms.get(vm.spec.id) !== vm) return
    if (vm.incoming) {
      // A failed migration: QEMU exits at the destination. Never the agent's VM, nothing to report.
      this.#vms.delete(vm.spec.id)
      await rm(vm.paths.dir, { recursive: true, force: true })
      return
    }
    vm.state = 'stopped'
    vm.demand = 0
    vm.sample = undefined
    this.#emit({ id: vm.spec.id, state: 'stopped', reason: `its QEMU (pid ${vm.pid}) exited: ${vm.shutdownReason ?? `killed or crashed (see ${vm.paths.log})`}` })
  }

  async #sample (): Promise<void> {
    if (this.#sampling) return
    this.#sampling = true
    try {
      for (const vm of this.#vms.values()) {
        if (vm.incoming || vm.state === 'stopped') continue
        const vcpuMs = await cpuTimeMs(vm.pid, vm.tids)
        const atMs = this.#o.clock.now()
        if (vcpuMs == null) continue
        const prev = vm.sample
        vm.sample = { atMs, vcpuMs }
        if (prev == null || atMs <= prev.atMs) continue
        vm.demand = Math.min(1, Math.max(0, (vcpuMs - prev.vcpuMs) / ((atMs - prev.atMs) * vm.spec.cpu)))
      }
    } finally {
      this.#sampling = false
    }
  }

  #emit (change: VmStateChange): void {
    for (const l of this.#listeners) l(change)
  }
}

function uriHost (host: string): string {
  return host.includes(':') ? `[${host}]` : host
}
