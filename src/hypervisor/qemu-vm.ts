/**
 * One VM of the qemu driver as the driver holds it (its QEMU, its QMP
 * connection, its measured demand), and what is done to one VM's QEMU
 * alone: wait for a steady status, end it, clear its runtime files.
 */
import { rm, stat } from 'node:fs/promises'
import type { VmSpec, VmState } from '../core/messages.ts'
import { killQemu, type VmPaths, waitExit } from './qemu-process.ts'
import type { QmpClient } from './qmp.ts'

export interface QemuVm {
  spec: VmSpec
  paths: VmPaths
  pid: number
  qmp: QmpClient
  state: VmState
  /** Destination of a migration not yet taken over by `create(spec, { incoming })`: not the agent's yet. */
  incoming: boolean
  /** What `prepareIncoming` answered: a repeated call gets the same. */
  incomingUri?: string
  hasDisk: boolean
  /** The vCPU threads, whose CPU time is the guest's. */
  tids: number[]
  sample?: { atMs: number, vcpuMs: number }
  demand: number
  /** From QEMU's SHUTDOWN event, for the report when it exits. */
  shutdownReason?: string
  /** The driver itself ends this QEMU or lets go of it (delete, stop): its exit is no news. */
  letGo: boolean
  migrating: boolean
  deleting?: Promise<void>
}

/**
 * Waits for the VM's status to leave the transient ones and returns it.
 * A completed incoming migration says `inmigrate` for a few ms before
 * `running`; an orphaned outgoing migration (its agent died) is cancelled
 * and its paused guest resumed.
 */
export async function settle (vm: QemuVm, timeoutMs = 10_000): Promise<string> {
  const deadline = AbortSignal.timeout(timeoutMs)
  for (;;) {
    const { status } = await vm.qmp.execute<{ status: string }>('query-status')
    if (status === 'paused' || status === 'postmigrate') {
      const m = await vm.qmp.execute<{ status?: string }>('query-migrate')
      if (m.status === 'active' || m.status === 'setup' || m.status === 'device') await vm.qmp.execute('migrate_cancel')
      // A cancel under way ends with the guest paused or running again: wait for it.
      else if (m.status !== 'cancelling') await vm.qmp.execute('cont')
    } else if (status !== 'inmigrate' && status !== 'prelaunch' && status !== 'finish-migrate') {
      return status
    }
    if (deadline.aborted) return status
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

/** Ends a VM's QEMU: `quit`, then SIGKILL after a bound. */
export async function endQemu (vm: QemuVm): Promise<void> {
  if (!vm.qmp.isClosed) await vm.qmp.execute('quit', undefined, { timeoutMs: 3_000 }).catch(() => {})
  if (!(await waitExit(vm.pid, 5_000))) {
    await killQemu(vm.pid, vm.paths.qmp)
    await waitExit(vm.pid, 5_000)
  }
  vm.qmp.close()
  await removeRuntimeFiles(vm.paths)
}

/** The QMP socket and pid file of a QEMU that is gone (the disk and the log stay). */
export async function removeRuntimeFiles (paths: VmPaths): Promise<void> {
  await rm(paths.qmp, { force: true })
  await rm(paths.monitor, { force: true })
  await rm(paths.pid, { force: true })
}

export async function exists (path: string): Promise<boolean> {
  return await stat(path).then(() => true, () => false)
}
