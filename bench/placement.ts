/**
 * `npm run bench -- placement [--nodes 20,50,100] [--vms 2000] [--concurrency 64] [--no-baseline] [--profile] [--per-process K] [--agent-args=…] [--json]`
 *
 * For each node count, in the same run and on the same number of processes:
 * first a baseline of bare libp2p processes (bench/bare-node.ts: the agent's
 * transport, encryption, muxer and gossipsub, one request/response per create,
 * no Discovery logic), then a real local cluster of agents started through the
 * CLI. For both: time to come up, idle CPU of the whole set and memory per
 * process, gossip convergence, creates as fast as they are taken (throughput,
 * latency, memory under load); each figure of the agents beside the
 * baseline's and as a ratio to it, so that a reader on any machine knows how
 * far the agents are from what the machine itself can do. Then the agents'
 * capacity check (no node over capacity, every VM created on a node) and the
 * goals of issue 11. With `--profile`, a CPU profile of one agent under load.
 */
import { parseArgs } from 'node:util'
import { bareClusterUp, type BareCluster } from './lib/bare-cluster.ts'
import { clusterUp, type Cluster } from './lib/cluster.ts'
import { getJson } from './lib/http.ts'
import { convergence, type Convergence, CONVERGENCE_UNCOUNTED, idle, type Idle, load, type Load, loadAverage, quietMachine, settle, type Spread } from './lib/measure.ts'
import { scrapeAll } from './lib/metrics.ts'
import { profileAgent, type ProfileSummary } from './lib/profile.ts'
import { statusMiB } from './lib/proc.ts'
import { goals, runTable, summaryTable, type Goal } from './lib/placement-report.ts'

/** Every VM the benchmark creates. */
export const VM = { cpu: 1, memMiB: 256 }
/** Per-node capacity: this many times the VMs' total, spread over the nodes. */
const HEADROOM = 1.5
const SETTLE_MS = 15_000
/** After SETTLE_MS, 5 s windows of the cluster's CPU until it stops falling (measure.ts `settled`), 2 minutes at most. */
const SETTLE_WINDOW_MS = 5_000
const SETTLE_MAX_MS = 120_000
const IDLE_SAMPLE_MS = 10_000
/**
 * Settled also means, for the agents, that they opened at most this many connections an agent a second in the last
 * window (measure.ts `settledQuiet`): 1 a second for 100 agents, between the 2–5 a second of the minutes after up
 * and the 0.4 of an idle cluster.
 */
const QUIET_OPENED_PER_AGENT_S = 0.01
/**
 * The messages an idle agent sends, counted from its `/metrics`: the failure detector's, its state publishes
 * (gossipsub forwards each to the others), and view syncs asked and answered. The issue's goal: flat per agent as
 * agents are added.
 */
const IDLE_MESSAGES: Array<[string, Record<string, string>?]> = [
  ['discovery_detector_messages_total', { direction: 'sent' }],
  ['discovery_gossip_published_total'],
  ['discovery_view_syncs_total'],
  ['discovery_view_syncs_answered_total']
]
const CONVERGENCE_SAMPLES = 20
const PROFILE_MS = 10_000
/** Base ports of successive runs: API P..P+N-1, libp2p P+1000..P+1000+N-1. */
// Below 32768, where Linux starts handing out ephemeral ports to outgoing connections.
const BASE_PORT = 27_000
const PORT_STRIDE = 2_000

export interface Options { nodes: number[], vms: number, concurrency: number, json: boolean, baseline: boolean, profile: boolean, agentArgs: string[], perProcess: number }

const USAGE = `usage: npm run bench -- placement [--nodes 20,50,100] [--vms 2000] [--concurrency 64] [--no-baseline] [--profile] [--per-process K] [--agent-args=…] [--json]
  --nodes N,M      one run per node count (default 20,50,100)
  --vms N          VMs created per run, ${VM.cpu} vCPU / ${VM.memMiB} MiB each (default 2000)
  --concurrency N  creates in flight (default 64)
  --no-baseline    skip the bare-libp2p baseline
  --profile        a CPU profile of one agent during the load (${PROFILE_MS / 1000} s), summed by self time
  --per-process K  the agents K to a process (cluster up --per-process K); their CPU and memory per agent are the
                   process's divided by K (default 1: one agent per process, like the baseline)
  --agent-args=…   flags for every agent, e.g. "--agent-args=--max-connections none" (with "=", since they start with a dash)
  --json           print the results as JSON (progress goes to stderr)`

