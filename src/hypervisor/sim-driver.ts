/**
 * The embedded default driver: VMs that exist as accounting and a model.
 * - Lifecycle: `creating` for `bootDelayMs`, then `running`, until deleted.
 * - Demand: each VM's CPU demand follows a seeded trace after VMPlaceS
 *   (core/demand.ts): it changes at exponential intervals to a Gaussian draw.
 * - Live migration: the pre-copy model of core/precopy.ts (SimGrid's rule)
 *   gives the transfer's duration, downtime and bytes; the transfer then
 *   takes that long in real time, and can be aborted. `prepareIncoming`
 *   only hands out a URI (`sim:ID`): nothing travels.
 * - Stats: CPU time is the integral of the demand; RSS is the VM's memory.
 * - Nothing survives the process: `adopt` always says `gone`.
 */
import { DEFAULT_DEMAND, drawDemand, nextChangeInS, type DemandConfig } from '../core/demand.ts'
import type { Clock } from '../core/clock.ts'
import type { VmSpec, VmState } from '../core/messages.ts'
import { DEFAULT_MAX_DOWNTIME_MS, precopy } from '../core/precopy.ts'
import { fnv1a } from '../core/hash.ts'
import { seededRng, type Rng } from '../core/rng.ts'
import { type Driver, type IncomingOffer, TransferAbortedError, TransferRefusedError, type TransferOptions, type TransferResult, VmExistsError, type VmStateChange, type VmStats } from './driver.ts'

export interface SimDriverInit {
  /** Time from creating to running. */
  bootDelayMs?: number
  /** The demand trace; `null` keeps every VM at `staticDemand`. */
  demand?: DemandConfig | null
  /** Demand of every VM when the trace is off. Default 0.5. */
  staticDemand?: number
  /** Seed of the demand traces (each VM's trace also depends on its id). */
  seed?: number
  /** How write-heavy VMs are, for the pre-copy model. Default 0.3. */
  dirtyIntensity?: number
  /** Reads the time for the CPU-time integral. Default: the system's. */
  clock?: Clock
  /** Migration bandwidth when a transfer does not say, MiB/s. Default 1,250 (10 Gbit/s). */
  bandwidthMiBps?: number
  /** Longest switch-over pause when a transfer does not say. Default 30 ms. */
  maxDowntimeMs?: number
}

const systemClock: Clock = { now: () => Date.now() }

interface SimVm {
  state: VmState
  cpu: number
  memMiB: number
  demand: number
  /** CPU time so far (ms), up to `sampledAt`. */
  cpuMs: number
  sampledAt: number
  boot?: NodeJS.Timeout
  change?: NodeJS.Timeout
  rng: Rng
}

export class SimDriver implements Driver {
  readonly name = 'sim'
  readonly #bootDelayMs: number
  readonly #demand: DemandConfig | null
  readonly #staticDemand: number
  readonly #seed: number
  readonly #dirtyIntensity: number
  readonly #clock: Clock
  readonly #bandwidthMiBps: number
  readonly #maxDowntimeMs: number
  readonly #incoming = new Set<string>()
  readonly #vms = new Map<string, SimVm>()
  readonly #listeners: Array<(c: VmStateChange) => void> = []

  constructor (init: SimDriverInit = {}) {
    this.#bootDelayMs = init.bootDelayMs ?? 200
    this.#demand = init.demand === undefined ? DEFAULT_DEMAND : init.demand
    this.#staticDemand = init.staticDemand ?? 0.5
    this.#seed = init.seed ?? 1
    this.#dirtyIntensity = init.dirtyIntensity ?? 0.3
    this.#clock = init.clock ?? systemClock
    this.#bandwidthMiBps = init.bandwidthMiBps ?? 1250
    this.#maxDowntimeMs = init.maxDowntimeMs ?? DEFAULT_MAX_DOWNTIME_MS
  }

