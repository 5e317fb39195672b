/**
 * The simulated cluster: hosts, VMs whose CPU demand follows a seeded trace,
 * overload accounting, and live migrations run by the agents' state
 * machines (migrations.ts), their messages crossing the simulated network.
 * Every algorithm (none, centralized, dvms) runs on a World of its own built
 * from the same seed, so all of them see the same demand trace.
 */
import { drawDemand, nextChangeInS } from '../core/demand.ts'
import type { HostLoad, VmLoad } from '../core/planner.ts'
import { fnv1a } from '../core/hash.ts'
import { seededRng, type Rng } from '../core/rng.ts'
import { EventQueue } from './event-queue.ts'
import { type MigrationEnded, type MigrationStats, SimMigrations } from './migrations.ts'
import { type LinkModel, SimNetwork } from './network.ts'
import { drawDirtyIntensity, type Scenario } from './scenarios.ts'

export { MIGRATION_TIMEOUT_MS, type MigrationStats } from './migrations.ts'

export interface SimVm {
  idx: number
  id: string
  cpu: number
  memMiB: number
  /** Demand as a fraction of the VM's vCPUs. */
  demand: number
  host: number
  migrating: boolean
  epoch: number
  /** How write-heavy the VM is (the pre-copy model's dirty-page intensity). */
  dirtyIntensity: number
  rng: Rng
}

export interface SimHost {
  idx: number
  id: string
  vms: Set<number>
  /** Sum of the demand of the VMs running here, in vCPUs. */
  demand: number
  memMiB: number
  alloc: number
  /** What incoming migrations have reserved here, by migration id. */
  reserved: Map<string, VmLoad>
  idle: boolean
  overloadSince?: number
}

export interface WorldOptions {
  scenario: Scenario
  hosts: number
  vms: number
  seed: number
  link: LinkModel
}

export class World {
  readonly scenario: Scenario
  readonly queue = new EventQueue()
  readonly network: SimNetwork
  readonly hosts: SimHost[] = []
  readonly vms: SimVm[] = []
  readonly vmById = new Map<string, SimVm>()
  readonly hostById = new Map<string, SimHost>()
  now = 0
  overloadEvents = 0
  overloadMs = 0
  readonly overloadDurationsMs: number[] = []
  readonly overloaded = new Set<number>()
  readonly migrator = new SimMigrations(this)
  readonly migrations: MigrationStats = this.migrator.stats
  /** The rebalancing partition a host is in, if any: the admission of a migration reads it (DVMS sets it). */
  partitionOf: (h: SimHost) => string | undefined = () => undefined
  /** Called when a host's load changed (demand, VMs): algorithms keep their watch lists with it. */
  onHostChanged?: (h: SimHost) => void

  constructor (opts: WorldOptions) {
    const s = opts.scenario
    this.scenario = s
    this.network = new SimNetwork(this.queue, seededRng(opts.seed ^ 0x5eed), opts.link, () => this.now)
    for (let i = 0; i < opts.hosts; i++) {
      const h: SimHost = { idx: i, id: `host-${String(i).padStart(5, '0')}`, vms: new Set(), demand: 0, memMiB: 0, alloc: 0, reserved: new Map(), idle: false }
      this.hosts.push(h)
      this.hostById.set(h.id, h)
    }
    // Round-robin initial placement, as in VMPlaceS; each VM's demand has its own random stream.
    for (let j = 0; j < opts.vms; j++) {
      const rng = seededRng((opts.seed * 1_000_003) ^ fnv1a(`vm-${j}`))
      // Its dirty-page intensity from a stream of its own: the demand trace is the same whatever the links.
      const dirtyIntensity = drawDirtyIntensity(seededRng((opts.seed * 1_000_003) ^ fnv1a(`dirty-${j}`)), s.dirtyIntensity)
      const vm: SimVm = { idx: j, id: `vm-${String(j).padStart(6, '0')}`, cpu: s.vmCpu, memMiB: s.vmMemMiB, demand: drawDemand(rng, s.demand), host: j % opts.hosts, migrating: false, epoch: 0, dirtyIntensity, rng }
      this.vms.push(vm)
      this.vmById.set(vm.id, vm)
      const h = this.hosts[vm.host]
      h.vms.add(j)
      h.demand += vm.demand * vm.cpu
      h.memMiB += vm.memMiB
      h.alloc += vm.cpu
      this.#scheduleDemandChange(vm)
    }
    for (const h of this.hosts) this.#updateOverload(h)
  }

