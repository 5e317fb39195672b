import type { VmSpec, VmState } from '../core/messages.ts'

export interface VmStateChange {
  id: string
  state: VmState
}

/**
 * What the agent asks of a hypervisor. The contract:
 * - `create` returns once the VM exists (state `creating`); it reports
 *   `running` through `onStateChange` when it has booted;
 * - `delete` of an unknown id is a no-op, so a retried delete is safe;
 * - the driver owns no durable state: the agent re-creates its VMs after a restart.
 */
export interface Driver {
  readonly name: string
  create (spec: VmSpec): Promise<void>
  delete (id: string): Promise<void>
  state (id: string): VmState | undefined
  list (): Array<{ id: string, state: VmState }>
  onStateChange (listener: (change: VmStateChange) => void): void
  stop (): Promise<void>
}

export class VmExistsError extends Error {
  static name = 'VmExistsError'
  constructor (message = 'a VM with this id already exists on this driver') {
    super(message)
    this.name = VmExistsError.name
  }
}
