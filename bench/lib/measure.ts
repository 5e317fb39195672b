/**
 * The placement benchmark's measurements, the same for the agents and for the
 * bare-libp2p baseline (bench/bare-node.ts), which answer the same routes:
 * idle CPU and memory of a set of processes, gossip convergence (a create
 * through process 0, then every process asked `?wait=` for it), and creates
 * as fast as the processes take them, with memory sampled meanwhile.
 */
import { readFileSync } from 'node:fs'
import { max, mean, percentile } from '../../src/core/stats.ts'
import { request } from './http.ts'
import { LeanClients } from './lean-get.ts'
import { cpuSeconds, pssMiB, statusMiB, ussMiB } from './proc.ts'
import { watchViews } from './view-events.ts'

export const CONVERGENCE_TIMEOUT_MS = 15_000
/** How long after the last `?wait=` answer a view's event may still be on its way. */
const VIEW_EVENT_GRACE_MS = 2_000

const sleep = async (ms: number): Promise<void> => { await new Promise(r => setTimeout(r, ms)) }

export interface Spread { mean: number, max: number }
export const spread = (values: number[]): Spread => ({ mean: mean(values.filter(Number.isFinite)), max: max(values.filter(Number.isFinite)) })

export interface Idle {
  /** CPU of all the processes together over the sample, in % of one core. */
  cpuPctSum: number
  cpuPct: Spread
  rssMiB: Spread
  pssMiB: Spread
  /** Memory of its own (ussMiB in proc.ts). */
  ussMiB: Spread
  sampleS: number
  /** The agents only (from their `/metrics`): messages each sent a second over the sample (placement.ts IDLE_MESSAGES). */
  messagesPerAgentS?: number
  /** The agents only: connections the whole cluster opened a second over the sample. */
  connectionsOpenedPerS?: number
}

/** The machine's load average (1 min) when a figure was taken: the benchmark shares the machine. */
export function loadAverage (): number {
  try {
    return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0])
  } catch {
    return NaN
  }
}

/** CPU time of the whole machine from /proc/stat's first line, in jiffies: busy and all. */
export interface MachineTicks { busy: number, total: number }

/** Parses /proc/stat's `cpu` line (user nice system idle iowait irq softirq steal …): idle and iowait are not busy. */
export function machineTicks (stat: string): MachineTicks {
  const line = stat.split('\n').find(l => l.startsWith('cpu '))
  const fields = (line ?? '').trim().split(/\s+/).slice(1, 9).map(Number)
  if (fields.length < 5 || fields.some(f => !Number.isFinite(f))) throw new Error(`Expected /proc/stat to start with a "cpu" line of numbers, got ${JSON.stringify(line)}`)
  const total = fields.reduce((a, b) => a + b, 0)
  return { busy: total - fields[3] - fields[4], total }
}

/** The machine's busy share between two readings, in % of all its cores (NaN when no time passed). */
export function busyPercent (before: MachineTicks, after: MachineTicks): number {
  const total = after.total - before.total
  return total > 0 ? 100 * (after.busy - before.busy) / total : NaN
}

export interface Quiet { quiet: boolean, waitedS: number, busyPct: number }

/**
 * Waits until the whole machine is quiet — busy below `maxBusyPct` % of all its cores over a window — or `maxMs`
 * has passed, whichever comes first, so that a system's time to come up does not include what the one stopped
 * before it left running. (Ten agents to a process once came up in 90.4 s right after the baseline, and in 34–41 s
 * in later runs; the machine was quiet before those, so what slowed that run is not known.)
 */
export async function quietMachine (maxBusyPct: number, windowMs: number, maxMs: number): Promise<Quiet> {
  const t0 = Date.now()
  const read = (): MachineTicks => machineTicks(readFileSync('/proc/stat', 'utf8'))
  let before = read()
  let busyPct: number
  let quiet: boolean
  do {
    await sleep(windowMs)
    const after = read()
    busyPct = busyPercent(before, after)
    quiet = busyPct < maxBusyPct
    before = after
  } while (!quiet && Date.now() - t0 < maxMs)
  return { quiet, waitedS: (Date.now() - t0) / 1000, busyPct }
}