  /** Runs events until `untilMs`, calling `onProgress` as simulated time passes. */
  run (untilMs: number, onProgress?: (nowMs: number) => void): void {
    let nextReport = 0
    while (true) {
      const t = this.queue.peekTime()
      if (t == null || t > untilMs) break
      const e = this.queue.pop()!
      this.now = e.atMs
      e.run()
      if (onProgress != null && this.now >= nextReport) {
        onProgress(this.now)
        nextReport = this.now + untilMs / 200
      }
    }
    this.now = untilMs
    for (const h of this.hosts) {
      if (h.overloadSince != null) {
        const d = untilMs - h.overloadSince
        this.overloadMs += d
        this.overloadDurationsMs.push(d)
        h.overloadSince = undefined
      }
    }
  }

  /** Runs `fn` every `periodMs` of simulated time, starting at `firstMs`. */
  every (periodMs: number, firstMs: number, fn: () => void): void {
    const tick = (): void => {
      fn()
      this.queue.push(this.now + periodMs, tick)
    }
    this.queue.push(firstMs, tick)
  }

  hostLoad (h: SimHost): HostLoad {
    const vms: VmLoad[] = []
    for (const j of h.vms) {
      const vm = this.vms[j]
      vms.push({ id: vm.id, cpu: vm.cpu, memMiB: vm.memMiB, demand: vm.demand * vm.cpu })
    }
    for (const r of h.reserved.values()) vms.push(r)
    return { peerId: h.id, capacity: { cpu: this.scenario.hostCpu, memMiB: this.scenario.hostMemMiB }, cpuOvercommit: this.scenario.cpuOvercommit, vms, idle: h.idle }
  }

  isOverloaded (h: SimHost): boolean {
    return h.demand > this.scenario.hostCpu + 1e-9
  }

  isUnderloaded (h: SimHost, threshold = 0.2): boolean {
    return !h.idle && h.vms.size > 0 && h.demand / this.scenario.hostCpu < threshold
  }

  activeHosts (): number {
    let n = 0
    for (const h of this.hosts) if (!h.idle && h.vms.size > 0) n++
    return n
  }

  /**
   * A live migration through the agents' migration protocol (migrations.ts
   * runs core's state machines). `partitionId`: the rebalancing partition
   * that ordered it, which the destination's admission reads.
   */
  migrate (vmId: string, fromId: string, toId: string, partitionId: string | undefined, onEnd: MigrationEnded): void {
    this.migrator.migrate(vmId, fromId, toId, partitionId, onEnd)
  }

  /** The destination adopted a migrated VM (its commit): the VM runs there at epoch + 1, its reservation is spent. */
  adopt (vm: SimVm, src: SimHost, dst: SimHost, reservationId: string): void {
    dst.reserved.delete(reservationId)
    this.#move(vm, src, dst)
  }

  #move (vm: SimVm, src: SimHost, dst: SimHost): void {
    src.vms.delete(vm.idx)
    src.demand -= vm.demand * vm.cpu
    src.memMiB -= vm.memMiB
    src.alloc -= vm.cpu
    dst.vms.add(vm.idx)
    dst.demand += vm.demand * vm.cpu
    dst.memMiB += vm.memMiB
    dst.alloc += vm.cpu
    dst.idle = false
    vm.host = dst.idx
    vm.migrating = false
    vm.epoch++
    this.#updateOverload(src)
    this.#updateOverload(dst)
  }

  #scheduleDemandChange (vm: SimVm): void {
    const s = this.scenario
    this.queue.push(this.now + nextChangeInS(vm.rng, s.demand) * 1000, () => {
      const h = this.hosts[vm.host]
      const next = drawDemand(vm.rng, s.demand)
      h.demand += (next - vm.demand) * vm.cpu
      vm.demand = next
      this.#updateOverload(h)
      this.#scheduleDemandChange(vm)
    })
  }

  #updateOverload (h: SimHost): void {
    const over = this.isOverloaded(h)
    if (over && h.overloadSince == null) {
      h.overloadSince = this.now
      this.overloadEvents++
      this.overloaded.add(h.idx)
    } else if (!over && h.overloadSince != null) {
      const d = this.now - h.overloadSince
      this.overloadMs += d
      this.overloadDurationsMs.push(d)
      h.overloadSince = undefined
      this.overloaded.delete(h.idx)
    }
    this.onHostChanged?.(h)
  }
}
