/**
 * One QEMU process per VM: where its files live, its command line, starting
 * it detached (it must outlive the agent), and what /proc says about it.
 *
 * QEMU starts with `-daemonize`: the process we spawn exits once the VM is
 * set up (its QMP socket listening), with 0 or with the error on stderr, and
 * the VM's process is a daemon in a session of its own. That makes start-up
 * failures plain and makes an adopted QEMU (from an earlier agent) and a
 * fresh one look the same: neither is our child, both are watched through
 * their QMP socket and /proc.
 */
import { DiscoveryError } from '../core/errors.ts'
import { spawn } from 'node:child_process'
import { mkdir, readdir, readFile, stat } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { type Accel, CPU_MODEL } from './accel.ts'

/** QEMU would not start (bad arguments, missing binary, no memory...): its own words. */
export class QemuStartError extends DiscoveryError {
  static name = 'QemuStartError'
  static defaultMessage = 'QEMU did not start'
}

/** The VM's disk could not be made (no such base image, qemu-img failed). */
export class QemuDiskError extends DiscoveryError {
  static name = 'QemuDiskError'
  static defaultMessage = 'the VM\'s disk could not be made'
}

/** A VM id that cannot name a directory safely (it becomes a path under the data dir). */
export class InvalidVmIdError extends DiscoveryError {
  static name = 'InvalidVmIdError'
  static defaultMessage = 'not a VM id'
}

/** What a VM id may look like here: a single path component (the agent's ids are `vm-` and 6–40 of [a-z0-9]). */
export const SAFE_VM_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/

export interface VmPaths {
  dir: string
  /** The driver's QMP connection (QEMU serves one client per socket at a time). */
  qmp: string
  /** A second QMP socket, for operators and tests while the driver holds `qmp` (`socat - UNIX:monitor.sock`). */
  monitor: string
  /** The guest's serial console, for a VM booted from a kernel image. */
  console: string
  pid: string
  log: string
  disk: string
}

/** A unix socket's path must fit in sockaddr_un (108 bytes with its NUL). */
export const MAX_SOCKET_PATH = 107

/** Each VM's files, under `<dataDir>/qemu/<id>/`. `dataDir` must be absolute: QEMU's daemon runs in `/`. */
export function vmPaths (dataDir: string, id: string): VmPaths {
  if (!SAFE_VM_ID.test(id)) throw new InvalidVmIdError(`Expected a VM id (letters, digits, _ -, at most 64), got \`${id.slice(0, 80)}\``)
  const dir = join(dataDir, 'qemu', id)
  return { dir, qmp: join(dir, 'qmp.sock'), monitor: join(dir, 'monitor.sock'), console: join(dir, 'console.log'), pid: join(dir, 'qemu.pid'), log: join(dir, 'qemu.log'), disk: join(dir, 'disk.qcow2') }
}

export interface QemuArgs {
  id: string
  cpu: number
  memMiB: number
  accel: Accel
  paths: VmPaths
  /** The qcow2 overlay, when the VM has a disk. */
  disk?: string
  /** A kernel image to boot directly (no disk, no bootloader), with its initramfs and command line. */
  kernel?: KernelImage
  /** Destination of a live migration: wait for `migrate-incoming`. */
  incoming?: boolean
}

/** A kernel image: a directory of the images dir holding `vmlinuz`, `initrd` and optionally `cmdline` (one line). */
export interface KernelImage {
  kernel: string
  initrd: string
  append: string
}