/**
 * Whether a cluster has settled, from the CPU of all its processes over
 * successive equal windows (% of one core, oldest first): at least two
 * windows, and the last no longer falling — less than `tolerance` below the
 * one before (a cluster busier than before is not settling: it is busy). A cluster
 * just started keeps converging (view syncs, the detector's rings, connections
 * opened then closed as idle) for a minute or more on a shared host; an idle
 * figure sampled then measures that, not the idle cost.
 */
export function settled (windows: readonly number[], tolerance = 0.2): boolean {
  if (windows.length < 2) return false
  return windows[windows.length - 1] >= (1 - tolerance) * windows[windows.length - 2]
}

/**
 * `settled`, and for processes that count what they do (the agents' `/metrics`): the connections they opened
 * together in the last window (`opened`, one count per window) at most `maxOpened`. After a cluster comes up, its
 * agents still close the connections the joins opened and dial the detector's new ring subjects for a minute or two
 * (2–5 a second at 100 agents, against 0.4 once idle): CPU that does not fall from one 5 s window to the next, or
 * rises by chance, is not yet an idle cluster's.
 */
export function settledQuiet (windows: readonly number[], opened: readonly number[], maxOpened: number, tolerance = 0.2): boolean {
  return settled(windows, tolerance) && opened.length === windows.length && opened[opened.length - 1] <= maxOpened
}

export interface Settle { waitedS: number, windowsPct: number[], openedPerWindow?: number[] }

/** What the processes count of their own activity: the connections they opened so far, all together. */
export interface Activity { opened: () => Promise<number>, maxPerWindow: number }

/**
 * Waits until `settled` (with `activity`, `settledQuiet`) says so over `windowMs` windows, or `maxMs` passed (the
 * figures then say so). The counters are read between the windows, so that reading them is not in the CPU measured.
 */
export async function settle (pids: readonly number[], windowMs: number, maxMs: number, activity?: Activity): Promise<Settle> {
  const t0 = performance.now()
  const windows: number[] = []
  const opened: number[] = []
  let count = await activity?.opened()
  const done = (): boolean => activity == null ? settled(windows) : settledQuiet(windows, opened, activity.maxPerWindow)
  while (!done() && performance.now() - t0 < maxMs) {
    windows.push((await cpuOver(pids, windowMs)).pct.reduce((a, b) => a + b, 0))
    if (activity != null) {
      const now = await activity.opened()
      opened.push(now - count!)
      count = now
    }
  }
  return { waitedS: (performance.now() - t0) / 1000, windowsPct: windows, ...(activity != null ? { openedPerWindow: opened } : {}) }
}

/** Each process's CPU over the next `ms` (% of one core), and the wall time it was measured over. */
async function cpuOver (pids: readonly number[], ms: number): Promise<{ pct: number[], wallS: number }> {
  const t0 = performance.now()
  const before = pids.map(cpuSeconds)
  await sleep(ms)
  const after = pids.map(cpuSeconds)
  const wallS = (performance.now() - t0) / 1000
  return { pct: pids.map((_, i) => 100 * (after[i] - before[i]) / wallS), wallS }
}

export async function idle (pids: readonly number[], ms: number): Promise<Idle> {
  const { pct, wallS } = await cpuOver(pids, ms)
  return {
    cpuPctSum: pct.reduce((a, b) => a + b, 0),
    cpuPct: spread(pct),
    rssMiB: spread(pids.map(p => statusMiB(p, 'VmRSS'))),
    pssMiB: spread(pids.map(pssMiB)),
    ussMiB: spread(pids.map(ussMiB)),
    sampleS: wallS
  }
}

