/** What /proc says about a process (Linux only): memory, CPU time, command line. */
import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { resolve, sep } from 'node:path'

/** Clock ticks per second, the unit of utime/stime in /proc/PID/stat. */
export const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
  } catch {
    return 100
  }
})()

/** A field of /proc/PID/status in MiB (VmRSS: resident now; VmHWM: peak resident), or NaN once the process is gone. */
export function statusMiB (pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m == null ? NaN : Number(m[1]) / 1024
  } catch {
    return NaN
  }
}

/** Fields of /proc/PID/smaps_rollup in MiB; NaN for a process gone. */
function rollupMiB (pid: number, fields: readonly string[]): number {
  try {
    const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8')
    let kB = 0
    for (const f of fields) {
      const m = new RegExp(`^${f}:\\s+(\\d+) kB`, 'm').exec(text)
      if (m == null) return NaN
      kB += Number(m[1])
    }
    return kB / 1024
  } catch {
    return NaN
  }
}

/**
 * Proportional set size in MiB (/proc/PID/smaps_rollup): resident memory with
 * each page shared by k processes counted 1/k. Agents of one host share the
 * Node binary and its libraries, which RSS counts whole in each of them.
 */
export function pssMiB (pid: number): number {
  return rollupMiB(pid, ['Pss'])
}

/**
 * Unique set size in MiB: the resident pages no other process maps, what
 * the host gets back when the process exits — the memory that is the
 * process's own. RSS adds the pages of the Node binary every agent shares
 * (58 MiB of them in an agent of a local cluster).
 */
export function ussMiB (pid: number): number {
  return rollupMiB(pid, ['Private_Clean', 'Private_Dirty'])
}

/** User + system CPU time of a process so far, in seconds. */
export function cpuSeconds (pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Fields after the command name, which is in parentheses and may hold spaces: utime and stime are fields 14 and 15.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(rest[11]) + Number(rest[12])) / CLK_TCK
  } catch {
    return NaN
  }
}

/** CPU use of each process over `ms` of wall time, in % of one core. */
export async function cpuPercent (pids: readonly number[], ms: number): Promise<number[]> {
  const t0 = performance.now()
  const before = pids.map(cpuSeconds)
  await new Promise(r => setTimeout(r, ms))
  const after = pids.map(cpuSeconds)
  const wallS = (performance.now() - t0) / 1000
  return pids.map((_, i) => 100 * (after[i] - before[i]) / wallS)
}

/** Pids of `discovery.js agent` processes whose --data-dir lies under `dir`: ours, never anyone else's. */
export function agentsUnder (dir: string): number[] {
  const root = resolve(dir) + sep
  const out: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue
    let argv: string[]
    try {
      argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0')
    } catch {
      continue
    }
    if (!argv.some(a => a.endsWith('discovery.js')) || !argv.includes('agent')) continue
    const i = argv.indexOf('--data-dir')
    if (i >= 0 && argv[i + 1] != null && resolve(argv[i + 1]).startsWith(root)) out.push(Number(name))
  }
  return out
}

export function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