export function qemuArgv (a: QemuArgs): string[] {
  const argv = [
    // `process=` names the process (ps, top) after the VM; `debug-threads` names the vCPU threads.
    '-name', `${a.id},process=discovery-${a.id},debug-threads=on`,
    '-machine', 'pc', '-accel', a.accel, '-cpu', CPU_MODEL,
    '-smp', String(a.cpu), '-m', String(a.memMiB),
    '-display', 'none', '-nodefaults', '-no-user-config',
    '-qmp', `unix:${a.paths.qmp},server=on,wait=off`,
    '-qmp', `unix:${a.paths.monitor},server=on,wait=off`,
    '-daemonize', '-pidfile', a.paths.pid,
    // With a log file, the daemon's stderr goes there instead of /dev/null.
    '-D', a.paths.log
  ]
  if (a.disk != null) argv.push('-drive', `file=${a.disk},format=qcow2,if=virtio,id=disk0`)
  if (a.kernel != null) {
    // The destination of a migration gets the same: the kernel is in the guest's RAM by then, but the machine must match.
    argv.push('-kernel', a.kernel.kernel, '-initrd', a.kernel.initrd, '-append', a.kernel.append, '-serial', `file:${a.paths.console}`)
  }
  if (a.incoming === true) argv.push('-incoming', 'defer')
  return argv
}

/** Starts QEMU detached; resolves with the daemon's pid once the VM is set up. */
export async function startQemu (binary: string, argv: string[], paths: VmPaths, timeoutMs = 30_000): Promise<number> {
  if (paths.monitor.length > MAX_SOCKET_PATH) throw new QemuStartError(`the QMP socket path ${paths.monitor} is ${paths.monitor.length} bytes, over the ${MAX_SOCKET_PATH} a unix socket allows: use a shorter data dir`)
  await mkdir(paths.dir, { recursive: true })
  const child = spawn(binary, argv, { detached: true, stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', (d: string) => { if (stderr.length < 8192) stderr += d })
  const code = await new Promise<number | string>((resolve) => {
    const timer = setTimeout(() => {
      try { process.kill(-(child.pid ?? 0), 'SIGKILL') } catch {}
      resolve(`no answer within ${timeoutMs} ms`)
    }, timeoutMs)
    child.once('error', (err) => { clearTimeout(timer); resolve(err.message) })
    child.once('exit', (c, sig) => { clearTimeout(timer); resolve(c ?? `killed by ${String(sig)}`) })
  })
  child.stderr.destroy()
  if (code !== 0) throw new QemuStartError(`${binary} did not start (${typeof code === 'number' ? `exit code ${code}` : code}): ${stderr.trim().split('\n').filter(l => l !== '').slice(-3).join(' / ') || 'no message'}`)
  const pid = await readPid(paths.pid)
  if (pid == null) throw new QemuStartError(`${binary} started but wrote no pid to ${paths.pid}`)
  return pid
}

/** `qemu-system-x86_64 --version`'s first line; a clear error when QEMU is not installed. */
export async function qemuVersion (binary: string): Promise<string> {
  return await new Promise((resolve, reject) => {
    const child = spawn(binary, ['--version'], { stdio: ['ignore', 'pipe', 'ignore'] })
    let out = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d })
    child.once('error', (err: NodeJS.ErrnoException) => {
      reject(new QemuStartError(err.code === 'ENOENT' ? `${binary} is not installed (Debian, Ubuntu: apt-get install qemu-system-x86 qemu-utils)` : `${binary} --version: ${err.message}`))
    })
    child.once('close', code => {
      if (code === 0) resolve(out.split('\n')[0].trim())
      else reject(new QemuStartError(`${binary} --version exited with ${String(code)}`))
    })
  })
}

export async function readPid (file: string): Promise<number | undefined> {
  const text = await readFile(file, 'utf8').catch(() => '')
  const pid = Number.parseInt(text.trim(), 10)
  return Number.isInteger(pid) && pid > 1 ? pid : undefined
}

/** Is `pid` alive and the QEMU of this QMP socket (a pid from an old pid file may now be another process)? */
export async function isOurQemu (pid: number, qmpPath: string): Promise<boolean> {
  if (!(await isAlive(pid))) return false
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')
  return cmdline.split('\0').includes(`unix:${qmpPath},server=on,wait=off`)
}

/** Alive, and not a zombie waiting for its parent to reap it. */
export async function isAlive (pid: number): Promise<boolean> {
  const s = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined)
  if (s == null) return false
  const state = s.slice(s.lastIndexOf(')') + 2, s.lastIndexOf(')') + 3)
  return state !== 'Z' && state !== 'X'
}

