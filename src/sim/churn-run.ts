/**
 * `discovery sim --scenario churn`: N failure detectors (core/failure-detector.ts,
 * the agents' own, in sim/swim-world.ts) on a simulated network while nodes
 * are killed, hung and brought back on a seeded schedule: churn events
 * arrive at `eventsPerMin` cluster-wide (a Poisson process); each picks a
 * running node at random and kills it (started again, a new run, 60–120 s
 * later) or hangs it (resumed 30–60 s later), half and half. What it
 * measures: the time until every running node has marked a killed or hung
 * node dead, and each node's own time (p50 / p99); nodes alive but
 * declared dead (false positives) and deaths refuted; the detector's
 * messages per node per second.
 *
 * The rate of events is cluster-wide, not per node: every member must hear
 * of every death, so what a node spends on dissemination follows the
 * cluster's rate of changes; probes cost each node the same at any n. So at
 * a fixed rate of events, messages per node stay flat from 1,000 to 10,000.
 *
 * On the same run, each node owns `vmsPerNode` VMs (one in ten `never`)
 * whose records its k = 2 next peers on its ring hold, and each holder whose
 * detector declares an owner dead applies the agents' restart rule
 * (churn-vms.ts): VMs restarted and their time to run again, conflicts,
 * duplicates once settled (the run goes on SETTLE_MS after the last failure
 * ended), VMs lost. The detector's figures are the same with or without VMs
 * (their draws are their own stream).
 *
 * Measured (seed 1, lan; README, "Simulated churn"): `--nodes 1000`
 * (300 s, 6 a minute): kills dead everywhere 7.0 / 7.6 s p50 / p99, hangs
 * 11.2 / 12.6 s, no false positive, 266 VMs restarted 6.8 / 10.9 s after
 * their node failed, 0 conflicts, 0 duplicates, 0 lost, 6.21 detector
 * messages per node per second; `--nodes 10000 --duration 60s --churn 30`
 * (136 s of CPU): kills 9.3 / 14.7 s, hangs 16.3 / 17.9 s, 99 VMs restarted
 * 12.8 / 17.3 s, 0 / 0 / 0, 6.55 messages per node per second (6.15 for the
 * same run at 1,000 nodes).
 */
import { DETECTOR_PROFILES } from '../core/detector-config.ts'
import { exponential } from '../core/demand.ts'
import { type Rng, seededRng } from '../core/rng.ts'
import { percentile } from '../core/stats.ts'
import type { LinkModel } from './network.ts'
import { type ChangeRecord, SwimWorld } from './swim-world.ts'
import { ChurnVms } from './churn-vms.ts'

export interface ChurnOptions {
  nodes: number
  durationS: number
  seed: number
  /** The agents' profile (its detector settings) and its link. */
  profile: 'lan' | 'wan'
  link: LinkModel
  /** Kills and hangs per minute, cluster-wide. */
  eventsPerMin: number
  /** VMs each node owns at the start (`--vms-per-node`); default 10. 0: the detector only. */
  vmsPerNode?: number
  /**
   * A correlated failure on top of the schedule: at `atS`, a running node and
   * its first `size - 1` holders are killed at once (back 60–120 s later).
   * `size` = k + 1 = 3 takes every copy of that node's VM records: its VMs are lost.
   */
  groupKill?: { atS: number, size: number }
}

export interface ChurnReport {
  scenario: 'churn'
  nodes: number
  durationS: number
  seed: number
  profile: 'lan' | 'wan'
  link: LinkModel
  eventsPerMin: number
  kills: number
  hangs: number
  /** From the kill until every node running throughout had marked it dead. */
  killEveryP50Ms: number | null
  killEveryP99Ms: number | null
  /** Each such node's own time. */
  killEachP50Ms: number | null
  killEachP99Ms: number | null
  hangEveryP50Ms: number | null
  hangEveryP99Ms: number | null
  hangEachP50Ms: number | null
  hangEachP99Ms: number | null
  /** Failures not declared dead by every node running throughout before they ended. */
  missed: number
  /** Declarations of death of a node that was running, neither killed nor hung (nor back from it within the last minute). */
  falsePositives: number
  /** Declarations of death of a node in the minute after it came back from a hang or a kill (timers that ran out as it returned). */
  lateDeaths: number
  /** Deaths taken back in the same run (hung nodes resumed, and any false positive). */
  refutedDeaths: number
  msgsPerNodePerS: number
  /** VMs at the start (`vmsPerNode` × nodes), one in ten with restart policy `never`. */
  vms: number
  /** Restarts committed by a holder (the restart rule, core/replica-rule.ts). */
  vmsRestarted: number
  /** From the kill or hang of its node until the VM runs again elsewhere. */
  restartP50Ms: number | null
  restartP99Ms: number | null
  /** Restarts at an epoch a copy of the VM had already reached: two holders restarting one VM, or one from a stale record. */
  restartConflicts: number
  /** Copies stopped because a later head runs elsewhere (a hung or killed owner back after its VMs were restarted). */
  fenced: number
  /** VMs on two running nodes at once, counted once every failure has ended and things have settled. */
  duplicates: number
  /** `always` VMs that were down while no running node held a record of them (none could restart them), or still down once things settled. */
  lost: number
  /** `never` VMs reported lost by their restarter when their owner was declared dead (as they should be). */
  neverReported: number
  /** Replica pushes and drops, placement asks and commits, per node per second. */
  vmMsgsPerNodePerS: number
  simulatedS: number
  wallS: number
}

