import type { VmSpec, VmState } from '../core/messages.ts'

export interface VmStateChange {
  id: string
  state: VmState
}

export interface TransferOptions {
  /** What the link gives this migration, MiB/s. */
  bandwidthMiBps: number
  /** Longest pause allowed at the switch-over. */
  maxDowntimeMs: number
  /** Aborts the transfer (the destination was lost, the agent stops). */
  signal: AbortSignal
}

export interface TransferResult {
  totalMs: number
  downtimeMs: number
  bytesMiB: number
}

/**
 * What the agent asks of a hypervisor. The contract:
 * - `create` returns once the VM exists (state `creating`, or `running` for
 *   a VM arriving by migration); it reports `running` through `onStateChange`
 *   when it has booted;
 * - `delete` of an unknown id is a no-op, so a retried delete is safe;
 * - `demand` is the VM's current CPU demand, a fraction of its vCPUs;
 * - `transferOut` moves the VM's memory to a destination (live migration's
 *   pre-copy) and resolves when the destination can take over, or rejects
 *   with the reason it cannot converge or was aborted; the VM keeps running
 *   here until the agent drops it;
 * - the driver owns no durable state: the agent re-creates its VMs after a restart.
 */
export interface Driver {
  readonly name: string
  create (spec: VmSpec, opts?: { incoming?: boolean }): Promise<void>
  delete (id: string): Promise<void>
  state (id: string): VmState | undefined
  list (): Array<{ id: string, state: VmState }>
  demand (id: string): number
  /** Forces a VM's demand (sim driver: tests and demos). */
  setDemand (id: string, demand: number): void
  transferOut (id: string, opts: TransferOptions): Promise<TransferResult>
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

export class TransferRefusedError extends Error {
  static name = 'TransferRefusedError'
  constructor (message = 'the live migration cannot converge') {
    super(message)
    this.name = TransferRefusedError.name
  }
}

export class TransferAbortedError extends Error {
  static name = 'TransferAbortedError'
  constructor (message = 'the transfer was aborted') {
    super(message)
    this.name = TransferAbortedError.name
  }
}