/** Waits until `pid` has exited; false if it still runs after `timeoutMs`. */
export async function waitExit (pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = AbortSignal.timeout(timeoutMs)
  while (await isAlive(pid)) {
    if (deadline.aborted) return false
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  return true
}

/**
 * The QEMUs of the VMs of a data dir that still run, by their pid files:
 * what outlives a stopped agent (`cluster down --purge` ends them).
 */
export async function vmQemus (dataDir: string): Promise<Array<{ id: string, pid: number, paths: VmPaths }>> {
  const ids = await readdir(join(dataDir, 'qemu')).catch(() => [] as string[])
  const out: Array<{ id: string, pid: number, paths: VmPaths }> = []
  for (const id of ids) {
    if (!SAFE_VM_ID.test(id)) continue
    const paths = vmPaths(dataDir, id)
    const pid = await readPid(paths.pid)
    if (pid != null && await isOurQemu(pid, paths.qmp)) out.push({ id, pid, paths })
  }
  return out
}

/** SIGKILL, only if `pid` is still the QEMU of `qmpPath`. */
export async function killQemu (pid: number, qmpPath: string): Promise<void> {
  if (!(await isOurQemu(pid, qmpPath))) return
  try {
    process.kill(pid, 'SIGKILL')
  } catch {}
}

/** Linux's USER_HZ: the unit of /proc's CPU times, 100 on every Linux build that matters. */
const TICKS_PER_S = 100

/** CPU time (user + system) of some threads of `pid` (or of the whole process), in ms; undefined once it is gone. */
export async function cpuTimeMs (pid: number, tids: number[] = []): Promise<number | undefined> {
  const files = tids.length > 0 ? tids.map(t => `/proc/${pid}/task/${t}/stat`) : [`/proc/${pid}/stat`]
  let ticks = 0
  let found = false
  for (const f of files) {
    const s = await readFile(f, 'utf8').catch(() => undefined)
    if (s == null) continue
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    const fields = s.slice(s.lastIndexOf(')') + 2).split(' ')
    ticks += Number(fields[11]) + Number(fields[12])
    found = true
  }
  return found ? ticks * 1000 / TICKS_PER_S : undefined
}

/** Resident memory of `pid`, MiB. */
export async function rssMiB (pid: number): Promise<number | undefined> {
  const s = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => undefined)
  const m = s?.match(/^VmRSS:\s+(\d+) kB/m)
  return m != null ? Math.round(Number(m[1]) / 1024 * 10) / 10 : undefined
}

/**
 * Makes the VM's disk: a qcow2 overlay on `base` (which is never written),
 * unless one is already there (a VM restarted keeps its disk).
 */
export async function ensureOverlay (qemuImg: string, base: string, overlay: string): Promise<void> {
  if (await stat(overlay).then(() => true, () => false)) return
  if (!(await stat(base).then(s => s.isFile(), () => false))) throw new QemuDiskError(`no base image ${base}`)
  await mkdir(dirname(overlay), { recursive: true })
  const info = await run(qemuImg, ['info', '--output=json', base])
  let format: string
  try {
    format = JSON.parse(info).format
  } catch {
    throw new QemuDiskError(`qemu-img info ${base} said: ${info.slice(0, 200)}`)
  }
  await run(qemuImg, ['create', '-q', '-f', 'qcow2', '-F', format, '-b', base, overlay])
}

async function run (binary: string, args: string[]): Promise<string> {
  return await new Promise((resolve, reject) => {
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d })
    child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d })
    child.once('error', e => { reject(new QemuDiskError(`${binary}: ${e.message}`)) })
    child.once('close', code => {
      if (code === 0) resolve(out)
      else reject(new QemuDiskError(`${binary} ${args.join(' ')} failed: ${err.trim() || `exit code ${String(code)}`}`))
    })
  })
}
