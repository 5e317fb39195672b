/**
 * The baseline of the QEMU migration benchmark: the same live migration
 * without Discovery — two QEMU processes started here, driven directly over
 * QMP with the parameters the qemu driver uses (the same machine, CPU model
 * and guest; auto-converge on with its trigger at 100 %, the downtime limit,
 * the bandwidth cap), from the destination's start to the guest running
 * there. What the agents add on top is the rest: the migrate protocol's
 * round trips, the destination's admission and reservation, the commit.
 */
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { QmpClient } from '../../src/hypervisor/qmp.ts'

export interface BareRun {
  /** QEMU's own `total-time` and `downtime`, ms. */
  totalMs: number
  downtimeMs: number
  /** From starting the destination's QEMU to the guest running there, ms. */
  endToEndMs: number
  bytesMiB: number
  rounds: number
  throttled: boolean
  /** What the transfer achieved (QEMU's `mbps` at its last sample), MiB/s. */
  throughputMiBps: number
  /** The guest's dirty rate QEMU measured during the migration (largest sample), MiB/s. */
  dirtyMiBps: number
}

export interface BareOptions {
  dir: string
  memMiB: number
  /** A kernel image: the directory with vmlinuz, initrd, cmdline (bench/lib/guest.ts). */
  image: string
  bandwidthMiBps: number
  maxDowntimeMs: number
  /** The guest's console says this once it runs its workload. */
  readyMark: string
  timeoutMs?: number
}

const MiB = 1024 * 1024

function argv (o: BareOptions, name: string, incoming: boolean): string[] {
  const cmdline = readFileSync(join(o.image, 'cmdline'), 'utf8').trim()
  return [
    '-name', `bare-${name}`, '-machine', 'pc', '-accel', 'tcg', '-cpu', 'qemu64', '-smp', '1', '-m', String(o.memMiB),
    '-display', 'none', '-nodefaults', '-no-user-config',
    '-kernel', join(o.image, 'vmlinuz'), '-initrd', join(o.image, 'initrd'), '-append', cmdline,
    '-serial', `file:${join(o.dir, `${name}.console`)}`,
    '-qmp', `unix:${join(o.dir, `${name}.sock`)},server=on,wait=off`,
    ...(incoming ? ['-incoming', 'defer'] : [])
  ]
}

async function until<T> (what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs: number, everyMs = 20): Promise<T> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const v = await fn()
    if (v !== undefined) return v
    if (Date.now() > end) throw new Error(`bare QEMU: ${what} did not happen within ${timeoutMs} ms`)
    await new Promise(resolve => setTimeout(resolve, everyMs))
  }
}

async function qemu (o: BareOptions, name: string, incoming: boolean): Promise<{ qmp: QmpClient, kill: () => void }> {
  const child = spawn('qemu-system-x86_64', argv(o, name, incoming), { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const kill = (): void => { if (child.exitCode == null && child.signalCode == null) child.kill('SIGKILL') }
  try {
    const sock = join(o.dir, `${name}.sock`)
    await until(`${name}'s QMP socket`, () => {
      if (child.exitCode != null) throw new Error(`QEMU exited: ${stderr.trim()}`)
      return existsSync(sock) ? true : undefined
    }, 30_000)
    return { qmp: await QmpClient.connect(sock, { timeoutMs: 10_000 }), kill }
  } catch (err) {
    kill()
    throw err
  }
}

/** Boots the guest, waits for its workload, migrates it once to a fresh QEMU on this host, and ends both. */
export async function bareMigration (o: BareOptions): Promise<BareRun> {
  mkdirSync(o.dir, { recursive: true })
  const timeoutMs = o.timeoutMs ?? 300_000
  const src = await qemu(o, 'src', false)
  let dst: Awaited<ReturnType<typeof qemu>> | undefined
  try {
    await until('the guest\'s workload', () => readFileSync(join(o.dir, 'src.console'), 'utf8').includes(o.readyMark) ? true : undefined, timeoutMs, 100)
    const t0 = performance.now()
    dst = await qemu(o, 'dst', true)
    await dst.qmp.execute('migrate-incoming', { uri: 'tcp:127.0.0.1:0' })
    const port = (await dst.qmp.execute<{ 'socket-address'?: Array<{ port?: string }> }>('query-migrate'))['socket-address']?.[0]?.port
    await src.qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'auto-converge', state: true }] })
    await src.qmp.execute('migrate-set-parameters', {
      'downtime-limit': o.maxDowntimeMs,
      'max-bandwidth': Math.round(o.bandwidthMiBps * MiB),
      'throttle-trigger-threshold': 100,
      'cpu-throttle-initial': 20,
      'cpu-throttle-increment': 10
    })
    await src.qmp.execute('migrate', { uri: `tcp:127.0.0.1:${String(port)}` })
    let throttled = false
    let dirtyMiBps = 0
    let throughputMiBps = 0
    const info = await until('the migration to complete', async () => {
      const i = await src.qmp.execute<any>('query-migrate')
      if ((i['cpu-throttle-percentage'] ?? 0) > 0) throttled = true
      const ram = i.ram ?? {}
      dirtyMiBps = Math.max(dirtyMiBps, (ram['dirty-pages-rate'] ?? 0) * (ram['page-size'] ?? 4096) / MiB)
      if ((ram.mbps ?? 0) > 0) throughputMiBps = ram.mbps * 1e6 / 8 / MiB
      if (i.status === 'failed' || i.status === 'cancelled') throw new Error(`the bare migration ${String(i.status)}: ${String(i['error-desc'] ?? '')}`)
      return i.status === 'completed' ? i : undefined
    }, timeoutMs, 50)
    await until('the guest to run at the destination', async () => (await dst!.qmp.execute<{ status: string }>('query-status')).status === 'running' ? true : undefined, 30_000, 5)
    const endToEndMs = performance.now() - t0
    return {
      totalMs: info['total-time'],
      downtimeMs: info.downtime ?? 0,
      endToEndMs,
      bytesMiB: (info.ram?.transferred ?? 0) / MiB,
      rounds: info.ram?.['dirty-sync-count'] ?? 1,
      throttled,
      throughputMiBps,
      dirtyMiBps
    }
  } finally {
    for (const q of [src, dst]) {
      if (q == null) continue
      q.qmp.close()
      q.kill()
    }
  }
}