interface Failure {
  kind: 'kill' | 'hang'
  victim: number
  t0: number
  /** Nodes running at t0, and when each marked the victim dead. */
  observers: Set<number>
  deadAt: Map<number, number>
  /** When the victim came back. */
  endMs: number
  /** Cut short by the end of the run: not counted as missed if some node had not noticed it yet. */
  cut: boolean
}

/** A death declared this long after its victim came back is counted as late, not as a false positive. */
const LATE_MS = 60_000

/** Kills come back after 60–120 s, hangs after 30–60 s: long enough to be detected at 10,000 nodes by the slowest profile (wan: 17 s minimum suspicion). */
const KILL_DOWN_MS: [number, number] = [60_000, 120_000]
const HANG_MS: [number, number] = [30_000, 60_000]
/** Peers a killed node was connected to, that see the reset at once: an agent keeps a few connections, not n. */
const CONNECTED_PEERS = 50
/** Failures start after the detectors have settled, and none is left running at the end: the last ones have time to end. */
const WARMUP_MS = 10_000
/** After the last failure has ended, how long the run goes on before duplicates and VMs still down are counted: fencing takes CLAIM_MS after a return. */
const SETTLE_MS = 15_000
/** One VM in this many has restart policy `never`. */
const NEVER_EVERY = 10