function positive (flag: string, value: string, maxValue: number): number {
  const n = Number(value)
  if (!/^\d+$/.test(value.trim()) || n < 1 || n > maxValue) throw new Error(`expected ${flag} to be a whole number from 1 to ${maxValue}, got \`${value}\`\n${USAGE}`)
  return n
}

export function parseOptions (args: string[]): Options | undefined {
  const { values } = parseArgs({
    args,
    options: {
      nodes: { type: 'string', default: '20,50,100' },
      vms: { type: 'string', default: '2000' },
      concurrency: { type: 'string', default: '64' },
      'no-baseline': { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
      'agent-args': { type: 'string', default: '' },
      'per-process': { type: 'string', default: '1' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false }
    },
    strict: true,
    allowPositionals: false
  })
  if (values.help) return undefined
  return {
    nodes: values.nodes.split(',').filter(s => s.trim() !== '').map(s => positive('--nodes', s, 1000)),
    vms: positive('--vms', values.vms, 1_000_000),
    concurrency: positive('--concurrency', values.concurrency, 10_000),
    json: values.json,
    baseline: !values['no-baseline'],
    profile: values.profile,
    agentArgs: values['agent-args'].split(/\s+/).filter(a => a !== ''),
    perProcess: positive('--per-process', values['per-process'], 100)
  }
}

const sleep = async (ms: number): Promise<void> => { await new Promise(r => setTimeout(r, ms)) }
const log = (line: string): void => { process.stderr.write(`[placement] ${line}\n`) }

/** What is measured the same way for the agents and for the baseline; load averages say how busy the machine was. */
export interface SystemRun {
  upS: number
  idle: Idle
  convergence: Convergence
  load: Load
  loadAverage: { up: number, idle: number, load: number }
}

export interface AgentsRun extends SystemRun {
  /** Summed over every agent, from the cluster's start to the end of the load. */
  counters: { peerDisconnects: number, attempts: Record<string, number>, placeFailed: number, connections: number }
  after: { viewsChecked: number, overCapacity: string[], placed: number, expected: number, mayAlsoExist: number, reservedLeft: { cpu: number, memMiB: number }, peakRssMiB: { mean: number, max: number } }
}

export interface RunResult {
  nodes: number
  basePort: number
  capacityPerNode: { cpu: number, memMiB: number }
  vms: number
  concurrency: number
  /** Agents to a process (`--per-process`): their CPU and memory per agent are the process's divided by it. */
  agentsPerProcess: number
  agents: AgentsRun
  baseline?: SystemRun
  profile?: ProfileSummary
  goals: Goal[]
}

/** Every agent's view of every node: used never above capacity; this agent's own entry counts its VMs and leases. */
async function checkAfter (apis: string[]): Promise<Pick<AgentsRun['after'], 'viewsChecked' | 'overCapacity' | 'placed' | 'reservedLeft'>> {
  const overCapacity: string[] = []
  let viewsChecked = 0
  let placed = 0
  const reservedLeft = { cpu: 0, memMiB: 0 }
  for (const api of apis) {
    const { peerId } = await getJson<{ peerId: string }>(`${api}/v1/health`)
    const nodes = await getJson<any[]>(`${api}/v1/nodes`)
    for (const n of nodes) {
      viewsChecked++
      if (n.used.cpu > n.capacity.cpu * n.cpuOvercommit || n.used.memMiB > n.capacity.memMiB) {
        overCapacity.push(`${api} sees …${String(n.peerId).slice(-8)} at ${n.used.cpu}/${n.capacity.cpu} vCPU, ${n.used.memMiB}/${n.capacity.memMiB} MiB`)
      }
      if (n.peerId === peerId) {
        placed += n.vmCount
        reservedLeft.cpu += n.reserved.cpu
        reservedLeft.memMiB += n.reserved.memMiB
      }
    }
  }
  return { viewsChecked, overCapacity, placed, reservedLeft }
}

/** Idle, convergence and load, the same for both: `query` marks the convergence creates (the baseline announces those). */
async function measure (what: string, apis: string[], pids: number[], upS: number, upLoad: number, opts: Options, query: string, agents: { counted: boolean, during?: () => Promise<void> }): Promise<SystemRun> {
  const { counted, during } = agents
  log(`  ${what}: up in ${upS.toFixed(1)} s; settling ${SETTLE_MS / 1000} s, then until its CPU stops falling${counted ? ' and it opens few connections' : ''}, then idle sample ${IDLE_SAMPLE_MS / 1000} s`)
  await sleep(SETTLE_MS)
  // The settle's last read of every agent's /metrics is also the idle sample's start: one scrape, not two in a row.
  let lastScrape: Awaited<ReturnType<typeof scrapeAll>> | undefined
  const opened = async (): Promise<number> => {
    lastScrape = await scrapeAll(apis)
    return lastScrape('discovery_connections_opened_total')
  }
  const calm = await settle(pids, SETTLE_WINDOW_MS, SETTLE_MAX_MS, counted ? { opened, maxPerWindow: QUIET_OPENED_PER_AGENT_S * apis.length * SETTLE_WINDOW_MS / 1000 } : undefined)
  log(`  ${what}: settled after ${(SETTLE_MS / 1000 + calm.waitedS).toFixed(0)} s (CPU of all, % of one core, each 5 s: ${calm.windowsPct.map(p => p.toFixed(0)).join(', ')}` +
    `${calm.openedPerWindow != null ? `; connections opened: ${calm.openedPerWindow.join(', ')}` : ''})`)
  const idleLoad = loadAverage()
  const before = counted ? lastScrape ?? await scrapeAll(apis) : undefined
  const idleRun: Idle = await idle(pids, IDLE_SAMPLE_MS)
  if (before != null) {
    const after = await scrapeAll(apis)
    const delta = (name: string, labels?: Record<string, string>): number => after(name, labels) - before(name, labels)
    idleRun.messagesPerAgentS = IDLE_MESSAGES.reduce((t, [name, labels]) => t + delta(name, labels), 0) / apis.length / idleRun.sampleS
    idleRun.connectionsOpenedPerS = delta('discovery_connections_opened_total') / idleRun.sampleS
  }
  log(`  ${what}: convergence, ${CONVERGENCE_SAMPLES} creates through process 0, every process waiting for the VM (?wait=)`)
  const conv = await convergence(apis, CONVERGENCE_SAMPLES, VM, query)
  log(`  ${what}: load, ${opts.vms} creates, ${opts.concurrency} in flight`)
  const loadLoad = loadAverage()
  const [l] = await Promise.all([load(apis, pids, opts.vms, opts.concurrency, VM, log), during?.()])
  return { upS, idle: idleRun, convergence: conv, load: l, loadAverage: { up: upLoad, idle: idleLoad, load: loadLoad } }
}

/** Before each system comes up: the machine quiet (below a fifth of its cores busy over 2 s), for at most 60 s. */
const QUIET_BUSY_PCT = 20
const QUIET_WINDOW_MS = 2_000
const QUIET_MAX_MS = 60_000

async function quietBeforeUp (what: string): Promise<void> {
  const q = await quietMachine(QUIET_BUSY_PCT, QUIET_WINDOW_MS, QUIET_MAX_MS)
  log(`  ${what}: machine ${q.quiet ? 'quiet' : 'still busy'} before coming up (${q.busyPct.toFixed(0)} % of its cores busy over ${QUIET_WINDOW_MS / 1000} s, after ${q.waitedS.toFixed(0)} s)`)
}

async function runBaseline (nodes: number, opts: Options): Promise<SystemRun> {
  log(`${nodes} nodes: baseline, ${nodes} bare libp2p processes`)
  let bare: BareCluster | undefined
  try {
    await quietBeforeUp('baseline')
    bare = await bareClusterUp({ nodes, log })
    const upLoad = loadAverage()
    return await measure('baseline', bare.nodes.map(m => m.api), bare.nodes.map(m => m.pid), bare.upMs / 1000, upLoad, opts, '?announce=1', { counted: false })
  } finally {
    await bare?.down()
  }
}

async function runAgents (nodes: number, basePort: number, opts: Options, capacity: { cpu: number, memMiB: number }): Promise<{ run: AgentsRun, profile?: ProfileSummary }> {
  log(`${nodes} nodes: agents, cluster up on ports ${basePort}+ (${capacity.cpu} vCPU / ${capacity.memMiB} MiB each)`)
  let cluster: Cluster | undefined
  try {
    const k = opts.perProcess
    await quietBeforeUp('agents')
    cluster = await clusterUp({ nodes, basePort, ...capacity, extra: [...opts.agentArgs, ...(k > 1 ? ['--per-process', String(k)] : [])], ...(opts.profile ? { env: { NODE_OPTIONS: '--inspect-port=0' } } : {}) })
    const upLoad = loadAverage()
    const apis = cluster.nodes.map(m => m.api)
    // K agents to a process share its pid: each process is measured once, its figures divided by K after.
    const pids = [...new Set(cluster.nodes.map(m => m.pid))]
    let profile: ProfileSummary | undefined
    const profiled = cluster.nodes[Math.min(1, cluster.nodes.length - 1)]
    const during = opts.profile
      ? async () => {
        await sleep(2_000)
        log(`  profiling agent ${profiled.index} for ${PROFILE_MS / 1000} s`)
        profile = await profileAgent(profiled.pid, profiled.log, PROFILE_MS).catch((err) => { log(`  no profile: ${err.message}`); return undefined })
      }
      : undefined
    const run = perAgent(await measure('agents', apis, pids, cluster.upMs / 1000, upLoad, opts, '', { counted: true, during }), k)
    const sum = await scrapeAll(apis)
    const counters = {
      peerDisconnects: sum('discovery_peer_disconnects_total'),
      attempts: Object.fromEntries(['reserved', 'refused', 'unreachable', 'commit-failed'].map(r => [r, sum('discovery_place_attempts_total', { result: r })])),
      placeFailed: sum('discovery_placements_total', { result: 'failed' }),
      connections: sum('discovery_connections') / nodes
    }
    const checked = await checkAfter(apis)
    // A create answered 504 placement_uncertain, or not answered at all, may have placed its VM all the same.
    const after = { ...checked, expected: CONVERGENCE_UNCOUNTED + CONVERGENCE_SAMPLES + run.load.status.created, mayAlsoExist: run.load.status.uncertain + run.load.status.error, peakRssMiB: { mean: 0, max: 0 } }
    const hwm = pids.map(p => statusMiB(p, 'VmHWM') / k)
    after.peakRssMiB = { mean: hwm.reduce((a, b) => a + b, 0) / hwm.length, max: Math.max(...hwm) }
    await cluster.down()
    return { run: { ...run, counters, after }, profile }
  } finally {
    await cluster?.down(true)
  }
}

/** With K agents to a process: CPU and memory per agent, the process's divided by K. */
export function perAgent (run: SystemRun, k: number): SystemRun {
  if (k === 1) return run
  const per = (x: Spread): Spread => ({ mean: x.mean / k, max: x.max / k })
  const { idle, load } = run
  return {
    ...run,
    idle: { ...idle, cpuPct: per(idle.cpuPct), rssMiB: per(idle.rssMiB), pssMiB: per(idle.pssMiB), ussMiB: per(idle.ussMiB) },
    load: { ...load, rssMiB: per(load.rssMiB), pssMiB: per(load.pssMiB), ussMiB: per(load.ussMiB) }
  }
}

async function runOne (nodes: number, basePort: number, opts: Options): Promise<RunResult> {
  const cpu = Math.max(VM.cpu, Math.ceil(HEADROOM * (opts.vms + CONVERGENCE_UNCOUNTED + CONVERGENCE_SAMPLES) * VM.cpu / nodes))
  const capacity = { cpu, memMiB: Math.max(VM.memMiB, cpu * VM.memMiB) }
  const baseline = opts.baseline ? await runBaseline(nodes, opts) : undefined
  const { run: agents, profile } = await runAgents(nodes, basePort, opts, capacity)
  const r: RunResult = { nodes, basePort, capacityPerNode: capacity, vms: opts.vms, concurrency: opts.concurrency, agentsPerProcess: opts.perProcess, agents, goals: [] }
  if (baseline != null) r.baseline = baseline
  if (profile != null) r.profile = profile
  r.goals = goals(r)
  return r
}

/** No node over capacity, and every VM acknowledged placed, with no more beyond them than the creates left uncertain. */
export function capacityOk (r: RunResult): boolean {
  const a = r.agents.after
  return a.overCapacity.length === 0 && a.placed >= a.expected && a.placed <= a.expected + a.mayAlsoExist
}

export async function main (args: string[]): Promise<number> {
  const opts = parseOptions(args)
  if (opts == null) {
    process.stdout.write(USAGE + '\n')
    return 0
  }
  const runs: RunResult[] = []
  const failures: Array<{ nodes: number, error: string }> = []
  for (const [i, nodes] of opts.nodes.entries()) {
    try {
      const r = await runOne(nodes, BASE_PORT + i * PORT_STRIDE, opts)
      runs.push(r)
      if (!opts.json) process.stdout.write('\n' + runTable(r, capacityOk(r)) + '\n')
    } catch (err: any) {
      failures.push({ nodes, error: err?.message ?? String(err) })
      log(`${nodes} nodes: FAILED: ${err?.message ?? String(err)}`)
    }
  }
  if (opts.json) {
    process.stdout.write(JSON.stringify({ benchmark: 'placement', options: opts, vm: VM, headroom: HEADROOM, runs, failures }, null, 2) + '\n')
  } else if (runs.length > 0) {
    process.stdout.write('\nsummary: agents (agents / baseline)\n' + summaryTable(runs) + '\n')
  }
  return failures.length > 0 || runs.some(r => !capacityOk(r)) ? 1 : 0
}
