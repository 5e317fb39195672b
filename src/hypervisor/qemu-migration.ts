/**
 * The source's side of a QEMU live migration, over its QMP connection: set
 * the limits, `migrate` to the URI the destination opened, follow
 * `query-migrate` to the end.
 *
 * Throttling: `auto-converge` is a capability, and QEMU refuses to change
 * capabilities while a migration runs, so it is on from the start with its
 * trigger at 100 %: QEMU slows the guest only once it dirties more in a
 * round than the round sent, i.e. when the dirty rate outruns the bandwidth.
 * A VM that converges on its own is never slowed. When we see the dirty rate
 * stay above what is sent, we lower the trigger to QEMU's default (50 %) and
 * step harder.
 *
 * Every way out but `completed` leaves the VM running here: a cancel, a
 * failure (the destination gone) and a deadline all end with `cont` if the
 * guest was left paused.
 */
import type { Clock } from '../core/clock.ts'
import { TransferAbortedError, TransferRefusedError, type TransferResult } from './driver.ts'
import { QmpClosedError, type QmpClient } from './qmp.ts'

export interface MigrateOutOptions {
  /** `tcp:HOST:PORT`, as the destination's `migrate-incoming` opened it. */
  uri: string
  bandwidthMiBps: number
  maxDowntimeMs: number
  /** Cancel (with the reason) when not completed by then. */
  deadlineMs: number
  signal: AbortSignal
  /** The VM has a disk of its own: copy it too (block migration of the overlay only). */
  hasDisk: boolean
  clock: Clock
  /** How often `query-migrate` is asked. Default 50 ms. */
  pollMs?: number
}

interface RamInfo {
  transferred?: number
  remaining?: number
  'dirty-pages-rate'?: number
  'page-size'?: number
  'dirty-sync-count'?: number
  mbps?: number
}

interface MigrationInfo {
  status?: string
  ram?: RamInfo
  disk?: { transferred?: number }
  'total-time'?: number
  downtime?: number
  'cpu-throttle-percentage'?: number
  'error-desc'?: string
}

const MiB = 1024 * 1024
/** Statuses after which QEMU does no more: the migration is over, one way or another. */
const FINAL = new Set(['completed', 'failed', 'cancelled'])

export async function migrateOut (qmp: QmpClient, o: MigrateOutOptions): Promise<TransferResult> {
  const startedAt = o.clock.now()
  const pollMs = o.pollMs ?? 50
  const before = await qmp.execute<MigrationInfo>('query-migrate')
  if (before.status != null && !FINAL.has(before.status) && before.status !== 'none') throw new TransferRefusedError(`a migration of this VM is already ${before.status}`)
  const wasRunning = (await qmp.execute<{ status: string }>('query-status')).status === 'running'
  // `block` (and `block-incremental`) only for a VM with a disk: QEMU 9.1 removed them, diskless VMs still migrate there.
  await qmp.execute('migrate-set-capabilities', {
    capabilities: [{ capability: 'auto-converge', state: true }, ...(o.hasDisk ? [{ capability: 'block', state: true }] : [])]
  })
  const bytesPerS = Math.max(1, Math.round(o.bandwidthMiBps * MiB))
  await qmp.execute('migrate-set-parameters', {
    'downtime-limit': Math.max(1, Math.round(o.maxDowntimeMs)),
    'max-bandwidth': bytesPerS,
    'throttle-trigger-threshold': 100,
    'cpu-throttle-initial': 20,
    'cpu-throttle-increment': 10,
    ...(o.hasDisk ? { 'block-incremental': true } : {})
  })

  let throttled = false
  let outrun = 0
  let escalated = false
  let last: MigrationInfo = {}
  try {
    await qmp.execute('migrate', { uri: o.uri })
    for (;;) {
      const info = await qmp.execute<MigrationInfo>('query-migrate')
      last = info
      if ((info['cpu-throttle-percentage'] ?? 0) > 0) throttled = true
      if (info.status === 'completed') {
        return {
          totalMs: info['total-time'] ?? o.clock.now() - startedAt,
          downtimeMs: info.downtime ?? 0,
          bytesMiB: round(((info.ram?.transferred ?? 0) + (info.disk?.transferred ?? 0)) / MiB),
          rounds: info.ram?.['dirty-sync-count'] ?? 1,
          throttled,
          // The destination's QEMU was not started with -S: it runs the guest as soon as it has it all.
          runsAtDestination: true
        }
      }
      if (info.status === 'failed' || info.status === 'cancelled') {
        throw new TransferAbortedError(`the migration ${info.status}${info['error-desc'] != null ? `: ${info['error-desc']}` : ''} (the destination is gone or refused the stream)`)
      }
      if (o.signal.aborted) {
        throw new TransferAbortedError(o.signal.reason instanceof Error ? o.signal.reason.message : String(o.signal.reason ?? 'aborted'))
      }
      if (o.clock.now() - startedAt > o.deadlineMs) throw new TransferRefusedError(notConverging(info, o.deadlineMs, bytesPerS, throttled))
      // After the first full pass, a guest that dirties faster than we send will never converge on its own.
      const ram = info.ram ?? {}
      const dirtyBps = (ram['dirty-pages-rate'] ?? 0) * (ram['page-size'] ?? 4096)
      const sentBps = Math.min(bytesPerS, (ram.mbps ?? 0) * 1e6 / 8 || bytesPerS)
      outrun = (ram['dirty-sync-count'] ?? 0) >= 2 && dirtyBps > sentBps ? outrun + 1 : 0
      if (outrun >= 2 && !escalated) {
        escalated = true
        await qmp.execute('migrate-set-parameters', { 'throttle-trigger-threshold': 50, 'cpu-throttle-increment': 20 })
      }
      await sleep(pollMs, o.signal)
    }
  } catch (err: any) {
    await restoreSource(qmp, wasRunning).catch(() => {})
    if (err?.name === TransferAbortedError.name || err?.name === TransferRefusedError.name) throw err
    if (err?.name === QmpClosedError.name) throw new TransferAbortedError('the VM\'s QEMU exited during its migration')
    throw new TransferAbortedError(`the migration failed: ${String(err?.message ?? err)}${last.status != null ? ` (last status ${last.status})` : ''}`)
  }
}

