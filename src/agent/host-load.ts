/**
 * How much slower than its own CPU needs this agent's process gets its work
 * done, for the failure detector of agents that share one host
 * (core/probe-timing.ts `hostSlowdown`). Linux's `/proc/self/schedstat` gives
 * the time the process ran and the time it waited, runnable, for a core: on a
 * host whose cores are all taken every agent on it waits as this one does
 * (measured with 50 agents under the placement load: 30 ms run and 886 ms
 * waited each second, 42 ms per wake-up), so a peer's answer is late by
 * about (run + waited) / run, less the millisecond or so any wake-up may
 * wait on a host with room (where it is then 1). Sampled
 * each tick and smoothed over a few; where there is no `/proc` (macOS) it
 * reads nothing and the detector is not stretched.
 */
import { readFileSync } from 'node:fs'
import { StatFiles } from './process-watch.ts'

const SCHEDSTAT = '/proc/self/schedstat'

/** Weight of each new sample: about three one-second ticks. */
const ALPHA = 0.3
/** Below this much run time between two samples the ratio says nothing (an idle process). */
const MIN_RUN_NS = 1_000_000
/**
 * Waiting this long per wake-up is a host with room: CFS's minimum
 * granularity is 0.75 ms or more. Not counted, or an idle agent's short
 * bursts (tens of microseconds run, as much waited for a core) read as a
 * slowdown of 1.6 with 6 agents on two idle cores.
 */
const NORMAL_WAIT_PER_WAKEUP_NS = 1_000_000

/** The process's run and wait times so far, in ns; undefined when they cannot be read. */
export function schedTimes (read: () => string = () => readFileSync('/proc/self/schedstat', 'utf8')): { runNs: number, waitNs: number, wakeups: number } | undefined {
  try {
    const m = /^(\d+) (\d+) (\d+)/.exec(read())
    if (m != null) return { runNs: Number(m[1]), waitNs: Number(m[2]), wakeups: Number(m[3]) }
  } catch {}
  return undefined
}

export class HostLoad {
  #last?: { runNs: number, waitNs: number, wakeups: number }
  #slowdown = 1
  /** The schedstat file, kept open and read again in place each tick (process-watch.ts `StatFiles`): one system call instead of readFileSync's five. */
  readonly #file = new StatFiles()

  /** Closes the file it keeps open. */
  close (): void {
    this.#file.closeAll()
  }

  /** This process's run and wait times now, through the kept-open file. */
  read (): { runNs: number, waitNs: number, wakeups: number } | undefined {
    return schedTimes(() => this.#file.read(SCHEDSTAT))
  }

  /** Takes a sample; returns the smoothed slowdown (1: no waiting), or undefined before two samples could be read. */
  sample (now = this.read()): number | undefined {
    if (now == null) return undefined
    const last = this.#last
    this.#last = now
    if (last == null) return undefined
    const run = now.runNs - last.runNs
    const wait = now.waitNs - last.waitNs - NORMAL_WAIT_PER_WAKEUP_NS * Math.max(0, now.wakeups - last.wakeups)
    const ratio = run < MIN_RUN_NS || wait <= 0 ? 1 : (run + wait) / run
    this.#slowdown += ALPHA * (ratio - this.#slowdown)
    return this.#slowdown
  }
}
