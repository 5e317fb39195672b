/**
 * Hypervisor drivers behind one `Driver` interface: `sim` (embedded, the
 * default: accounting and a model of boot, demand and migration) and `qemu`
 * (a real QEMU process per VM, driven over QMP, that outlives the agent;
 * real live migration over TCP). Each is made from a `DriverInit` of the
 * hypervisor's own, not from the agent's config.
 */
import type { Driver } from './driver.ts'
import type { DriverInit, HypervisorName } from './driver-init.ts'
import { QemuDriver } from './qemu-driver.ts'
import { SimDriver } from './sim-driver.ts'

export type { Driver, IncomingOffer, TransferOptions, TransferResult, VmStateChange, VmStats } from './driver.ts'
export { IncomingMissingError, TransferAbortedError, TransferRefusedError, VmExistsError } from './driver.ts'
export type { DriverInit, HypervisorName } from './driver-init.ts'
export { DriverInitError } from './driver-init.ts'
export type { Accel, AccelPreference, AccelProbe } from './accel.ts'
export { QemuDriver, QemuAdoptError } from './qemu-driver.ts'
export { SimDriver } from './sim-driver.ts'
export { vmQemus, killQemu, waitExit } from './qemu-process.ts'

export function createDriver (name: HypervisorName, init: DriverInit): Driver {
  switch (name) {
    case 'sim':
      return new SimDriver({ bandwidthMiBps: init.bandwidthMiBps, maxDowntimeMs: init.maxDowntimeMs, ...init.sim, clock: init.sim?.clock ?? init.clock })
    case 'qemu':
      return new QemuDriver(init)
    default:
      throw new TypeError(`Expected the driver to be sim or qemu, got \`${String(name)}\``)
  }
}
