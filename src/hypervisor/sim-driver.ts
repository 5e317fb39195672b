/**
 * The embedded default driver: VMs that exist only as accounting. A VM is
 * `creating` for `bootDelayMs`, then `running`, until deleted. The model of
 * demand and of live migration grows here (issue: rebalancing).
 */
import type { VmSpec, VmState } from '../core/messages.ts'
import { type Driver, VmExistsError, type VmStateChange } from './driver.ts'

export interface SimDriverInit {
  /** Time from creating to running. */
  bootDelayMs?: number
}

export class SimDriver implements Driver {
  readonly name = 'sim'
  readonly #bootDelayMs: number
  readonly #vms = new Map<string, { state: VmState, timer?: NodeJS.Timeout }>()
  readonly #listeners: Array<(c: VmStateChange) => void> = []

  constructor (init: SimDriverInit = {}) {
    this.#bootDelayMs = init.bootDelayMs ?? 200
  }

  async create (spec: VmSpec): Promise<void> {
    if (this.#vms.has(spec.id)) throw new VmExistsError(`VM ${spec.id} already exists`)
    const vm: { state: VmState, timer?: NodeJS.Timeout } = { state: 'creating' }
    this.#vms.set(spec.id, vm)
    vm.timer = setTimeout(() => {
      vm.timer = undefined
      if (this.#vms.get(spec.id) !== vm) return
      vm.state = 'running'
      this.#emit({ id: spec.id, state: 'running' })
    }, this.#bootDelayMs)
    vm.timer.unref()
  }

  async delete (id: string): Promise<void> {
    const vm = this.#vms.get(id)
    if (vm == null) return
    if (vm.timer != null) clearTimeout(vm.timer)
    this.#vms.delete(id)
    this.#emit({ id, state: 'deleted' })
  }

  state (id: string): VmState | undefined {
    return this.#vms.get(id)?.state
  }

  list (): Array<{ id: string, state: VmState }> {
    return [...this.#vms].map(([id, vm]) => ({ id, state: vm.state }))
  }

  onStateChange (listener: (change: VmStateChange) => void): void {
    this.#listeners.push(listener)
  }

  async stop (): Promise<void> {
    for (const vm of this.#vms.values()) if (vm.timer != null) clearTimeout(vm.timer)
    this.#vms.clear()
  }

  #emit (change: VmStateChange): void {
    for (const l of this.#listeners) l(change)
  }
}
