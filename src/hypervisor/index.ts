/**
 * Hypervisor drivers behind one `Driver` interface: `sim` (embedded, the
 * default: accounting and a model of boot and migration) and, later, `qemu`.
 */
import type { AgentConfig } from '../config.ts'
import type { Driver } from './driver.ts'
import { SimDriver } from './sim-driver.ts'

export type { Driver, VmStateChange } from './driver.ts'
export { SimDriver } from './sim-driver.ts'

export function createDriver (config: AgentConfig): Driver {
  return new SimDriver({ bootDelayMs: config.bootDelayMs, demand: config.demand, staticDemand: config.staticDemand, seed: config.seed })
}
