/**
 * `npm run bench -- healing [--nodes 50] [--kills 5] [--stops 5] [--minutes 10] [--concurrency 64] [--seed 1] [--vms-per-kill N] [--keep-logs] [--json]`
 *
 * Failure detection at N agent processes on this machine (`discovery cluster
 * up --base-port 0`), every agent's `peer.*` events followed over
 * `GET /v1/events` (their `atMs` is the agent's own clock, the machine's):
 * 1. SIGKILL, `--kills` times, a different agent each time: the time from
 *    the signal until every other agent has marked it dead (and each
 *    agent's own time); the agent is then started again on its data dir and
 *    its addresses, and the cluster waits until every agent sees it alive.
 * 2. SIGSTOP, `--stops` times: the same, then SIGCONT, and the time until
 *    every agent sees it alive again (it refutes).
 * 3. False positives: `--minutes` of the placement benchmark's load (1 vCPU /
 *    256 MiB creates round-robin through every agent, `--concurrency` in
 *    flight, the oldest deleted beyond `--keep` VMs so that it can run that
 *    long) with nobody killed: every death declared is a false positive.
 * "VMs running again": with `--vms-per-kill` > 0, VMs are created first on
 * every agent, and the time until each of a killed agent's runs elsewhere
 * (restarted by a holder of its record) is measured: on its new owner, and
 * in another agent's cluster view; each restart is split with the
 * restarter's `vm.restarted` (declared dead, placing, committed).
 * The idle figures are sampled once the cluster has settled (its CPU no
 * longer falling over 5 s windows, bench/lib/measure.ts `settle`).
 */
import { spawn } from 'node:child_process'
import { closeSync, openSync } from 'node:fs'
import { loadavg } from 'node:os'
import { parseArgs } from 'node:util'
import { AGENT_NODE_FLAGS, agentEnv, BIN } from '../src/cli/cluster.ts'
import { percentile } from '../src/core/stats.ts'
import { seededRng } from '../src/core/rng.ts'
import { clusterUp, type Cluster, type Member } from './lib/cluster.ts'
import { request } from './lib/http.ts'
import { metricValue, scrapeAll } from './lib/metrics.ts'
import { fmt } from './lib/stats.ts'
import { settle } from './lib/measure.ts'
import { cpuSeconds } from './lib/proc.ts'
import { keyValues, table } from './lib/table.ts'
import { followPeers, type PeerEvents } from './lib/peer-events.ts'

export interface Options { nodes: number, kills: number, stops: number, minutes: number, concurrency: number, keep: number, seed: number, vmsPerKill: number, idleS: number, agentArgs: string[], keepLogs: boolean, json: boolean }

const USAGE = `usage: npm run bench -- healing [--nodes 50] [--kills 5] [--stops 5] [--minutes 10] [--concurrency 64] [--keep 1000] [--seed 1] [--vms-per-kill 0] [--keep-logs] [--json]
  --nodes N         agent processes (default 50)
  --kills N         SIGKILL trials, each on another agent, restarted after (default 5)
  --stops N         SIGSTOP trials, resumed after (default 5)
  --minutes M       minutes of create load during which false positives are counted (default 10; 0 skips it)
  --concurrency N   creates in flight during the load (default 64, the placement benchmark's)
  --keep N          VMs kept during the load: beyond, the oldest is deleted (default 1000)
  --seed S          which agents are killed and stopped, in which order (default 1)
  --vms-per-kill N  VMs of the killed agent timed until they run elsewhere (2N per agent are created first; default 0)
  --idle-seconds S  how long the idle cluster's CPU and messages are sampled (default 10)
  --agent-args=…   flags for every agent, e.g. "--agent-args=--max-connections none --observers none" (the full mesh; with "=", since they start with a dash)
  --keep-logs       keep the cluster's folder (the agents' logs) after the run; it is kept anyway when a trial is
                    missed or the load saw a death
  --json            the results as JSON (progress on stderr)`

