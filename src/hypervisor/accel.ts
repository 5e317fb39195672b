/**
 * Which accelerator QEMU can use here: KVM when it works, TCG otherwise.
 *
 * `/dev/kvm` existing proves nothing: on nested or odd hosts it opens, then
 * the guest hangs or QEMU aborts on an MSR (measured on our build machines).
 * So we try: a throw-away QEMU with `-accel kvm` and the CPU model the VMs
 * will get, with `enforce` so that a host missing one of its features fails
 * at once, must run SeaBIOS far enough to print on the debug console.
 */
import { spawn } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export type Accel = 'kvm' | 'tcg'
export type AccelPreference = Accel | 'auto'

/** The CPU model of every VM: one that KVM and TCG both give, so migrations between hosts of either kind work. */
export const CPU_MODEL = 'qemu64'

export interface AccelProbe {
  accel: Accel
  /** Why KVM was not chosen (for the agent's start-up log). */
  reason?: string
}

const probes = new Map<string, Promise<AccelProbe>>()

/** Resolves the preference: `auto` tries KVM once per QEMU binary (then remembers), the others are taken as said. */
export async function resolveAccel (preference: AccelPreference, qemuBinary: string): Promise<AccelProbe> {
  if (preference !== 'auto') return { accel: preference }
  let p = probes.get(qemuBinary)
  if (p == null) {
    p = probeKvm(qemuBinary)
    probes.set(qemuBinary, p)
  }
  return await p
}

/** Tries KVM: a VM with no disk must reach SeaBIOS's first lines within `timeoutMs`. */
export async function probeKvm (qemuBinary: string, timeoutMs = 5_000): Promise<AccelProbe> {
  const dir = await mkdtemp(join(tmpdir(), 'discovery-kvm-probe-'))
  const debug = join(dir, 'debugcon.log')
  const child = spawn(qemuBinary, [
    '-machine', 'pc', '-accel', 'kvm', '-cpu', `${CPU_MODEL},enforce`, '-m', '16',
    '-display', 'none', '-nodefaults', '-no-user-config',
    '-debugcon', `file:${debug}`, '-global', 'isa-debugcon.iobase=0x402'
  ], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', (d: string) => { if (stderr.length < 4096) stderr += d })
  const exited = new Promise<number | null>(resolve => {
    child.once('exit', code => { resolve(code) })
    child.once('error', () => { resolve(null) })
  })
  try {
    const deadline = AbortSignal.timeout(timeoutMs)
    while (!deadline.aborted) {
      const log = await readFile(debug, 'utf8').catch(() => '')
      if (log.includes('SeaBIOS')) return { accel: 'kvm' }
      const code = await Promise.race([exited, new Promise<'running'>(resolve => setTimeout(() => { resolve('running') }, 50))])
      if (code !== 'running') return { accel: 'tcg', reason: `KVM does not work here: ${firstLine(stderr) ?? `QEMU exited with ${String(code)}`}` }
    }
    return { accel: 'tcg', reason: `KVM does not work here: the firmware printed nothing within ${timeoutMs} ms` }
  } finally {
    if (child.exitCode == null && child.signalCode == null) child.kill('SIGKILL')
    await exited
    await rm(dir, { recursive: true, force: true })
  }
}

function firstLine (s: string): string | undefined {
  const lines = s.split('\n').map(l => l.trim()).filter(l => l !== '' && !l.includes('warning:'))
  return lines[0] ?? s.split('\n')[0]?.trim()
}