/** Cancels what may still run, waits for the end, and resumes the guest if the migration left it paused. */
async function restoreSource (qmp: QmpClient, wasRunning: boolean): Promise<void> {
  if (qmp.isClosed) return
  let info = await qmp.execute<MigrationInfo>('query-migrate')
  if (info.status != null && !FINAL.has(info.status) && info.status !== 'none') {
    await qmp.execute('migrate_cancel').catch(() => {})
    const deadline = AbortSignal.timeout(10_000)
    while (info.status != null && !FINAL.has(info.status) && !deadline.aborted) {
      await sleep(20)
      info = await qmp.execute<MigrationInfo>('query-migrate')
    }
  }
  if (!wasRunning) return
  // A migration that completed in spite of the cancel also leaves the guest paused here: it runs here all the same.
  const { status } = await qmp.execute<{ status: string }>('query-status')
  if (status !== 'running') await qmp.execute('cont')
}

function notConverging (info: MigrationInfo, deadlineMs: number, bytesPerS: number, throttled: boolean): string {
  const ram = info.ram ?? {}
  const dirty = (ram['dirty-pages-rate'] ?? 0) * (ram['page-size'] ?? 4096) / MiB
  const sent = Math.min(bytesPerS, (ram.mbps ?? 0) * 1e6 / 8 || bytesPerS) / MiB
  const throttle = info['cpu-throttle-percentage'] ?? 0
  return `the live migration did not converge within ${deadlineMs} ms: ${round((ram.remaining ?? 0) / MiB)} MiB still to send, ` +
    `the guest dirties ${round(dirty)} MiB/s against ${round(sent)} MiB/s sent, after ${ram['dirty-sync-count'] ?? 0} dirty-sync rounds` +
    (throttled ? `, the guest throttled to ${100 - throttle} % of its CPU` : ', the guest never throttled')
}

function round (n: number): number {
  return Math.round(n * 100) / 100
}

async function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  await new Promise<void>(resolve => {
    const t = setTimeout(done, ms)
    function done (): void {
      clearTimeout(t)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    signal?.addEventListener('abort', done, { once: true })
  })
}

/**
 * The destination's URI comes from a peer: only `tcp:HOST:PORT` passes
 * (QEMU would run an `exec:` URI as a shell command, and open `unix:` or
 * `file:` paths here).
 */
export function parseIncomingUri (uri: string): string {
  const m = /^tcp:(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]{1,253}):(\d{1,5})$/.exec(uri)
  const port = Number(m?.[2])
  if (m == null || port < 1 || port > 65535) throw new TransferRefusedError(`Expected the destination's URI to be tcp:HOST:PORT, got \`${uri.slice(0, 100)}\``)
  return uri
}