const VM = { cpu: 1, memMiB: 256 }
/** How long a trial may take before it is reported as not detected. */
const TRIAL_TIMEOUT_MS = 60_000
/** Quiet time between trials: whatever the last one set moving settles. */
const SETTLE_MS = 5_000

const log = (line: string): void => { process.stderr.write(`[healing] ${line}\n`) }
const sleep = async (ms: number): Promise<void> => { await new Promise(r => setTimeout(r, ms)) }

function count (flag: string, value: string, min: number, max: number): number {
  const n = Number(value)
  if (!/^\d+(\.\d+)?$/.test(value.trim()) || n < min || n > max) throw new Error(`expected ${flag} to be a number from ${min} to ${max}, got \`${value}\`\n${USAGE}`)
  return n
}

export function parseOptions (args: string[]): Options | undefined {
  const { values } = parseArgs({
    args,
    options: {
      nodes: { type: 'string', default: '50' },
      kills: { type: 'string', default: '5' },
      stops: { type: 'string', default: '5' },
      minutes: { type: 'string', default: '10' },
      concurrency: { type: 'string', default: '64' },
      keep: { type: 'string', default: '1000' },
      seed: { type: 'string', default: '1' },
      'vms-per-kill': { type: 'string', default: '0' },
      'idle-seconds': { type: 'string', default: '10' },
      'agent-args': { type: 'string', default: '' },
      'keep-logs': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false }
    },
    strict: true,
    allowPositionals: false
  })
  if (values.help) return undefined
  const nodes = count('--nodes', values.nodes, 3, 500)
  return {
    nodes,
    kills: count('--kills', values.kills, 0, nodes - 1),
    stops: count('--stops', values.stops, 0, nodes - 1),
    minutes: count('--minutes', values.minutes, 0, 24 * 60),
    concurrency: count('--concurrency', values.concurrency, 1, 10_000),
    keep: count('--keep', values.keep, 1, 1_000_000),
    seed: count('--seed', values.seed, 0, 2 ** 31 - 1),
    vmsPerKill: count('--vms-per-kill', values['vms-per-kill'], 0, 10_000),
    idleS: count('--idle-seconds', values['idle-seconds'], 1, 3600),
    agentArgs: values['agent-args'].split(/\s+/).filter(a => a !== ''),
    keepLogs: values['keep-logs'],
    json: values.json
  }
}

export interface Trial {
  signal: 'SIGKILL' | 'SIGSTOP'
  victim: number
  /** Agents that did not show the victim alive when the signal was sent (then its death there is no news, and missed). */
  notAliveBefore: number
  /** Each other agent's time to mark it dead, ms (NaN: not within the trial's timeout). */
  deadMs: number[]
  /** Until every other agent had: the slowest of deadMs. */
  everyMs: number
  /** After SIGCONT, or after the restart: until every other agent saw it alive again. */
  aliveAgainMs: number
  /** Time until each of its VMs ran again on its new owner (empty without --vms-per-kill). */
  vmsRunningAgainMs: number[]
  /** Time until each showed running elsewhere in another agent's cluster view. */
  vmsSeenRunningMs: number[]
  /** Each restart of its VMs (`vm.restarted`), ms after the signal: when the restarter declared it dead, when it began placing it (after asking the other holders for tombstones), when the new owner committed it. */
  restarts: Array<{ vm: string, restarter: number, node: number, attempts: number, detectedMs: number, placingMs: number, committedMs: number }>
}

/**
 * The time from `t0` until each of `vmIds` (placed on the killed agent) runs
 * again: on its new owner (found from the restarter's `vm.restarted`, asked
 * for its own VMs), and in `observer`'s cluster-wide view (what gossip has
 * told the others). NaN for a VM that does not within the timeout.
 */
