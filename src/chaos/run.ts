/**
 * One chaos run: the cluster (started through `cluster up` with the admin
 * routes, or attached), the seeded schedule of faults carried out while the
 * workload runs and the observer samples, then every fault lifted, the
 * cluster left to settle, optional fuzzing, the checker's verdict and the
 * report.
 */
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { clusterDown, clusterToken, readClusterFile } from '../cli/cluster.ts'
import { clusterUp } from '../cli/cluster-up.ts'
import { OperationError } from '../cli/errors.ts'
import { check } from './checker.ts'
import { ChaosCluster, type Member } from './faults.ts'
import { crashLines, type AgentLogFinding, type Observations } from './history.ts'
import { get } from './http.ts'
import { Observer } from './observe.ts'
import { type ChaosOptions, replayCommand } from './options.ts'
import { buildReport, type ChaosReport, type FuzzSummary, writeReport } from './report.ts'
import { buildSchedule, countKinds, type ScheduledFault } from './schedule.ts'
import { settle } from './settle.ts'
import { Workload } from './workload.ts'

/** A killed or paused agent counts as down this long after it is back: the time to be seen alive again. */
const UP_MS = 3_000

export interface RunHooks { progress: (line: string) => void }

function reportDirOf (o: ChaosOptions): string {
  return resolve(o.reportDir ?? join('.discovery', 'chaos', `seed-${o.seed}`))
}

async function startCluster (o: ChaosOptions, dir: string): Promise<string> {
  const clusterDir = join(dir, 'cluster')
  await clusterUp({
    nodes: o.nodes, dir: clusterDir, basePort: 0, foreground: false, json: true, admin: true, netns: o.netns,
    agentArgs: ['--cpu', String(o.cpu), '--mem', `${o.cpu * 2}GiB`, '--replicas', String(o.replicas)],
    ...(o.perProcess > 1 ? { perProcess: o.perProcess } : {}),
    stallMs: 60_000,
    progress: () => {}
  })
  return clusterDir
}

async function members (clusterDir: string, token: string | undefined): Promise<Member[]> {
  const file = readClusterFile(clusterDir)
  if (file == null) throw new OperationError(`no cluster in ${clusterDir}`)
  return await Promise.all(file.nodes.map(async n => {
    const health = await get<{ peerId: string }>(n.api, token, '/v1/health', 10_000)
    if (health == null) throw new OperationError(`agent ${n.index} at ${n.api} does not answer: run \`discovery cluster status --dir ${clusterDir}\``)
    return { index: n.index, api: n.api, listen: `${n.listen}/p2p/${health.peerId}`, dataDir: n.dataDir, log: n.log, pid: n.pid, peerId: health.peerId, state: 'up' as const, logFrom: existsSync(n.log) ? statSync(n.log).size : 0, ...(n.group != null ? { group: n.group } : {}) }
  }))
}

/** Carries out one scheduled fault and its end, waiting for room under max-down (the schedule's estimate of restart times may be short). */
async function carryOut (c: ChaosCluster, f: ScheduledFault, end: ScheduledFault, o: ChaosOptions, deadline: number, deferred: { n: number, skipped: number }): Promise<void> {
  const length = end.atMs - f.atMs
  if (f.kind === 'partition') {
    await c.partition(f.agents, f.peers ?? [], f.oneWay === true)
    await sleepUntil(c, Math.min(c.now() + length, deadline))
    await c.heal([...f.agents, ...(f.peers ?? [])])
    return
  }
  const i = f.agents[0]
  const unit = c.unit(i)
  let waited = false
  while (c.downUnits() >= o.maxDown || unit.some(j => c.members[j].state !== 'up')) {
    waited = true
    if (c.now() + length > deadline) { deferred.skipped++; return }
    await new Promise(r => setTimeout(r, 100))
  }
  if (waited) deferred.n++
  if (f.kind === 'kill') {
    c.kill(i)
    await sleepUntil(c, c.now() + length)
    await c.restart(i)
  } else {
    c.pause(i)
    await sleepUntil(c, c.now() + length)
    await c.resume(i)
  }
}

async function sleepUntil (c: ChaosCluster, atMs: number): Promise<void> {
  const ms = atMs - c.now()
  if (ms > 0) await new Promise(r => setTimeout(r, ms))
}

async function fuzz (c: ChaosCluster, o: ChaosOptions, log: (line: string) => void): Promise<FuzzSummary> {
  // Loaded only when asked for: fast-check and the rogue host are no part of an ordinary run.
  const { fuzzCluster } = await import('./fuzz.ts')
  const targets = c.members.filter(m => m.state === 'up').map(m => ({ api: m.api, listen: m.listen, dataDir: m.dataDir, ...(c.token != null ? { token: c.token } : {}) }))
  const report = await fuzzCluster(targets, { messages: o.fuzz, seed: o.seed, log })
  return { available: true, ...report }
}

function readLogs (c: ChaosCluster): AgentLogFinding[] {
  return c.members.map(m => {
    let text = ''
    try { text = readFileSync(m.log).subarray(m.logFrom).toString('utf8') } catch {}
    return { agent: m.index, lines: crashLines(text) }
  })
}