export function runChurn (opts: ChurnOptions, onProgress?: (fraction: number) => void): ChurnReport {
  const started = performance.now()
  const world = new SwimWorld({ nodes: opts.nodes, seed: opts.seed, config: DETECTOR_PROFILES[opts.profile], link: opts.link, shared: true, resetHintPeers: CONNECTED_PEERS })
  const rng = seededRng(opts.seed ^ 0xc4a5)
  const endMs = opts.durationS * 1000
  const open = new Map<number, Failure>()
  const done: Failure[] = []
  const down = new Set<number>()
  const lastBack = new Map<number, number>()
  let falsePositives = 0
  let lateDeaths = 0
  let refutedDeaths = 0
  const vmsPerNode = opts.vmsPerNode ?? 10
  const vms = vmsPerNode > 0 ? new ChurnVms({ world, seed: opts.seed, vmsPerNode, neverEvery: NEVER_EVERY, link: opts.link }) : undefined
  world.onChange = (c: ChangeRecord) => {
    vms?.onChange(c)
    const peer = Number(c.peer.slice(1))
    const observer = Number(c.observer.slice(1))
    if (c.to === 'dead') {
      const f = open.get(peer)
      if (f != null) {
        if (!f.deadAt.has(observer)) f.deadAt.set(observer, c.atMs - f.t0)
      } else if (c.atMs - (lastBack.get(peer) ?? -Infinity) < LATE_MS) lateDeaths++
      else falsePositives++
    }
    if (c.to === 'alive' && c.from === 'dead' && c.refuted === true) refutedDeaths++
  }
  const end = (f: Failure): void => {
    f.endMs = world.now
    lastBack.set(f.victim, world.now)
    open.delete(f.victim)
    down.delete(f.victim)
    done.push(f)
  }
  const running = (): number[] => {
    const out: number[] = []
    for (let i = 0; i < opts.nodes; i++) if (!down.has(i)) out.push(i)
    return out
  }
  const failNode = (victim: number, kind: 'kill' | 'hang', observers: Set<number>, draw: Rng): void => {
    const f: Failure = { kind, victim, t0: world.now, observers, deadAt: new Map(), endMs: Infinity, cut: false }
    open.set(victim, f)
    down.add(victim)
    const [lo, hi] = kind === 'kill' ? KILL_DOWN_MS : HANG_MS
    const back = world.now + lo + draw.next() * (hi - lo)
    f.cut = back > endMs
    if (kind === 'kill') world.kill(victim)
    else world.hang(victim)
    vms?.failed(victim)
    world.queue.push(Math.min(back, endMs), () => {
      end(f)
      if (kind === 'kill') world.restart(victim)
      else {
        vms?.resuming(victim)
        world.resume(victim)
      }
      vms?.back(victim, kind === 'kill' ? 'restart' : 'resume')
    })
  }
  const fail = (): void => {
    const up = running()
    if (up.length > 1) {
      const victim = up[Math.floor(rng.next() * up.length)]
      const kind = rng.next() < 0.5 ? 'kill' : 'hang'
      failNode(victim, kind, new Set(up.filter(i => i !== victim)), rng)
    }
    const next = world.now + exponential(rng, 60_000 / opts.eventsPerMin)
    if (next < endMs - HANG_MS[0] && opts.eventsPerMin > 0) world.queue.push(next, fail)
  }
  const group = opts.groupKill
  if (group != null && vms != null) {
    // Its own stream: the schedule of the other failures is the same with or without it.
    const grng = seededRng(opts.seed ^ 0x6e0c)
    world.queue.push(group.atS * 1000, () => {
      const up = running()
      const whole = up.filter(i => vms.holdersOf(i).length >= group.size - 1 && vms.holdersOf(i).slice(0, group.size - 1).every(h => !down.has(h)))
      if (whole.length === 0) return
      const owner = whole[Math.floor(grng.next() * whole.length)]
      const victims = [owner, ...vms.holdersOf(owner).slice(0, group.size - 1)]
      const observers = new Set(up.filter(i => !victims.includes(i)))
      for (const v of victims) failNode(v, 'kill', observers, grng)
    })
  }
  if (opts.eventsPerMin > 0) world.queue.push(WARMUP_MS + exponential(rng, 60_000 / opts.eventsPerMin), fail)
  const step = Math.max(1_000, Math.floor(endMs / 100))
  for (let t = step; t < endMs + step; t += step) {
    world.run(Math.min(t, endMs))
    onProgress?.(Math.min(1, t / endMs))
  }
  // A node failed meanwhile misses later failures: only those running throughout count for a failure.
  const stats = (kind: 'kill' | 'hang'): { every: number[], each: number[], missed: number } => {
    const every: number[] = []
    const each: number[] = []
    let missed = 0
    for (const f of done.filter(x => x.kind === kind)) {
      // Nodes that failed themselves while this failure lasted are not asked to have noticed it.
      const watchers = [...f.observers].filter(o => !done.some(g => g.victim === o && g.t0 < f.endMs && g.endMs > f.t0))
      const times = watchers.map(o => f.deadAt.get(o))
      if (times.some(t => t == null)) {
        if (!f.cut) missed++
        continue
      }
      every.push(Math.max(...(times as number[])))
      for (const t of times) each.push(t as number)
    }
    return { every, each, missed }
  }
  const detectorMessages = world.messages
  const counted = { falsePositives, lateDeaths, refutedDeaths }
  const vmMessages = vms?.stats.messages ?? 0
  // Every failure has ended by endMs: fencing and the last restarts settle, then duplicates and VMs still down are counted.
  world.run(endMs + SETTLE_MS)
  const census = vms?.census() ?? { duplicates: 0, down: 0 }
  const vs = vms?.stats
  const k = stats('kill')
  const h = stats('hang')
  const p = (xs: number[], q: number): number | null => xs.length === 0 ? null : Math.round(percentile(xs, q))
  return {
    scenario: 'churn',
    nodes: opts.nodes,
    durationS: opts.durationS,
    seed: opts.seed,
    profile: opts.profile,
    link: opts.link,
    eventsPerMin: opts.eventsPerMin,
    kills: done.filter(f => f.kind === 'kill').length,
    hangs: done.filter(f => f.kind === 'hang').length,
    killEveryP50Ms: p(k.every, 0.5),
    killEveryP99Ms: p(k.every, 0.99),
    killEachP50Ms: p(k.each, 0.5),
    killEachP99Ms: p(k.each, 0.99),
    hangEveryP50Ms: p(h.every, 0.5),
    hangEveryP99Ms: p(h.every, 0.99),
    hangEachP50Ms: p(h.each, 0.5),
    hangEachP99Ms: p(h.each, 0.99),
    missed: k.missed + h.missed,
    ...counted,
    msgsPerNodePerS: Number((detectorMessages / opts.nodes / opts.durationS).toFixed(3)),
    vms: vs?.vms ?? 0,
    vmsRestarted: vs?.restarted ?? 0,
    restartP50Ms: p(vs?.restartMs ?? [], 0.5),
    restartP99Ms: p(vs?.restartMs ?? [], 0.99),
    restartConflicts: vs?.conflicts ?? 0,
    fenced: vs?.fenced ?? 0,
    duplicates: census.duplicates,
    lost: (vs?.lost ?? 0) + census.down,
    neverReported: vs?.neverReported ?? 0,
    vmMsgsPerNodePerS: Number((vmMessages / opts.nodes / opts.durationS).toFixed(3)),
    simulatedS: opts.durationS,
    wallS: Number(((performance.now() - started) / 1000).toFixed(1))
  }
}