  async create (spec: VmSpec, opts: { incoming?: boolean } = {}): Promise<void> {
    if (this.#vms.has(spec.id)) throw new VmExistsError(`VM ${spec.id} already exists`)
    this.#incoming.delete(spec.id)
    const rng = seededRng(this.#seed ^ fnv1a(spec.id))
    const vm: SimVm = { state: opts.incoming === true ? 'running' : 'creating', cpu: spec.cpu, memMiB: spec.memMiB, demand: this.#demand == null ? this.#staticDemand : drawDemand(rng, this.#demand), cpuMs: 0, sampledAt: this.#clock.now(), rng }
    this.#vms.set(spec.id, vm)
    if (vm.state === 'creating') {
      vm.boot = setTimeout(() => {
        vm.boot = undefined
        if (this.#vms.get(spec.id) !== vm) return
        vm.state = 'running'
        this.#emit({ id: spec.id, state: 'running' })
      }, this.#bootDelayMs)
      vm.boot.unref()
    }
    this.#scheduleChange(spec.id, vm)
  }

  /** Nothing outlives the process that ran it. */
  async adopt (_spec: VmSpec): Promise<'adopted' | 'gone'> {
    return 'gone'
  }

  async delete (id: string): Promise<void> {
    this.#incoming.delete(id)
    const vm = this.#vms.get(id)
    if (vm == null) return
    this.#clear(vm)
    this.#vms.delete(id)
    this.#emit({ id, state: 'deleted' })
  }

  state (id: string): VmState | undefined {
    return this.#vms.get(id)?.state
  }

  list (): Array<{ id: string, state: VmState }> {
    return [...this.#vms].map(([id, vm]) => ({ id, state: vm.state }))
  }

  demand (id: string): number {
    return this.#vms.get(id)?.demand ?? 0
  }

  setDemand (id: string, demand: number): void {
    const vm = this.#vms.get(id)
    if (vm == null) return
    this.#account(vm)
    vm.demand = Math.min(1, Math.max(0, demand))
    // A forced demand holds: the trace stops for this VM.
    if (vm.change != null) clearTimeout(vm.change)
    vm.change = undefined
  }

  async stats (id: string): Promise<VmStats | undefined> {
    const vm = this.#vms.get(id)
    if (vm == null) return undefined
    this.#account(vm)
    return { vcpuTimeMs: vm.cpuMs, cpuTimeMs: vm.cpuMs, rssMiB: vm.memMiB }
  }

  async prepareIncoming (spec: VmSpec): Promise<IncomingOffer> {
    if (this.#vms.has(spec.id)) throw new VmExistsError(`VM ${spec.id} already exists`)
    this.#incoming.add(spec.id)
    return { uri: `sim:${spec.id}` }
  }

  /** The model never pauses the VM. */
  async resume (_id: string): Promise<void> {}

  async sweep (_keep: Iterable<string>): Promise<string[]> {
    return []
  }

  /** The pre-copy model's figures for this VM now, then that much real time. */
  async transferOut (id: string, opts: TransferOptions): Promise<TransferResult> {
    const vm = this.#vms.get(id)
    if (vm == null) throw new TransferAbortedError(`no VM ${id} on this driver`)
    const model = precopy({ memMiB: vm.memMiB, bandwidthMiBps: opts.bandwidthMiBps ?? this.#bandwidthMiBps, cpuBusy: vm.demand, dirtyIntensity: this.#dirtyIntensity, maxDowntimeMs: opts.maxDowntimeMs ?? this.#maxDowntimeMs, ...(opts.deadlineMs != null ? { maxTotalMs: opts.deadlineMs } : {}) })
    if (!model.ok) throw new TransferRefusedError(model.reason)
    await new Promise<void>((resolve, reject) => {
      if (opts.signal.aborted) {
        reject(new TransferAbortedError(String(opts.signal.reason ?? 'aborted')))
        return
      }
      const timer = setTimeout(resolve, model.totalMs)
      opts.signal.addEventListener('abort', () => {
        clearTimeout(timer)
        reject(new TransferAbortedError(opts.signal.reason instanceof Error ? opts.signal.reason.message : String(opts.signal.reason ?? 'aborted')))
      }, { once: true })
    })
    if (!this.#vms.has(id)) throw new TransferAbortedError(`VM ${id} was deleted during its migration`)
    return { totalMs: model.totalMs, downtimeMs: model.downtimeMs, bytesMiB: model.bytesMiB, rounds: model.rounds, throttled: false }
  }

  onStateChange (listener: (change: VmStateChange) => void): void {
    this.#listeners.push(listener)
  }

  async stop (): Promise<void> {
    for (const vm of this.#vms.values()) this.#clear(vm)
    this.#vms.clear()
    this.#incoming.clear()
  }

  #scheduleChange (id: string, vm: SimVm): void {
    const cfg = this.#demand
    if (cfg == null) return
    vm.change = setTimeout(() => {
      if (this.#vms.get(id) !== vm) return
      this.#account(vm)
      vm.demand = drawDemand(vm.rng, cfg)
      this.#scheduleChange(id, vm)
    }, nextChangeInS(vm.rng, cfg) * 1000)
    vm.change.unref()
  }

  /** Adds the CPU time since the last change of demand. */
  #account (vm: SimVm): void {
    const now = this.#clock.now()
    vm.cpuMs += Math.max(0, now - vm.sampledAt) * vm.demand * vm.cpu
    vm.sampledAt = now
  }

  #clear (vm: SimVm): void {
    if (vm.boot != null) clearTimeout(vm.boot)
    if (vm.change != null) clearTimeout(vm.change)
  }

  #emit (change: VmStateChange): void {
    for (const l of this.#listeners) l(change)
  }
}
