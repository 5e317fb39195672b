/**
 * The fault schedule of a chaos run, a pure function of its options and seed
 * (Chaos Mesh's schedules, as a list made up front): SIGKILLs each followed by
 * a restart on the same data dir, SIGSTOP/SIGCONT pauses, and partitions (both
 * ways or one way) each followed by a heal. A killed or paused agent is *down*
 * from its fault until its restart or resume plus `upMs` (the time a restarted
 * agent takes to be seen again); the schedule never has more than `maxDown`
 * agents down at once. A fault that finds no room at its time is moved later,
 * to the first time there is, or dropped if that is past the end. One
 * partition at a time; partitions do not count as down (each side still runs).
 * With several agents to a process (`units`), a kill or a pause takes a whole
 * process's agents down together, and `maxDown` counts processes: the
 * replica holders of a VM are in other processes than its owner's
 * (core/replica-rule.ts), so a process down is one holder lost, whatever
 * the agents it runs.
 */
import { type Rng, seededRng } from '../core/rng.ts'
import type { FaultKind } from './history.ts'
import type { ChaosOptions } from './options.ts'

/** The run's own options (options.ts, each documented there), and the schedule's timings. */
export interface ScheduleOptions extends Pick<ChaosOptions, 'nodes' | 'durationMs' | 'killEveryMs' | 'pauseEveryMs' | 'partitionEveryMs' | 'maxDown' | 'seed'> {
  /** From a kill to its restart. */
  restartDelayMs: [number, number]
  /** How long a pause lasts. */
  pauseMs: [number, number]
  /** How long a partition lasts. */
  partitionMs: [number, number]
  /** After a restart or a resume, how long the agent still counts as down. */
  upMs: number
  /** The agents that go down together (the agents of one process), covering 0 … nodes − 1; default each agent alone. `maxDown` counts these. */
  units?: number[][]
}

export interface ScheduledFault {
  atMs: number
  kind: FaultKind
  /** The agents the fault is done to: the killed, paused, or the partition's minority side. */
  agents: number[]
  /** partition: the other side. */
  peers?: number[]
  /** partition: the minority side refuses only what the other side starts. */
  oneWay?: boolean
  /** Pairs a fault with its end (kill → restart, pause → resume, partition → heal). */
  pair: number
}

/** A down interval: [from, to) of one unit (an agent, or a process of agents). */
interface Down { unit: number, from: number, to: number }

function between (rng: Rng, [lo, hi]: [number, number]): number {
  return Math.round(lo + rng.next() * (hi - lo))
}

/** The most agents down at once during [from, to), counting the intervals in `downs`. */
export function maxOverlap (downs: Array<{ from: number, to: number }>, from: number, to: number): number {
  const points: Array<[number, number]> = []
  for (const d of downs) {
    if (d.to <= from || d.from >= to) continue
    points.push([Math.max(d.from, from), 1], [Math.min(d.to, to), -1])
  }
  points.sort((a, b) => a[0] - b[0] || a[1] - b[1])
  let now = 0
  let max = 0
  for (const [, delta] of points) {
    now += delta
    max = Math.max(max, now)
  }
  return max
}

export function buildSchedule (o: ScheduleOptions): ScheduledFault[] {
  const rng = seededRng(o.seed)
  const out: ScheduledFault[] = []
  const downs: Down[] = []
  let pair = 0
  // Nominal times: one per period, jittered by up to a quarter of it either way.
  const times = (every: number, kind: 'kill' | 'pause'): Array<{ at: number, kind: 'kill' | 'pause' }> => {
    if (every <= 0) return []
    const list: Array<{ at: number, kind: 'kill' | 'pause' }> = []
    for (let t = every / 2; t < o.durationMs; t += every) list.push({ at: Math.max(0, Math.round(t + (rng.next() - 0.5) * every / 2)), kind })
    return list
  }
  const wanted = [...times(o.killEveryMs, 'kill'), ...times(o.pauseEveryMs, 'pause')].sort((a, b) => a.at - b.at)
  const units = o.units ?? Array.from({ length: o.nodes }, (_, i) => [i])
  for (const w of wanted) {
    const length = w.kind === 'kill' ? between(rng, o.restartDelayMs) : between(rng, o.pauseMs)
    const pick = rng.next()
    let at = w.at
    // Move it later until it fits under maxDown and some agent is up through it.
    while (at + length <= o.durationMs) {
      const to = at + length + o.upMs
      const free = units.map((_, u) => u).filter(u => !downs.some(d => d.unit === u && d.to > at && d.from < to))
      if (free.length > 0 && maxOverlap(downs, at, to) < o.maxDown) {
        const unit = free[Math.floor(pick * free.length)]
        const agents = units[unit]
        downs.push({ unit, from: at, to })
        const p = pair++
        out.push({ atMs: at, kind: w.kind, agents: [...agents], pair: p })
        out.push({ atMs: at + length, kind: w.kind === 'kill' ? 'restart' : 'resume', agents: [...agents], pair: p })
        break
      }
      const ends = downs.map(d => d.to).filter(t => t > at)
      if (ends.length === 0) break
      at = Math.min(...ends)
    }
  }
  if (o.partitionEveryMs > 0 && o.nodes >= 2) {
    let free = 0
    for (let t = o.partitionEveryMs / 2; t < o.durationMs; t += o.partitionEveryMs) {
      const length = between(rng, o.partitionMs)
      const at = Math.max(free, Math.round(t + (rng.next() - 0.5) * o.partitionEveryMs / 2))
      const minority = 1 + Math.floor(rng.next() * Math.max(1, Math.floor((o.nodes - 1) / 2)))
      const order = Array.from({ length: o.nodes }, (_, i) => i)
      for (let i = order.length - 1; i > 0; i--) {
        const j = Math.floor(rng.next() * (i + 1))
        ;[order[i], order[j]] = [order[j], order[i]]
      }
      const oneWay = rng.next() < 0.5
      if (at + length > o.durationMs) continue
      const p = pair++
      const agents = order.slice(0, minority).sort((a, b) => a - b)
      const peers = order.slice(minority).sort((a, b) => a - b)
      out.push({ atMs: at, kind: 'partition', agents, peers, oneWay, pair: p })
      out.push({ atMs: at + length, kind: 'heal', agents, peers, oneWay, pair: p })
      free = at + length + o.upMs
    }
  }
  return out.sort((a, b) => a.atMs - b.atMs || a.pair - b.pair)
}

/** The most agents (processes, with units) the schedule has down at once (killed or paused, plus `upMs` after each comes back). */
export function scheduleMaxDown (faults: ScheduledFault[], upMs: number): number {
  const downs: Array<{ from: number, to: number }> = []
  for (const f of faults) {
    if (f.kind !== 'kill' && f.kind !== 'pause') continue
    const end = faults.find(e => e.pair === f.pair && e !== f)
    downs.push({ from: f.atMs, to: (end?.atMs ?? f.atMs) + upMs })
  }
  return maxOverlap(downs, -Infinity, Infinity)
}

export function countKinds (faults: ScheduledFault[]): Record<FaultKind, number> {
  const out: Record<FaultKind, number> = { kill: 0, restart: 0, pause: 0, resume: 0, partition: 0, heal: 0 }
  for (const f of faults) out[f.kind]++
  return out
}