export interface Convergence {
  samples: number
  pairs: number
  missed: number
  p50Ms: number
  p99Ms: number
  maxMs: number
  lastAgentP50Ms: number
  lastAgentMaxMs: number
  /** The untimed first create: its slowest process (Infinity: one missed it), not in the figures above. */
  firstLastAgentMs: number
  /**
   * The same creates, timed by when each process's view had the VM (its own
   * event, view-events.ts) rather than by when its answer reached us: 0 for
   * a process that had it before the 201 did. NaN when no stream could be opened.
   */
  view: { p50Ms: number, p99Ms: number, maxMs: number, missed: number }
}

/** The creates `convergence` sends before those it counts (one: see there). */
export const CONVERGENCE_UNCOUNTED = 1

/**
 * `samples` creates through `apis[0]` (`query` added to the create's URL),
 * each followed at once by `GET /v1/vms/:id?wait=` at every process: per
 * process, the time from the 201 until it has the VM, with no polling load.
 * One create goes first and is not counted (its slowest process is reported
 * apart, `firstLastAgentMs`): it is the first VM each process learns and
 * the first such request each answers, and each process then compiles the
 * code on that path — at 100 agents on 2 cores that took every agent to
 * 600–770 ms for that one create against 200–350 ms for the next ones, and
 * one sample in twenty so placed is the p99 of the twenty.
 *
 * The requests go through `LeanClients` (lean-get.ts), not `fetch`: a round
 * of 100 fetches cost this process 130 ms of CPU, during which it read
 * neither the answers nor the events, and the answers were timed 250–350 ms
 * after the agents sent them (2026-12-02, thirteenth session).
 */
export async function convergence (apis: string[], samples: number, body: unknown, query = ''): Promise<Convergence> {
  const views = await watchViews(apis).catch(() => undefined)
  const waits = new LeanClients(apis)
  const viewDelays: number[] = []
  let viewMissed = 0
  const once = async (counted: boolean): Promise<number[]> => {
    const res = await request('POST', `${apis[0]}/v1/vms${query}`, body)
    const at201 = Date.now()
    if (res.status !== 201) throw new Error(`convergence create answered HTTP ${res.status}: ${JSON.stringify(res.body)}`)
    const id: string = res.body.id
    const delays = await Promise.all(apis.map(async (_, i) => {
      try {
        const seen = await waits.get(i, `/v1/vms/${id}?wait=${CONVERGENCE_TIMEOUT_MS}ms`, CONVERGENCE_TIMEOUT_MS + 5_000)
        if (seen.status === 200) return seen.atMs - at201
      } catch {}
      return NaN
    }))
    if (views != null && counted) {
      // Each answered ?wait= means that view had it: its event is on its way.
      await views.waitAll(id, VIEW_EVENT_GRACE_MS)
      apis.forEach((_, i) => {
        const at = views.at(i, id)
        if (at == null) viewMissed++
        else viewDelays.push(Math.max(0, at - at201))
      })
    }
    return delays
  }
  const slowest = (delays: number[]): number => delays.some(Number.isNaN) ? Infinity : max(delays)
  let firstLastAgentMs = 0
  const pairs: number[] = []
  const lastAgent: number[] = []
  let missed = 0
  try {
    for (let i = 0; i < CONVERGENCE_UNCOUNTED; i++) firstLastAgentMs = Math.max(firstLastAgentMs, slowest(await once(false)))
    for (let s = 0; s < samples; s++) {
      await sleep(400 + Math.random() * 400)
      const delays = await once(true)
      for (const d of delays) if (Number.isNaN(d)) missed++; else pairs.push(d)
      lastAgent.push(slowest(delays))
    }
  } finally {
    views?.close()
    waits.close()
  }
  return {
    samples,
    pairs: pairs.length,
    missed,
    p50Ms: percentile(pairs, 0.5),
    p99Ms: percentile(pairs, 0.99),
    maxMs: max(pairs),
    lastAgentP50Ms: percentile(lastAgent, 0.5),
    lastAgentMaxMs: max(lastAgent),
    firstLastAgentMs,
    view: views == null
      ? { p50Ms: NaN, p99Ms: NaN, maxMs: NaN, missed: 0 }
      : { p50Ms: percentile(viewDelays, 0.5), p99Ms: percentile(viewDelays, 0.99), maxMs: max(viewDelays), missed: viewMissed }
  }
}

