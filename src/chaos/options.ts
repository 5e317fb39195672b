/**
 * The options of `discovery chaos`, validated once from the command line,
 * each with its default and why; and the command line that replays a run.
 */
import { randomInt } from 'node:crypto'
import { parseDuration, parseInteger, parseRatio } from '../cli/parse.ts'
import { UsageError } from '../cli/errors.ts'

export interface ChaosOptions {
  /** Agents to start (ignored with `attach`, which takes the cluster's). */
  nodes: number
  durationMs: number
  /** Mean time between SIGKILLs (default 10 s: several per minute, each agent down a few seconds); 0: none. */
  killEveryMs: number
  /** Mean time between SIGSTOPs (default 30 s); 0: none. */
  pauseEveryMs: number
  /** Mean time between partitions (default 30 s); 0: none. */
  partitionEveryMs: number
  /**
   * Agents killed or paused at once at most — processes, with `perProcess`
   * above 1 (a VM's holders are in other processes than its owner's) —
   * (default replicas − 1: below the replica count, so a VM's record always survives).
   */
  maxDown: number
  /** Workload requests a second (default 5). */
  rate: number
  /** Seed of the schedule and the workload (default: a fresh one, printed). */
  seed: number
  /** Where report.json, report.html and history.json go (default .discovery/chaos/seed-S). */
  reportDir?: string
  /** A cluster started by `discovery cluster up --admin` to work on instead of starting one. */
  attach?: string
  /** Hostile messages to send after the faults (0: none). */
  fuzz: number
  json: boolean
  /** Replicas of each VM's record in a cluster the harness starts (default 2, the agents' default). */
  replicas: number
  /** vCPUs each agent started by the harness offers (default 8). */
  cpu: number
  /** Views must agree this long after churn stops (default 5 s: the invariant's bound). */
  convergeWithinMs: number
  /** How long the cluster may take to settle after the faults (default 120 s). */
  settleTimeoutMs: number
  /**
   * Each agent started in a network namespace of its own, and partitions made
   * by the kernel (packets dropped, connections left to time out) rather than
   * by the agents' admin routes. Root only. Default false. An attached
   * cluster started with `cluster up --netns` gets kernel partitions anyway.
   */
  netns: boolean
  /**
   * Agents to a process in a cluster the harness starts (`cluster up
   * --per-process`); a kill, pause or restart is then done to a whole
   * process, and `maxDown` counts processes. Default 1: each agent its own
   * process. Not with `netns`.
   */
  perProcess: number
}

export interface ChaosFlags {
  nodes?: string
  duration?: string
  killEvery?: string
  pauseEvery?: string
  partitionEvery?: string
  maxDown?: string
  rate?: string
  seed?: string
  report?: string
  attach?: string
  fuzz?: string
  json?: boolean
  replicas?: string
  cpu?: string
  convergeWithin?: string
  settleTimeout?: string
  netns?: boolean
  perProcess?: string
}

/** `attached`: what the cluster given with --attach was started with (its replicas, its largest process of agents). */
export function parseChaosOptions (f: ChaosFlags, attached?: { replicas: number, perProcess: number }): ChaosOptions {
  if (f.attach == null && f.nodes == null) throw new UsageError('Expected --nodes N (agents to start), or --attach CLUSTER_DIR (a cluster started with `discovery cluster up --admin`)')
  if (f.duration == null) throw new UsageError('Expected --duration D, e.g. 60s or 5m')
  const replicas = attached?.replicas ?? (f.replicas != null ? parseInteger('--replicas', f.replicas, 1, 7) : 2)
  const nodes = f.nodes != null ? parseInteger('--nodes', f.nodes, 3, 200) : 0
  const perProcess = attached?.perProcess ?? (f.perProcess != null ? parseInteger('--per-process', f.perProcess, 1, 100) : 1)
  if (perProcess > 1 && f.netns === true) throw new UsageError('--per-process and --netns contradict each other: a process has one network namespace, each agent of --netns its own')
  const maxDown = f.maxDown != null ? parseInteger('--max-down', f.maxDown, 1, 100) : Math.max(1, replicas - 1)
  if (maxDown >= replicas) {
    throw new UsageError(`Expected --max-down to be below the replica count (${replicas}): with ${maxDown} agents down at once a VM can lose its owner and every holder of its record, got ${maxDown}`)
  }
  const seed = f.seed != null ? parseInteger('--seed', f.seed, 0, 2 ** 32 - 1) : randomInt(1, 2 ** 31)
  const every = (flag: string, v: string | undefined, def: number): number => v == null ? def : v.trim() === '0' ? 0 : parseDuration(flag, v)
  const durationMs = parseDuration('--duration', f.duration)
  if (durationMs < 5_000) throw new UsageError(`Expected --duration to be at least 5s, got \`${f.duration}\``)
  return {
    nodes,
    durationMs,
    killEveryMs: every('--kill-every', f.killEvery, 10_000),
    pauseEveryMs: every('--pause-every', f.pauseEvery, 30_000),
    partitionEveryMs: every('--partition-every', f.partitionEvery, 30_000),
    maxDown,
    rate: f.rate != null ? parseRatio('--rate', f.rate, 0.1, 1000) : 5,
    seed,
    ...(f.report != null ? { reportDir: f.report } : {}),
    ...(f.attach != null ? { attach: f.attach } : {}),
    fuzz: f.fuzz != null ? parseInteger('--fuzz', f.fuzz, 0, 10_000_000) : 0,
    json: f.json === true,
    replicas,
    cpu: f.cpu != null ? parseInteger('--cpu', f.cpu, 1, 4096) : 8,
    convergeWithinMs: f.convergeWithin != null ? parseDuration('--converge-within', f.convergeWithin) : 5_000,
    settleTimeoutMs: f.settleTimeout != null ? parseDuration('--settle-timeout', f.settleTimeout) : 120_000,
    netns: f.netns === true,
    perProcess
  }
}

/** The command that replays the run: the same options and seed (the schedule and the workload's draws are the seed's). */
export function replayCommand (o: ChaosOptions): string {
  const s = (ms: number): string => ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`
  const parts = ['discovery', 'chaos']
  if (o.attach != null) parts.push('--attach', o.attach)
  else parts.push('--nodes', String(o.nodes), '--replicas', String(o.replicas), '--cpu', String(o.cpu), ...(o.perProcess > 1 ? ['--per-process', String(o.perProcess)] : []))
  parts.push('--duration', s(o.durationMs), '--kill-every', s(o.killEveryMs), '--pause-every', s(o.pauseEveryMs), '--partition-every', s(o.partitionEveryMs),
    '--max-down', String(o.maxDown), '--rate', String(o.rate), '--seed', String(o.seed), '--converge-within', s(o.convergeWithinMs))
  if (o.fuzz > 0) parts.push('--fuzz', String(o.fuzz))
  if (o.netns) parts.push('--netns')
  return parts.join(' ')
}
