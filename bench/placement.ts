/**
 * `npm run bench -- placement [--nodes 20,50] [--vms 2000] [--concurrency 64] [--json]`
 *
 * For each node count, on a real local cluster started through the CLI:
 * idle RSS and CPU per agent, gossip convergence (time from a create's 201
 * until every agent lists the VM), create throughput and latency with many
 * requests in flight round-robin over every agent's API, then a capacity
 * check (no node's used above its capacity) and peak RSS per agent.
 */
import { parseArgs } from 'node:util'
import { clusterUp, type Cluster } from './lib/cluster.ts'
import { getJson, request } from './lib/http.ts'
import { scrapeAll } from './lib/metrics.ts'
import { cpuPercent, cpuSeconds, pssMiB, statusMiB } from './lib/proc.ts'
import { max, mean, percentile } from '../src/core/stats.ts'
import { fmt } from './lib/stats.ts'
import { keyValues, table } from './lib/table.ts'

/** Every VM the benchmark creates. */
const VM = { cpu: 1, memMiB: 256 }
/** Per-node capacity: this many times the VMs' total, spread over the nodes. */
const HEADROOM = 1.5
const SETTLE_MS = 15_000
const IDLE_SAMPLE_MS = 10_000
const CONVERGENCE_SAMPLES = 20
const CONVERGENCE_GAP_MS = 400
const CONVERGENCE_TIMEOUT_MS = 15_000
/** Base ports of successive runs: API P..P+N-1, libp2p P+1000..P+1000+N-1. */
// Below 32768, where Linux starts handing out ephemeral ports to outgoing connections.
const BASE_PORT = 27_000
const PORT_STRIDE = 2_000

export interface Options { nodes: number[], vms: number, concurrency: number, json: boolean }