export interface Load {
  vms: number
  concurrency: number
  wallS: number
  vmsPerS: number
  createMs: { p50: number, p99: number, max: number }
  /**
   * `uncertain`: answers `504 placement_uncertain` (also counted in `other`), whose VM may exist all the same, as the
   * API says; so may the VM of a request that failed (`error`: no answer within 60 s).
   */
  status: { created: number, noCapacity: number, other: number, error: number, uncertain: number }
  /** CPU of all the processes over the load, in % of one core. */
  cpuPctSum: number
  /** Sampled every 2 s during the load: per process, its largest sample. */
  rssMiB: Spread
  pssMiB: Spread
  /** Memory of its own (ussMiB in proc.ts). */
  ussMiB: Spread
}

/** `total` creates, round-robin over the processes, `concurrency` in flight; memory sampled meanwhile. */
export async function load (apis: string[], pids: readonly number[], total: number, concurrency: number, body: unknown, log: (line: string) => void): Promise<Load> {
  const status = { created: 0, noCapacity: 0, other: 0, error: 0, uncertain: 0 }
  const latencies: number[] = []
  const others = new Map<string, number>()
  const rss = pids.map(() => 0)
  const pss = pids.map(() => 0)
  const uss = pids.map(() => 0)
  const sampleMemory = (): void => {
    pids.forEach((p, i) => {
      rss[i] = Math.max(rss[i], statusMiB(p, 'VmRSS') || 0)
      pss[i] = Math.max(pss[i], pssMiB(p) || 0)
      uss[i] = Math.max(uss[i], ussMiB(p) || 0)
    })
  }
  let next = 0
  const cpuBefore = pids.map(cpuSeconds)
  const t0 = performance.now()
  const progress = setInterval(() => { log(`  ${status.created + status.noCapacity + status.other + status.error}/${total} answered, ${status.created} created`) }, 5_000)
  const sampler = setInterval(sampleMemory, 2_000)
  try {
    await Promise.all(Array.from({ length: Math.min(concurrency, total) }, async () => {
      for (let i = next++; i < total; i = next++) {
        try {
          const res = await request('POST', `${apis[i % apis.length]}/v1/vms`, body, 60_000)
          if (res.status === 201) {
            status.created++
            latencies.push(res.ms)
          } else if (res.status === 503) status.noCapacity++
          else {
            status.other++
            if (res.status === 504 && res.body?.error === 'placement_uncertain') status.uncertain++
            const key = `HTTP ${res.status} ${res.body?.error ?? ''}`.trim()
            others.set(key, (others.get(key) ?? 0) + 1)
          }
        } catch (err: any) {
          status.error++
          const key = String(err.cause?.code ?? err.name)
          others.set(key, (others.get(key) ?? 0) + 1)
        }
      }
    }))
  } finally {
    clearInterval(progress)
    clearInterval(sampler)
  }
  sampleMemory()
  const wallS = (performance.now() - t0) / 1000
  const cpu = pids.map((p, i) => 100 * (cpuSeconds(p) - cpuBefore[i]) / wallS)
  if (others.size > 0) log(`  other answers: ${[...others].map(([k, n]) => `${k} ×${n}`).join(', ')}`)
  return {
    vms: total,
    concurrency,
    wallS,
    vmsPerS: status.created / wallS,
    createMs: { p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), max: max(latencies) },
    status,
    cpuPctSum: cpu.reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0),
    rssMiB: spread(rss),
    pssMiB: spread(pss),
    ussMiB: spread(uss)
  }
}
