/**
 * What the kernel shows of the processes of peers on this very host, for the
 * failure detector (core/failure-detector.ts `processState`). Each agent
 * gossips where it runs (`process` in its state: the host's boot id and pid
 * namespace, its pid and the process's start time); a peer whose host is
 * ours is a process we can look at in `/proc/<pid>/stat`. Stopped (`T`,
 * SIGSTOP; `t`, a debugger) or gone (no such pid, or a pid reused by another
 * process) means it cannot answer a probe, however patient the detector is;
 * anything else means nothing (a running process may still be hung), and the
 * detector goes on judging it by its probes. One read of a small file per
 * co-hosted peer observed, each `processCheckMs`; none when no observed peer
 * shares the host (one agent per machine), or where there is no `/proc`.
 */
import { closeSync, openSync, readFileSync, readlinkSync, readSync } from 'node:fs'
import type { ProcessIdentity } from '../core/messages.ts'

let mine: { id: ProcessIdentity | undefined } | undefined

/** This process's identity, read once per process (every agent it runs shares it). */
export function thisProcess (): ProcessIdentity | undefined {
  mine ??= { id: ownProcess() }
  return mine.id
}

/** This process's identity, or undefined where `/proc` cannot tell it (not Linux). */
export function ownProcess (read: (path: string) => string = p => readFileSync(p, 'utf8'), link: (path: string) => string = readlinkSync): ProcessIdentity | undefined {
  try {
    const boot = read('/proc/sys/kernel/random/boot_id').trim()
    const ns = /\[(\d+)\]/.exec(link('/proc/self/ns/pid'))?.[1]
    const stat = parseStat(read(statPath(process.pid)))
    if (boot === '' || ns == null || stat == null) return undefined
    return { host: `${boot}/${ns}`, pid: process.pid, start: stat.start }
  } catch {
    return undefined
  }
}

/** The state letter and start time (clock ticks after boot) of a `/proc/<pid>/stat` line; the command may hold spaces and parentheses. */
export function parseStat (line: string): { state: string, start: number } | undefined {
  const close = line.lastIndexOf(')')
  if (close < 0) return undefined
  // The state, then 18 fields, then the start time: walked with indexOf rather than split, since the check runs a few
  // times a second for each co-hosted peer observed and split made some fifty strings of each line.
  const from = close + 2
  const stateEnd = line.indexOf(' ', from)
  if (stateEnd <= from) return undefined
  let at = stateEnd + 1
  for (let field = 1; field < 19; field++) {
    const space = line.indexOf(' ', at)
    if (space < 0) return undefined
    at = space + 1
  }
  const space = line.indexOf(' ', at)
  if (space === at) return undefined
  const start = Number(line.slice(at, space < 0 ? undefined : space))
  if (!Number.isSafeInteger(start)) return undefined
  return { state: line.slice(from, stateEnd), start }
}

function statPath (pid: number): string {
  return `/proc/${pid}/stat`
}

/** States of a process that will not answer: stopped (SIGSTOP), stopped by a tracer, exited (a zombie, or dying). */
const NOT_RUNNING = new Set(['T', 't', 'Z', 'X', 'x'])

/**
 * Whether the process `id` names can run: false when it is stopped, exited or
 * no longer exists (no such pid, or the pid is another process's now). A
 * read that fails otherwise (out of file descriptors, no permission) says
 * nothing, and is taken as running: only the kernel's word shortens a wait.
 */
export function processRuns (id: ProcessIdentity, read: (path: string) => string = p => readFileSync(p, 'utf8')): boolean {
  let stat
  try {
    stat = parseStat(read(statPath(id.pid)))
  } catch (err) {
    const code = (err as { code?: unknown }).code
    return code !== 'ENOENT' && code !== 'ESRCH'
  }
  if (stat == null) return true
  return stat.start === id.start && !NOT_RUNNING.has(stat.state)
}

/**
 * The `/proc/<pid>/stat` files of the processes watched, each opened once and
 * read again in place (a read at offset 0 makes the kernel write the line
 * afresh): one system call a check instead of readFileSync's open, fstat,
 * two reads and close — at a hundred agents on one host those were most of
 * an idle agent's system calls (strace, 10 s: 170 opens and 340 reads of
 * `/proc` against 35 socket reads). An open file keeps naming the process it
 * was opened for: once that process has exited a read fails with ESRCH,
 * even if its pid was given to another since.
 */
export class StatFiles {
  readonly #fds = new Map<string, number>()
  readonly #buf = Buffer.alloc(4096)

  /** The file's content now; throws as readFileSync does (ENOENT: no such process; ESRCH: it exited since opened). */
  read (path: string): string {
    let fd = this.#fds.get(path)
    if (fd == null) {
      fd = openSync(path, 'r')
      this.#fds.set(path, fd)
    }
    try {
      return this.#buf.toString('latin1', 0, readSync(fd, this.#buf, 0, this.#buf.length, 0))
    } catch (err) {
      this.#close(path)
      throw err
    }
  }

  /** Closes the files not in `paths`. */
  keepOnly (paths: ReadonlySet<string>): void {
    for (const path of this.#fds.keys()) if (!paths.has(path)) this.#close(path)
  }

  /** Closes every file. */
  closeAll (): void {
    this.keepOnly(new Set())
  }

  /** How many files are open. */
  get open (): number {
    return this.#fds.size
  }

  #close (path: string): void {
    const fd = this.#fds.get(path)
    this.#fds.delete(path)
    if (fd != null) closeSync(fd)
  }
}

export interface ProcessWatchInit {
  /** Our own identity (undefined: nothing is watched). */
  self: ProcessIdentity | undefined
  /** Where a peer says it runs, from its gossiped state. */
  processOf: (peer: string) => ProcessIdentity | undefined
  /** The kernel's word on a peer changed, or a peer left the watch (then `running`). */
  onChange: (peer: string, running: boolean) => void
  /** How a stat file is read (tests); default: kept open (`StatFiles`). */
  read?: (path: string) => string
}

export class ProcessWatch {
  readonly #init: ProcessWatchInit
  /** Peers last reported not running. */
  readonly #down = new Set<string>()
  readonly #files?: StatFiles
  readonly #read: (path: string) => string

  constructor (init: ProcessWatchInit) {
    this.#init = init
    if (init.read != null) {
      this.#read = init.read
    } else {
      const files = this.#files = new StatFiles()
      this.#read = path => files.read(path)
    }
  }

  /** Closes the files it keeps open. */
  stop (): void {
    this.#files?.closeAll()
  }

  /** Looks at the co-hosted ones of `peers`; reports each change, and clears peers no longer watched. */
  check (peers: readonly string[]): void {
    const self = this.#init.self
    if (self == null) return
    const seen = new Set<string>()
    const paths = new Set<string>()
    for (const peer of peers) {
      const id = this.#init.processOf(peer)
      if (id == null || id.host !== self.host) continue
      seen.add(peer)
      paths.add(statPath(id.pid))
      const runs = processRuns(id, this.#read)
      if (runs === !this.#down.has(peer)) continue
      if (runs) this.#down.delete(peer); else this.#down.add(peer)
      this.#init.onChange(peer, runs)
    }
    for (const peer of this.#down) {
      if (seen.has(peer)) continue
      this.#down.delete(peer)
      this.#init.onChange(peer, true)
    }
    this.#files?.keepOnly(paths)
  }
}