const USAGE = `usage: npm run bench -- placement [--nodes 20,50] [--vms 2000] [--concurrency 64] [--json]
  --nodes N,M      one run per node count (default 20,50)
  --vms N          VMs created per run, ${VM.cpu} vCPU / ${VM.memMiB} MiB each (default 2000)
  --concurrency N  creates in flight (default 64)
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
      nodes: { type: 'string', default: '20,50' },
      vms: { type: 'string', default: '2000' },
      concurrency: { type: 'string', default: '64' },
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
    json: values.json
  }
}

const sleep = async (ms: number): Promise<void> => { await new Promise(r => setTimeout(r, ms)) }
const log = (line: string): void => { process.stderr.write(`[placement] ${line}\n`) }
const spread = (values: number[]): { mean: number, max: number } => ({ mean: mean(values), max: max(values) })

export interface RunResult {
  nodes: number
  basePort: number
  capacityPerNode: { cpu: number, memMiB: number }
  clusterUpS: number
  idle: { rssMiB: { mean: number, max: number }, cpuPct: { mean: number, max: number }, sampleS: number }
  convergence: { samples: number, pairs: number, missed: number, p50Ms: number, p99Ms: number, maxMs: number, lastAgentP50Ms: number, lastAgentMaxMs: number }
  load: { vms: number, concurrency: number, wallS: number, vmsPerS: number, createMs: { p50: number, p99: number, max: number }, status: { created: number, noCapacity: number, other: number, error: number }, agentsCpuPct: { sum: number, mean: number } }
  /** Summed over every agent, from the cluster's start to the end of the load. */
  counters: { peerDisconnects: number, attempts: Record<string, number>, placeFailed: number }
  after: { viewsChecked: number, overCapacity: string[], placed: number, expected: number, reservedLeft: { cpu: number, memMiB: number }, rssMiB: { mean: number, max: number }, pssMiB: { mean: number, max: number }, peakRssMiB: { mean: number, max: number } }
}

/**
 * One create through agent 0, then every agent asked at once for the VM with
 * `?wait=` (the agent answers when the VM reaches its view): per-agent delay
 * from the 201, with no polling load on the cluster.
 */
async function convergenceSample (apis: string[]): Promise<number[]> {
  const res = await request('POST', `${apis[0]}/v1/vms`, VM)
  const t0 = performance.now()
  if (res.status !== 201) throw new Error(`convergence create answered HTTP ${res.status}: ${JSON.stringify(res.body)}`)
  const id: string = res.body.id
  return await Promise.all(apis.map(async api => {
    try {
      const seen = await request('GET', `${api}/v1/vms/${id}?wait=${CONVERGENCE_TIMEOUT_MS}ms`, undefined, CONVERGENCE_TIMEOUT_MS + 5_000)
      if (seen.status === 200) return performance.now() - t0
    } catch {}
    return NaN
  }))
}

/** `total` creates, round-robin over the agents, `concurrency` in flight. */
async function load (apis: string[], total: number, concurrency: number): Promise<RunResult['load'] & { latencies: number[] }> {
  const status = { created: 0, noCapacity: 0, other: 0, error: 0 }
  const latencies: number[] = []
  const others = new Map<string, number>()
  let next = 0
  const t0 = performance.now()
  const progress = setInterval(() => { log(`  ${status.created + status.noCapacity + status.other + status.error}/${total} answered, ${status.created} created`) }, 5_000)
  try {
    await Promise.all(Array.from({ length: Math.min(concurrency, total) }, async () => {
      for (let i = next++; i < total; i = next++) {
        try {
          const res = await request('POST', `${apis[i % apis.length]}/v1/vms`, VM, 60_000)
          if (res.status === 201) {
            status.created++
            latencies.push(res.ms)
          } else if (res.status === 503) status.noCapacity++
          else {
            status.other++
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
  }
  const wallS = (performance.now() - t0) / 1000
  if (others.size > 0) log(`  other answers: ${[...others].map(([k, n]) => `${k} ×${n}`).join(', ')}`)
  return {
    vms: total,
    concurrency,
    wallS,
    vmsPerS: status.created / wallS,
    createMs: { p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), max: max(latencies) },
    status,
    agentsCpuPct: { sum: NaN, mean: NaN },
    latencies
  }
}

/** Every agent's view of every node: used never above capacity; this agent's own entry counts its VMs and leases. */
async function checkAfter (apis: string[]): Promise<Pick<RunResult['after'], 'viewsChecked' | 'overCapacity' | 'placed' | 'reservedLeft'>> {
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

async function runOne (nodes: number, basePort: number, opts: Options): Promise<RunResult> {
  const cpu = Math.max(VM.cpu, Math.ceil(HEADROOM * (opts.vms + CONVERGENCE_SAMPLES) * VM.cpu / nodes))
  const memMiB = Math.max(VM.memMiB, cpu * VM.memMiB)
  log(`${nodes} nodes: cluster up on ports ${basePort}+ (${cpu} vCPU / ${memMiB} MiB each)`)
  let cluster: Cluster | undefined
  try {
    cluster = await clusterUp({ nodes, basePort, cpu, memMiB })
    const apis = cluster.nodes.map(m => m.api)
    const pids = cluster.nodes.map(m => m.pid)
    log(`  up in ${fmt(cluster.upMs / 1000)} s (${cluster.dir}); settling ${SETTLE_MS / 1000} s, then idle sample ${IDLE_SAMPLE_MS / 1000} s`)
    await sleep(SETTLE_MS)
    const idleCpu = await cpuPercent(pids, IDLE_SAMPLE_MS)
    const idleRss = pids.map(p => statusMiB(p, 'VmRSS'))

    log(`  convergence: ${CONVERGENCE_SAMPLES} creates through agent 0, every agent waiting for the VM (?wait=)`)
    const pairs: number[] = []
    const lastAgent: number[] = []
    let missed = 0
    for (let s = 0; s < CONVERGENCE_SAMPLES; s++) {
      const delays = await convergenceSample(apis)
      for (const d of delays) if (Number.isNaN(d)) missed++; else pairs.push(d)
      lastAgent.push(delays.some(Number.isNaN) ? Infinity : max(delays))
      await sleep(CONVERGENCE_GAP_MS + Math.random() * CONVERGENCE_GAP_MS)
    }

    log(`  load: ${opts.vms} creates, ${opts.concurrency} in flight`)
    const cpuBefore = pids.map(cpuSeconds)
    const l = await load(apis, opts.vms, opts.concurrency)
    const cpuUsed = pids.map((p, i) => 100 * (cpuSeconds(p) - cpuBefore[i]) / l.wallS)
    const { latencies: _latencies, ...loadResult } = l
    loadResult.agentsCpuPct = { sum: cpuUsed.reduce((a, b) => a + b, 0), mean: mean(cpuUsed) }

    const sum = await scrapeAll(apis)
    const counters = {
      peerDisconnects: sum('discovery_peer_disconnects_total'),
      attempts: Object.fromEntries(['reserved', 'refused', 'unreachable', 'commit-failed'].map(r => [r, sum('discovery_place_attempts_total', { result: r })])),
      placeFailed: sum('discovery_placements_total', { result: 'failed' })
    }
    const checked = await checkAfter(apis)
    const result: RunResult = {
      nodes,
      basePort,
      capacityPerNode: { cpu, memMiB },
      clusterUpS: cluster.upMs / 1000,
      idle: { rssMiB: spread(idleRss), cpuPct: spread(idleCpu), sampleS: IDLE_SAMPLE_MS / 1000 },
      convergence: {
        samples: CONVERGENCE_SAMPLES,
        pairs: pairs.length,
        missed,
        p50Ms: percentile(pairs, 0.5),
        p99Ms: percentile(pairs, 0.99),
        maxMs: max(pairs),
        lastAgentP50Ms: percentile(lastAgent, 0.5),
        lastAgentMaxMs: max(lastAgent)
      },
      load: loadResult,
      counters,
      after: {
        ...checked,
        expected: CONVERGENCE_SAMPLES + loadResult.status.created,
        rssMiB: spread(pids.map(p => statusMiB(p, 'VmRSS'))),
        pssMiB: spread(pids.map(pssMiB)),
        peakRssMiB: spread(pids.map(p => statusMiB(p, 'VmHWM')))
      }
    }
    await cluster.down()
    return result
  } finally {
    await cluster?.down(true)
  }
}

export function capacityOk (r: RunResult): boolean {
  return r.after.overCapacity.length === 0 && r.after.placed === r.after.expected
}

export function runTable (r: RunResult): string {
  const c = r.convergence
  const l = r.load
  const a = r.after
  const ms = (n: number): string => `${fmt(n, 0)} ms`
  const mib = (s: { mean: number, max: number }): string => `mean ${fmt(s.mean)} MiB, max ${fmt(s.max)} MiB`
  return `placement · ${r.nodes} nodes · ${l.vms} VMs of ${VM.cpu} vCPU / ${VM.memMiB} MiB · ${l.concurrency} in flight\n` + keyValues([
    ['cluster up', `${fmt(r.clusterUpS)} s, ${r.capacityPerNode.cpu} vCPU / ${r.capacityPerNode.memMiB} MiB per node, ports ${r.basePort}+`],
    ['idle RSS per agent', mib(r.idle.rssMiB)],
    ['idle CPU per agent', `mean ${fmt(r.idle.cpuPct.mean, 2)} %, max ${fmt(r.idle.cpuPct.max, 2)} % of one core (${r.idle.sampleS} s sample)`],
    ['convergence', `p50 ${ms(c.p50Ms)}, p99 ${ms(c.p99Ms)}, max ${ms(c.maxMs)} over ${c.pairs} agent×sample pairs${c.missed > 0 ? `, ${c.missed} missed` : ''}`],
    ['  last agent', `p50 ${ms(c.lastAgentP50Ms)}, max ${ms(c.lastAgentMaxMs)} over ${c.samples} samples`],
    ['  note', 'from the 201 until each agent answers GET /v1/vms/:id?wait= (no polling)'],
    ['throughput', `${fmt(l.vmsPerS)} VMs/s (${l.status.created} created in ${fmt(l.wallS, 2)} s)`],
    ['create latency', `p50 ${fmt(l.createMs.p50)} ms, p99 ${fmt(l.createMs.p99)} ms, max ${fmt(l.createMs.max)} ms`],
    ['status', `201 ×${l.status.created}, 503 ×${l.status.noCapacity}, other ×${l.status.other}, failed ×${l.status.error}`],
    ['placement attempts', `${Object.entries(r.counters.attempts).map(([k, n]) => `${k} ×${n}`).join(', ')}; peer disconnects ×${r.counters.peerDisconnects}`],
    ['agents CPU under load', `${fmt(l.agentsCpuPct.sum, 0)} % of one core in all, mean ${fmt(l.agentsCpuPct.mean)} % per agent`],
    ['capacity check', `${a.overCapacity.length === 0 ? 'ok' : `${a.overCapacity.length} OVER CAPACITY`}: ${a.viewsChecked} node views; ` +
      `${a.placed} VMs on nodes, ${a.expected} expected${a.placed === a.expected ? '' : ' (MISMATCH)'}; reserved left ${a.reservedLeft.cpu} vCPU / ${a.reservedLeft.memMiB} MiB`],
    ...a.overCapacity.slice(0, 5).map((line): [string, string] => ['  over', line]),
    ['RSS after load', mib(a.rssMiB)],
    ['PSS after load', `${mib(a.pssMiB)} (shared pages counted once across the agents)`],
    ['peak RSS (VmHWM)', mib(a.peakRssMiB)]
  ])
}

export function summaryRows (runs: RunResult[]) {
  return runs.map(r => ({
    nodes: r.nodes,
    vmsPerS: Number(fmt(r.load.vmsPerS)),
    createP50Ms: Number(fmt(r.load.createMs.p50)),
    createP99Ms: Number(fmt(r.load.createMs.p99)),
    convergenceP50Ms: Number(fmt(r.convergence.p50Ms, 0)),
    convergenceP99Ms: Number(fmt(r.convergence.p99Ms, 0)),
    peakRssMeanMiB: Number(fmt(r.after.peakRssMiB.mean)),
    peakRssMaxMiB: Number(fmt(r.after.peakRssMiB.max)),
    pssMeanMiB: Number(fmt(r.after.pssMiB.mean)),
    idleCpuMeanPct: Number(fmt(r.idle.cpuPct.mean, 2)),
    noCapacity: r.load.status.noCapacity,
    capacityOk: capacityOk(r)
  }))
}

export function summaryTable (runs: RunResult[]): string {
  return table(['nodes', 'VMs/s', 'create p50 ms', 'create p99 ms', 'convergence p50/p99 ms', 'peak RSS MiB mean/max', 'PSS MiB mean', 'idle CPU % mean', '503', 'capacity'],
    runs.map(r => [r.nodes, fmt(r.load.vmsPerS), fmt(r.load.createMs.p50), fmt(r.load.createMs.p99), `${fmt(r.convergence.p50Ms, 0)}/${fmt(r.convergence.p99Ms, 0)}`,
      `${fmt(r.after.peakRssMiB.mean)}/${fmt(r.after.peakRssMiB.max)}`, fmt(r.after.pssMiB.mean), fmt(r.idle.cpuPct.mean, 2), r.load.status.noCapacity, capacityOk(r) ? 'ok' : 'FAIL']))
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
      if (!opts.json) process.stdout.write('\n' + runTable(r) + '\n')
    } catch (err: any) {
      failures.push({ nodes, error: err?.message ?? String(err) })
      log(`${nodes} nodes: FAILED: ${err?.message ?? String(err)}`)
    }
  }
  if (opts.json) {
    process.stdout.write(JSON.stringify({ benchmark: 'placement', options: opts, vm: VM, headroom: HEADROOM, runs, summary: summaryRows(runs), failures }, null, 2) + '\n')
  } else if (runs.length > 0) {
    process.stdout.write('\nsummary (RSS: peak per agent after the load)\n' + summaryTable(runs) + '\n')
  }
  return failures.length > 0 || runs.some(r => !capacityOk(r)) ? 1 : 0
}