export async function vmsRunningAgain (observer: string, apiOf: Map<string, string>, peers: PeerEvents, victimPeerId: string, vmIds: string[], t0: number, timeoutMs = 30_000): Promise<{ onOwnerMs: number[], inViewMs: number[] }> {
  const onOwner = new Map<string, number>()
  const inView = new Map<string, number>()
  while ((onOwner.size < vmIds.length || inView.size < vmIds.length) && Date.now() - t0 < timeoutMs) {
    const owners = new Set<string>()
    for (const e of peers.restartsOf(victimPeerId, t0)) {
      const { id, node } = e.data as { id: string, node: string }
      if (vmIds.includes(id) && !onOwner.has(id) && apiOf.has(node)) owners.add(node)
    }
    await Promise.all([...owners].map(async node => {
      const res = await request<Array<{ id: string, state: string }>>('GET', `${apiOf.get(node)!}/v1/vms`).catch(() => undefined)
      for (const vm of res?.body ?? []) if (vmIds.includes(vm.id) && vm.state === 'running' && !onOwner.has(vm.id)) onOwner.set(vm.id, Date.now() - t0)
    }))
    if (inView.size < vmIds.length) {
      const res = await request<Array<{ id: string, node: string, state: string }>>('GET', `${observer}/v1/vms?scope=cluster`).catch(() => undefined)
      for (const vm of res?.body ?? []) {
        if (vmIds.includes(vm.id) && vm.node !== victimPeerId && vm.state === 'running' && !inView.has(vm.id)) inView.set(vm.id, Date.now() - t0)
      }
    }
    await sleep(100)
  }
  return { onOwnerMs: vmIds.map(id => onOwner.get(id) ?? NaN), inViewMs: vmIds.map(id => inView.get(id) ?? NaN) }
}

