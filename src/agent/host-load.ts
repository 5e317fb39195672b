/**
 * The host's CPU run queue, for the failure detector of agents that share
 * one host (core/probe-timing.ts `hostLoad`): Linux's `/proc/loadavg` gives
 * the threads runnable right now (its fourth field, `runnable/total`), a
 * truer measure of how late a peer's answer will be than the load averages,
 * which trail by a minute. Smoothed over a few ticks (one sample is one
 * instant); our own thread, running while it reads, is not counted. Where
 * there is no `/proc` (macOS), the one-minute load average stands in.
 */
import { readFileSync } from 'node:fs'
import { availableParallelism, loadavg } from 'node:os'

/** Weight of each new sample: about three one-second ticks. */
const ALPHA = 0.3

/** The runnable threads now, ourselves excepted; undefined when it cannot be read. */
export function runnableNow (read: () => string = () => readFileSync('/proc/loadavg', 'utf8')): number | undefined {
  try {
    const m = /^\S+ \S+ \S+ (\d+)\/\d+/.exec(read())
    if (m != null) return Math.max(0, Number(m[1]) - 1)
  } catch {}
  const avg = loadavg()[0]
  return Number.isFinite(avg) ? avg : undefined
}

export class HostLoad {
  readonly cores = Math.max(1, availableParallelism())
  #runnable?: number

  /** Takes a sample; returns the smoothed run queue. */
  sample (runnable = runnableNow()): number | undefined {
    if (runnable == null) return this.#runnable
    this.#runnable = this.#runnable == null ? runnable : this.#runnable + ALPHA * (runnable - this.#runnable)
    return this.#runnable
  }
}