export async function runChaos (o: ChaosOptions, hooks: RunHooks): Promise<ChaosReport> {
  const dir = reportDirOf(o)
  mkdirSync(dir, { recursive: true })
  const startedAt = new Date()
  hooks.progress(`chaos: seed ${o.seed}; report in ${dir}`)
  const clusterDir = o.attach != null ? resolve(o.attach) : await startCluster(o, dir)
  const file = readClusterFile(clusterDir)
  if (file == null) throw new OperationError(`no cluster in ${clusterDir}: start one with \`discovery cluster up --admin --nodes N --dir ${clusterDir}\``)
  const token = clusterToken(file)
  const t0 = Date.now()
  const c = new ChaosCluster(clusterDir, token, await members(clusterDir, token), t0, 60_000 + 1_000 * file.nodes.length, file.netns)
  const nodes = c.members.length
  try {
    const schedule = buildSchedule({
      nodes, durationMs: o.durationMs, killEveryMs: o.killEveryMs, pauseEveryMs: o.pauseEveryMs, partitionEveryMs: o.partitionEveryMs,
      maxDown: o.maxDown, seed: o.seed, restartDelayMs: [1_000, 3_000], pauseMs: [2_000, 5_000], partitionMs: [4_000, 8_000], upMs: UP_MS,
      units: c.units()
    })
    const observer = new Observer(c, t0, 2_000)
    const workload = new Workload(c, { rate: o.rate, seed: o.seed, targetVms: Math.floor(0.4 * o.cpu * nodes), cpu: 1, memMiB: 256, timeoutMs: 35_000, maxInFlight: 64 })
    observer.start()
    workload.start()
    const deferred = { n: 0, skipped: 0 }
    const progress = setInterval(() => {
      const k = countKinds(c.faults.filter(f => f.ok) as any)
      const failed = workload.history.filter(h => typeof h.status !== 'number' || h.status >= 500).length
      hooks.progress(`chaos ${(c.now() / 1000).toFixed(0)}s/${o.durationMs / 1000}s · faults: ${k.kill} kills, ${k.pause} pauses, ${k.partition} partitions · live ${c.up().length}/${nodes} · requests ${workload.answered} answered, ${failed} failed or uncertain`)
    }, 2_000)
    const tasks = schedule.filter(f => f.kind === 'kill' || f.kind === 'pause' || f.kind === 'partition').map(async f => {
      await sleepUntil(c, f.atMs)
      await carryOut(c, f, schedule.find(e => e.pair === f.pair && e !== f)!, o, o.durationMs, deferred)
    })
    await sleepUntil(c, o.durationMs)
    await workload.stop()
    await Promise.all(tasks)
    await c.liftAll()
    clearInterval(progress)
    const churnStoppedMs = c.now()
    hooks.progress(`chaos: faults over at ${(churnStoppedMs / 1000).toFixed(1)}s; waiting for the cluster to settle`)
    const settled = await settle(c, o.settleTimeoutMs)
    observer.stop()
    observer.checkExits()
    let fuzzed: FuzzSummary | undefined
    if (o.fuzz > 0) fuzzed = await fuzz(c, o, hooks.progress)
    observer.checkExits()
    const peers: Record<string, number> = {}
    for (const m of c.members) peers[m.peerId] = m.index
    const obs: Observations = {
      vmSamples: observer.vmSamples, nodeSamples: observer.nodeSamples, exits: observer.exits, logs: readLogs(c), faults: c.faults,
      settle: { churnStoppedMs, boundMs: o.convergeWithinMs, ...(settled.convergedMs != null ? { convergedMs: settled.convergedMs } : {}), ...(settled.settledMs != null ? { settledMs: settled.settledMs } : {}) },
      final: settled.final, peers
    }
    const result = check(workload.history, obs)
    if (fuzzed?.available === true) {
      for (const v of fuzzed.violations ?? []) result.violations.push({ kind: 'fuzz', message: v })
      if ((fuzzed.crashes ?? 0) > 0) result.violations.push({ kind: 'fuzz', message: `${fuzzed.crashes} agents crashed under hostile input` })
      if ((fuzzed.stateChanges ?? 0) > 0) result.violations.push({ kind: 'fuzz', message: `${fuzzed.stateChanges} state changes under hostile input` })
      result.clean = result.violations.length === 0
    }
    const report = buildReport({
      options: o, command: replayCommand(o), startedAt, dir, clusterDir, nodes, schedule, faults: c.faults, deferred,
      history: workload.history, skippedTicks: workload.skipped, observer, result, settle: obs.settle, fuzz: fuzzed, memberLogs: c.members.map(m => m.log), peerIds: c.members.map(m => m.peerId)
    })
    writeReport(dir, report, workload.history)
    return report
  } finally {
    // Never leave an agent stopped: an attached cluster goes on after the run.
    for (const m of c.members) if (m.state === 'paused') try { process.kill(m.pid, 'SIGCONT') } catch {}
    if (o.attach == null) await clusterDown(clusterDir, 10_000, false).catch(() => 0)
  }
}