/** Starts a killed agent again, as `cluster up` did: same data dir, same addresses, bootstrapped to agent 0. */
function restart (m: Member, bootstrap: string, cpu: number, memMiB: number, extra: string[]): number {
  const fd = openSync(m.log, 'a')
  const api = m.api.replace(/^http:\/\//, '')
  const child = spawn(process.execPath, [...AGENT_NODE_FLAGS, BIN, 'agent', '--listen', m.listen, '--api', api, '--data-dir', m.dataDir, '--json',
    '--bootstrap', bootstrap, '--cpu', String(cpu), '--mem', `${memMiB}MiB`, ...extra], { env: agentEnv(), detached: true, stdio: ['ignore', fd, fd] })
  closeSync(fd)
  child.unref()
  return child.pid ?? 0
}

async function trial (cluster: Cluster, peers: PeerEvents, ids: string[], apiOf: Map<string, string>, victim: number, signal: 'SIGKILL' | 'SIGSTOP', opts: Options, capacity: { cpu: number, memMiB: number }): Promise<Trial> {
  const m = cluster.nodes[victim]
  const others = cluster.nodes.map((_, i) => i).filter(i => i !== victim)
  let vmIds: string[] = []
  if (signal === 'SIGKILL' && opts.vmsPerKill > 0) {
    const res = await request<Array<{ id: string }>>('GET', `${m.api}/v1/vms`)
    vmIds = (res.body ?? []).slice(0, opts.vmsPerKill).map(v => v.id)
  }
  const notAliveBefore = peers.notAlive(others, ids[victim])
  const t0 = Date.now()
  process.kill(m.pid, signal)
  const running = vmIds.length > 0 ? vmsRunningAgain(cluster.nodes[others[0]].api, apiOf, peers, ids[victim], vmIds, t0) : Promise.resolve({ onOwnerMs: [], inViewMs: [] })
  const deadMs = await peers.waitAll(others, 'peer.dead', ids[victim], t0, TRIAL_TIMEOUT_MS)
  const t1 = Date.now()
  if (signal === 'SIGSTOP') process.kill(m.pid, 'SIGCONT')
  else m.pid = restart(m, `${cluster.nodes[0].listen}/p2p/${ids[0]}`, capacity.cpu, capacity.memMiB, opts.agentArgs)
  const aliveMs = await peers.waitAll(others, 'peer.alive', ids[victim], t1, TRIAL_TIMEOUT_MS)
  const { onOwnerMs, inViewMs } = await running
  const restarts = peers.restartsOf(ids[victim], t0).map(e => {
    const { id, node, attempts, ms, placeMs } = e.data as { id: string, node: string, attempts?: number, ms: number, placeMs?: number }
    return { vm: id, restarter: e.agent, node: ids.indexOf(node), attempts: attempts ?? NaN, detectedMs: e.atMs - t0 - ms, placingMs: e.atMs - t0 - (placeMs ?? NaN), committedMs: e.atMs - t0 }
  })
  return { signal, victim, notAliveBefore, deadMs, everyMs: Math.max(...deadMs), aliveAgainMs: Math.max(...aliveMs), vmsRunningAgainMs: onOwnerMs, vmsSeenRunningMs: inViewMs, restarts }
}

interface LoadResult { minutes: number, creates: number, createP50Ms: number, createP99Ms: number, statuses: Record<string, number>, deletes: number }

/** The placement benchmark's creates, for `minutes`, the oldest deleted beyond `keep`. */
async function load (apis: string[], opts: Options): Promise<LoadResult> {
  const end = Date.now() + opts.minutes * 60_000
  const kept: string[] = []
  const latencies: number[] = []
  const statuses: Record<string, number> = {}
  let deletes = 0
  let i = 0
  const progress = setInterval(() => { log(`  load: ${latencies.length} created, ${deletes} deleted, ${Math.max(0, Math.round((end - Date.now()) / 1000))} s left`) }, 30_000)
  try {
    await Promise.all(Array.from({ length: opts.concurrency }, async () => {
      while (Date.now() < end) {
        const api = apis[i++ % apis.length]
        try {
          const res = await request('POST', `${api}/v1/vms`, VM, 60_000)
          // An error's code too (`503 no_capacity` and `503 peer_unreachable` are different stories).
          const code = res.status >= 400 && typeof res.body?.error === 'string' ? `${res.status} ${res.body.error as string}` : String(res.status)
          statuses[code] = (statuses[code] ?? 0) + 1
          if (res.status === 201) {
            latencies.push(res.ms)
            kept.push(res.body.id)
          }
        } catch (err: any) {
          statuses[err.name] = (statuses[err.name] ?? 0) + 1
        }
        while (kept.length > opts.keep) {
          const id = kept.shift()!
          await request('DELETE', `${apis[i++ % apis.length]}/v1/vms/${id}`, undefined, 60_000).then(() => { deletes++ }, () => {})
        }
      }
    }))
  } finally {
    clearInterval(progress)
  }
  return { minutes: opts.minutes, creates: latencies.length, createP50Ms: percentile(latencies, 0.5), createP99Ms: percentile(latencies, 0.99), statuses, deletes }
}

/** Where a restart's time goes: until the restarter declared the owner dead, until it began placing the VM, until the new owner committed it. */
function restartSummary (rs: Trial['restarts']): Record<string, number> {
  const d = rs.map(r => r.detectedMs)
  const p = rs.map(r => r.placingMs)
  const c = rs.map(r => r.committedMs)
  return { count: rs.length, detectedP50Ms: q(d, 0.5), detectedP99Ms: q(d, 0.99), placingP50Ms: q(p, 0.5), placingP99Ms: q(p, 0.99), committedP50Ms: q(c, 0.5), committedP99Ms: q(c, 0.99) }
}

const q = (xs: number[], p: number): number => { const ok = xs.filter(Number.isFinite); return ok.length === 0 ? NaN : percentile(ok, p) }

export async function main (args: string[]): Promise<number> {
  const opts = parseOptions(args)
  if (opts == null) {
    process.stdout.write(USAGE + '\n')
    return 0
  }
  // Room for the kept VMs and those created for the restart timings, half as much again: the load must not run into
  // a full cluster (at 50 agents, 32 vCPUs each held 1,500 of them, and creates turned into fast 503s).
  const vms = opts.keep + 2 * opts.vmsPerKill * opts.nodes
  const capacity = { cpu: Math.max(32, Math.ceil(vms * VM.cpu * 1.5 / opts.nodes)), memMiB: Math.ceil(vms * VM.memMiB * 1.5 / opts.nodes / 1024) * 1024 + 8192 }
  const loadBefore = loadavg()
  log(`starting ${opts.nodes} agents (load average ${loadBefore.map(x => x.toFixed(1)).join(' ')})`)
  // A shared machine may take minutes to start fifty agents (each needs about 2 s of CPU): wait longer than `cluster up`'s default.
  const cluster = await clusterUp({ nodes: opts.nodes, basePort: 0, cpu: capacity.cpu, memMiB: capacity.memMiB, waitS: 60 + 6 * opts.nodes, extra: opts.agentArgs })
  let peers: PeerEvents | undefined
  const trials: Trial[] = []
  /** A trial missed, or a false death under load: the agents' logs are kept for a look. */
  let keepLogs = opts.keepLogs
  try {
    log(`cluster up in ${(cluster.upMs / 1000).toFixed(0)} s`)
    const apis = cluster.nodes.map(m => m.api)
    const ids = await Promise.all(apis.map(async a => (await request<{ peerId: string }>('GET', `${a}/v1/health`)).body.peerId))
    const apiOf = new Map(ids.map((id, i) => [id, apis[i]]))
    peers = await followPeers(apis)
    await sleep(SETTLE_MS)
    // A cluster just started still converges for a minute or more: the idle figures wait until its CPU stops falling.
    const calm = await settle(cluster.nodes.map(m => m.pid), 5_000, 120_000)
    log(`settled after ${(SETTLE_MS / 1000 + calm.waitedS).toFixed(0)} s (CPU of all agents, % of one core, each 5 s: ${calm.windowsPct.map(p => p.toFixed(0)).join(', ')})`)
    // What the idle cluster costs, detector included: CPU per agent and the detector's messages per agent per second.
    const idleScrape0 = await scrapeAll(apis)
    const cpu0 = cluster.nodes.map(m => cpuSeconds(m.pid))
    const idleT0 = Date.now()
    await sleep(opts.idleS * 1000)
    const idleS = (Date.now() - idleT0) / 1000
    const idleCpuPct = 100 * cluster.nodes.reduce((sum, m, i) => sum + cpuSeconds(m.pid) - cpu0[i], 0) / idleS / opts.nodes
    const conns = await Promise.all(apis.map(async api => metricValue(await (await fetch(`${api}/metrics`, { signal: AbortSignal.timeout(10_000) })).text(), 'discovery_connections')))
    const connections = { mean: conns.reduce((a, b) => a + b, 0) / conns.length, min: Math.min(...conns), max: Math.max(...conns) }
    log(`connections per agent: mean ${connections.mean.toFixed(1)}, min ${connections.min}, max ${connections.max}`)
    const idleMsgs = ((await scrapeAll(apis))('discovery_detector_messages_total', { direction: 'sent' }) - idleScrape0('discovery_detector_messages_total', { direction: 'sent' })) / idleS / opts.nodes
    log(`idle over ${idleS.toFixed(0)} s: ${(idleCpuPct * opts.nodes).toFixed(1)} % of one core for all agents, ${idleCpuPct.toFixed(2)} % CPU per agent, ${idleMsgs.toFixed(1)} detector messages sent per agent per second`)
    const rng = seededRng(opts.seed)
    const order = cluster.nodes.map((_, i) => i).filter(i => i !== 0)
    for (let i = order.length - 1; i > 0; i--) { const j = Math.floor(rng.next() * (i + 1)); [order[i], order[j]] = [order[j], order[i]] }
    if (opts.vmsPerKill > 0) {
      // VMs on every agent before the kills: twice what each trial follows per agent, placed through every agent in turn.
      const total = 2 * opts.vmsPerKill * opts.nodes
      let next = 0
      await Promise.all(Array.from({ length: 16 }, async () => {
        while (next < total) {
          const i = next++
          await request('POST', `${apis[i % apis.length]}/v1/vms`, VM, 60_000).catch(() => undefined)
        }
      }))
      log(`${total} VMs created for the restart timings`)
      // As after each trial: the burst's replication pushes and gossip settle before the first signal.
      await sleep(SETTLE_MS)
    }
    const plan: Array<'SIGKILL' | 'SIGSTOP'> = []
    for (let k = 0; k < Math.max(opts.kills, opts.stops); k++) {
      if (k < opts.kills) plan.push('SIGKILL')
      if (k < opts.stops) plan.push('SIGSTOP')
    }
    for (const [k, signal] of plan.entries()) {
      const victim = order[k % order.length]
      const t = await trial(cluster, peers, ids, apiOf, victim, signal, opts, capacity)
      log(`${signal} agent ${victim}: dead everywhere after ${fmt(t.everyMs, 0)} ms (p50 of agents ${fmt(q(t.deadMs, 0.5), 0)} ms), alive again everywhere ${fmt(t.aliveAgainMs, 0)} ms after ${signal === 'SIGSTOP' ? 'SIGCONT' : 'its restart'}${t.notAliveBefore > 0 ? ` (not alive in ${t.notAliveBefore} views before the signal)` : ''}`)
      trials.push(t)
      await sleep(SETTLE_MS)
    }
    const scrapeBefore = await scrapeAll(apis)
    const before = { deaths: scrapeBefore('discovery_detector_deaths_total'), suspicions: scrapeBefore('discovery_detector_suspicions_total'), refutations: scrapeBefore('discovery_detector_refutations_total'), stopped: scrapeBefore('discovery_detector_processes_stopped_total') }
    const deadEventsBefore = peers.count('peer.dead')
    let loadResult: LoadResult | undefined
    let fp: { deaths: number, suspicions: number, refutations: number, deadEvents: number, stoppedSeen: number } | undefined
    if (opts.minutes > 0) {
      log(`create load for ${opts.minutes} min, ${opts.concurrency} in flight: counting false positives`)
      loadResult = await load(apis, opts)
      await sleep(SETTLE_MS)
      const after = await scrapeAll(apis)
      fp = {
        deaths: after('discovery_detector_deaths_total') - before.deaths,
        suspicions: after('discovery_detector_suspicions_total') - before.suspicions,
        refutations: after('discovery_detector_refutations_total') - before.refutations,
        deadEvents: peers.count('peer.dead') - deadEventsBefore,
        // Nothing is stopped during the load: any count here is the kernel's word misread.
        stoppedSeen: after('discovery_detector_processes_stopped_total') - before.stopped
      }
      if (fp.deaths > 0) keepLogs = true
    }
    const summary = (signal: 'SIGKILL' | 'SIGSTOP'): Record<string, number> => {
      const ts = trials.filter(t => t.signal === signal)
      const every = ts.map(t => t.everyMs)
      const each = ts.flatMap(t => t.deadMs)
      return { trials: ts.length, everyP50Ms: q(every, 0.5), everyP99Ms: q(every, 0.99), eachP50Ms: q(each, 0.5), eachP99Ms: q(each, 0.99), missed: each.filter(x => !Number.isFinite(x)).length, aliveAgainP50Ms: q(ts.map(t => t.aliveAgainMs), 0.5) }
    }
    const result = {
      nodes: opts.nodes,
      profile: 'local',
      loadAverageBefore: loadBefore,
      clusterUpS: cluster.upMs / 1000,
      agentArgs: opts.agentArgs,
      idle: { seconds: idleS, cpuPctAllAgents: idleCpuPct * opts.nodes, cpuPctPerAgent: idleCpuPct, detectorMessagesPerAgentPerS: idleMsgs },
      connections,
      kill: summary('SIGKILL'),
      stop: summary('SIGSTOP'),
      vmsRunningAgain: opts.vmsPerKill > 0 ? { p50Ms: q(trials.flatMap(t => t.vmsRunningAgainMs), 0.5), p99Ms: q(trials.flatMap(t => t.vmsRunningAgainMs), 0.99), missed: trials.flatMap(t => t.vmsRunningAgainMs).filter(x => !Number.isFinite(x)).length } : 'not measured (--vms-per-kill 0)',
      vmsSeenRunning: opts.vmsPerKill > 0 ? { p50Ms: q(trials.flatMap(t => t.vmsSeenRunningMs), 0.5), p99Ms: q(trials.flatMap(t => t.vmsSeenRunningMs), 0.99) } : 'not measured (--vms-per-kill 0)',
      restarts: restartSummary(trials.flatMap(t => t.restarts)),
      load: loadResult,
      falsePositives: fp,
      trials
    }
    if (opts.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n')
    else {
      process.stdout.write(keyValues([['agents', String(opts.nodes)], ['profile', 'local'], ['load average before', loadBefore.map(x => x.toFixed(1)).join(' ')], ['cluster up', `${fmt(result.clusterUpS, 0)} s`], ['agent flags', opts.agentArgs.join(' ') || '(defaults)'], ['connections per agent', `mean ${fmt(connections.mean, 1)}, min ${connections.min}, max ${connections.max}`], [`idle over ${fmt(idleS, 0)} s, all agents`, `${fmt(idleCpuPct * opts.nodes, 1)} % of one core`], ['idle, per agent', `${fmt(idleCpuPct, 2)} % CPU, ${fmt(idleMsgs, 1)} detector messages sent a second`]]) + '\n\n')
      const row = (name: string, s: Record<string, number>): string[] => [name, String(s.trials), `${fmt(s.everyP50Ms, 0)} / ${fmt(s.everyP99Ms, 0)} ms`, `${fmt(s.eachP50Ms, 0)} / ${fmt(s.eachP99Ms, 0)} ms`, String(s.missed), `${fmt(s.aliveAgainP50Ms, 0)} ms`]
      process.stdout.write(table(['signal', 'trials', 'every agent: p50 / p99', 'each agent: p50 / p99', 'missed', 'alive again p50'], [row('SIGKILL', result.kill), row('SIGSTOP', result.stop)]) + '\n')
      if (loadResult != null && fp != null) {
        process.stdout.write('\n' + keyValues([
          ['load', `${loadResult.minutes} min, ${loadResult.creates} creates (p50 ${fmt(loadResult.createP50Ms, 0)} ms, p99 ${fmt(loadResult.createP99Ms, 0)} ms), ${loadResult.deletes} deletes, answers ${JSON.stringify(loadResult.statuses)}`],
          ['false positives (deaths declared)', String(fp.deaths)],
          ['suspicions (all refuted unless a death)', String(fp.suspicions)],
          ['refutations', String(fp.refutations)],
          ['peers the kernel showed stopped', String(fp.stoppedSeen)]
        ]) + '\n')
      }
      const again = result.vmsRunningAgain
      const seen = result.vmsSeenRunning
      process.stdout.write(`\nVMs running again on their new owner: ${typeof again === 'string' ? again : `p50 ${fmt(again.p50Ms, 0)} ms, p99 ${fmt(again.p99Ms, 0)} ms, ${again.missed} not within 30 s`}\n`)
      if (typeof seen !== 'string') process.stdout.write(`shown running in another agent's view: p50 ${fmt(seen.p50Ms, 0)} ms, p99 ${fmt(seen.p99Ms, 0)} ms\n`)
      const r = result.restarts
      if (r.count > 0) process.stdout.write(`restarts (${r.count}, ms after the signal, p50 / p99): restarter declared the owner dead ${fmt(r.detectedP50Ms, 0)} / ${fmt(r.detectedP99Ms, 0)}, began placing ${fmt(r.placingP50Ms, 0)} / ${fmt(r.placingP99Ms, 0)}, new owner committed ${fmt(r.committedP50Ms, 0)} / ${fmt(r.committedP99Ms, 0)}\n`)
    }
    return 0
  } finally {
    peers?.close()
    await cluster.down(keepLogs || trials.some(t => t.deadMs.some(x => !Number.isFinite(x))))
  }
}
