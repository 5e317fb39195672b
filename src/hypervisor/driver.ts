import { DiscoveryError } from '../core/errors.ts'
import type { VmSpec, VmState } from '../core/messages.ts'

export interface VmStateChange {
  id: string
  state: VmState
  /** Why, when the driver knows and it is not the agent's own doing (e.g. `stopped`: the VM's process exited). */
  reason?: string
}

export interface TransferOptions {
  /** Where the destination waits for the VM: what its `prepareIncoming` returned (the qemu driver needs it). */
  uri?: string
  /** What the link gives this migration, MiB/s. Default: the driver's (1,250). */
  bandwidthMiBps?: number
  /** Longest pause allowed at the switch-over. Default: the driver's (30 ms). */
  maxDowntimeMs?: number
  /** Give up (with the reason) when the migration has not converged after this long. Default: the driver's. */
  deadlineMs?: number
  /** Aborts the transfer (the destination was lost, the agent stops). */
  signal: AbortSignal
}

export interface TransferResult {
  totalMs: number
  /** The pause at the switch-over. */
  downtimeMs: number
  /** Everything sent (memory, and the disk when the VM has one). */
  bytesMiB: number
  /** Dirty-memory synchronisations: the first full pass counts as one. */
  rounds: number
  /** Whether the guest was slowed down (auto-converge) for the migration to converge. */
  throttled: boolean
  /** The destination runs the VM from the end of the transfer, before the commit (QEMU starts it once it has it all). */
  runsAtDestination?: boolean
}

/** What a VM costs its host, as the OS measures it. */
export interface VmStats {
  /** CPU time of the guest's vCPUs since the VM started, ms. */
  vcpuTimeMs: number
  /** CPU time of the whole VM process (vCPUs, device emulation, migration), ms. */
  cpuTimeMs: number
  /** Resident memory of the VM process, MiB. */
  rssMiB: number
}

/** What `prepareIncoming` opened: the source's `transferOut` sends the VM there. */
export interface IncomingOffer {
  uri: string
}

/**
 * What the agent asks of a hypervisor. The contract:
 * - `create` returns once the VM exists (state `creating`); it reports
 *   `running` through `onStateChange` when it has booted. With `incoming`, it
 *   takes over the VM a migration brought in (after `prepareIncoming`) and
 *   resolves once it runs here, or rejects if it does not;
 * - `adopt` re-attaches, after an agent restart, to a VM that kept running
 *   (`adopted`), or says it is `gone` (the agent applies its restart policy:
 *   `create` again). A driver whose VMs die with the agent (sim) always says `gone`;
 * - `delete` of an unknown id is a no-op, so a retried delete is safe; it
 *   also cancels a `prepareIncoming` whose migration will not come;
 * - a VM whose process dies on its own is reported `stopped` with the reason;
 *   `create` of a stopped VM starts it again;
 * - `demand` is the VM's current CPU demand, a fraction of its vCPUs
 *   (measured by the qemu driver, modelled by the sim driver);
 * - live migration: the destination's `prepareIncoming` opens a place for the
 *   VM and gives its URI; the source's `transferOut` sends the VM there and
 *   resolves once the destination has it all (the VM is then paused here), or
 *   rejects with the reason (`TransferRefusedError`: cannot converge;
 *   `TransferAbortedError`: aborted or failed) with the VM running here. After
 *   a success the agent commits, then `delete`s its copy, or `resume`s it if
 *   the commit failed;
 * - `stop` lets go of the VMs without stopping them (qemu: they outlive the agent).
 */
export interface Driver {
  readonly name: string
  create (spec: VmSpec, opts?: { incoming?: boolean }): Promise<void>
  adopt (spec: VmSpec): Promise<'adopted' | 'gone'>
  delete (id: string): Promise<void>
  state (id: string): VmState | undefined
  list (): Array<{ id: string, state: VmState }>
  demand (id: string): number
  /** Forces a VM's demand (sim driver: tests and demos; the qemu driver measures it and ignores this). */
  setDemand (id: string, demand: number): void
  stats (id: string): Promise<VmStats | undefined>
  prepareIncoming (spec: VmSpec): Promise<IncomingOffer>
  transferOut (id: string, opts: TransferOptions): Promise<TransferResult>
  /** Runs again a VM that a completed `transferOut` left paused here (its commit failed). */
  resume (id: string): Promise<void>
  /**
   * Stops and removes the VMs this driver finds from an earlier run that are
   * not in `keep` (e.g. a migration's destination whose agent died before the
   * commit); returns their ids. Call once after adopting the known VMs.
   */
  sweep (keep: Iterable<string>): Promise<string[]>
  onStateChange (listener: (change: VmStateChange) => void): void
  stop (): Promise<void>
}

export class VmExistsError extends DiscoveryError {
  static name = 'VmExistsError'
  static defaultMessage = 'a VM with this id already exists on this driver'
}

export class TransferRefusedError extends DiscoveryError {
  static name = 'TransferRefusedError'
  static defaultMessage = 'the live migration cannot converge'
}

export class TransferAbortedError extends DiscoveryError {
  static name = 'TransferAbortedError'
  static defaultMessage = 'the transfer was aborted'
}

/** `create` with `incoming`, but no migration of the VM has arrived here (or it failed). */
export class IncomingMissingError extends DiscoveryError {
  static name = 'IncomingMissingError'
  static defaultMessage = 'no incoming migration of this VM is waiting here'
}
