/**
 * How long the failure detector waits, and how often it probes: Lifeguard's
 * local health (awareness.ts: this node's own probes failing, its refutations
 * and its late timers stretch its interval and timeouts) and each member's
 * measured round trip (rtt-estimate.ts: a member answering slowly is waited
 * for, up to `rttTimeoutMaxMult` × the probe timeout). failure-detector.ts
 * decides what a probe's outcome means; this decides only the times.
 */
import { Awareness } from './awareness.ts'
import type { DetectorConfig } from './detector-config.ts'
import { PAUSE_PERIODS } from './detector-step.ts'
import { RttEstimates } from './rtt-estimate.ts'

/** The time between probes that keeps `live` members of one host within `hostProbesPerSecond` (0 when there is no such budget). */
function hostShareMs (c: Pick<DetectorConfig, 'hostProbesPerSecond'>, live: number): number {
  return c.hostProbesPerSecond == null ? 0 : 1000 * live / c.hostProbesPerSecond
}

/**
 * How often the process watch looks (agent/process-watch.ts): every
 * `processCheckMs`, doubled while that is shorter than the host's share of
 * probes with `live` members (`hostProbesPerSecond`): the kernel need not be
 * asked more often than the detector probes. In `local`, 250 ms up to 25
 * agents, 500 ms up to 50 and 1 s up to 100 — where it then runs with the
 * other one-second work, in the same wake-up (net/aligned-timers.ts):
 * four checks a second were a tenth of 100 idle agents' CPU (`perf`,
 * 2026-12-01). A stopped member's observers all see it within one probe
 * interval still, where a probe would reach it once in that time and then
 * wait out its timeouts. Null when the watch is off.
 */
export function processCheckEveryMs (c: Pick<DetectorConfig, 'processCheckMs' | 'hostProbesPerSecond'>, live: number): number | null {
  const base = c.processCheckMs
  if (base == null) return null
  const share = hostShareMs(c, live)
  let every = base
  while (every < share) every *= 2
  return every
}

/**
 * How often the detector sends a peer a sync that tells nothing (no member
 * dead or suspect by a quorum: core/swim-sync.ts): every `syncIntervalMs`,
 * stretched as the probe interval is by the host's share of probes with
 * `live` members (`hostProbesPerSecond`): in `local`, 2 s up to 20 agents,
 * 5 s at 50 and 10 s at 100. With 2 s at 100 idle agents, every agent sent
 * a sync on each of its probe rounds (their interval stretched past 2 s on a
 * busy host): a third of the detector's messages, as many as its pings, and
 * each sync and its answer empty. Such a sync only asks whether the peer
 * knows of a death we missed, which it still learns within 10 s. A sync
 * with something to tell keeps `syncIntervalMs`: a partition's deaths
 * spread by them (with 12 s, one node of 120 split in halves still held 79
 * alive after 2 minutes on the simulator).
 */
export function syncEveryMs (c: Pick<DetectorConfig, 'syncIntervalMs' | 'probeIntervalMs' | 'hostProbesPerSecond'>, live: number): number {
  return c.syncIntervalMs * Math.max(1, hostShareMs(c, live) / c.probeIntervalMs)
}

export class ProbeTiming {
  readonly awareness: Awareness
  readonly rtt = new RttEstimates()
  readonly #c: DetectorConfig
  /** When a late timer last raised the score: once a period at most. */
  #lateMarkMs = -Infinity
  #hostFactor = 1
  /** Members whose process the kernel last showed stopped or gone (co-hosted, `processCheckMs`). */
  readonly #stopped = new Set<string>()

  /** `startHealth`: the score to start at (default the highest: a node just started cannot vouch for its timeliness). */
  constructor (config: DetectorConfig, startHealth?: number) {
    this.#c = config
    this.awareness = new Awareness(config.awarenessMax)
    this.awareness.apply(startHealth ?? config.awarenessMax - 1)
  }

  /** The time to the next round probe: the probe interval, or the host's share with `live` members (`hostProbesPerSecond`), stretched by local health. */
  intervalMs (live: number): number {
    return this.awareness.scale(Math.max(this.#c.probeIntervalMs, hostShareMs(this.#c, live))) * this.#hostFactor
  }

  /** How long a ping to `target` may take: the probe timeout stretched by local health, or `target`'s measured round trip when longer (bounded). */
  timeoutMs (target: string): number {
    if (this.#stopped.has(target)) return this.#c.probeTimeoutMs
    const f = this.#hostFactor
    return this.rtt.waitMs(target, f * this.awareness.scale(this.#c.probeTimeoutMs), f * this.#c.rttTimeoutMaxMult * this.#c.probeTimeoutMs)
  }

  /** Records what the kernel last showed of `peer`'s process; returns whether that changed. */
  processState (peer: string, running: boolean): boolean {
    const was = this.#stopped.has(peer)
    if (running) this.#stopped.delete(peer); else this.#stopped.add(peer)
    return was === running
  }

  /** Whether the kernel last showed `peer`'s process stopped or gone: its silence needs no helper to be believed. */
  stopped (peer: string): boolean {
    return this.#stopped.has(peer)
  }

  /** How much the host's slowdown (`hostSlowdown`) stretches every wait and the probe interval: 1 unless `hostLoadMaxMult` is set. */
  get hostFactor (): number {
    return this.#hostFactor
  }

  /**
   * How much slower than its own CPU needs this node gets its work done
   * (the agent measures it: run plus runnable-but-waiting time over run
   * time). On a host whose cores are all taken every agent on it is slow at
   * once, and each probe that times out adds indirect probes — new
   * connections, more load. The waits and the interval are stretched by it,
   * between 1 and `hostLoadMaxMult` (off when null: one agent per machine).
   */
  hostSlowdown (factor: number): void {
    const max = this.#c.hostLoadMaxMult
    if (max == null || !Number.isFinite(factor)) return
    this.#hostFactor = Math.min(max, Math.max(1, factor))
  }

  /**
   * This node's timers ran `lateMs` late at `nowMs`. Late by half a probe
   * timeout or more raises the score, once a period at most (one stall is one
   * piece of evidence, however many timers it delayed). Returns whether it
   * was a pause: late by several periods (a stopped process, a long GC), what
   * is in flight timed out on our side and means nothing. A busy machine makes
   * every timer a little late; Lifeguard stretches our timeouts for that.
   */
  late (lateMs: number, nowMs: number): boolean {
    if (lateMs < this.#c.probeTimeoutMs / 2) return false
    if (nowMs - this.#lateMarkMs >= this.#c.probeIntervalMs) {
      this.awareness.apply(1)
      this.#lateMarkMs = nowMs
    }
    return lateMs >= PAUSE_PERIODS * this.#c.probeIntervalMs
  }
}
