/**
 * `npm run bench -- per-process [--nodes 100] [--per-process 10] [--json]`
 *
 * The same number of agents started twice by `cluster up`, one agent per
 * process (the baseline, in the same run) and K to a process (`--per-process
 * K`): the time to come up (every agent seeing every other alive), the idle
 * CPU of the whole cluster once it has settled, memory per agent (resident,
 * and the memory of its own: each process's USS shared by its K agents), and
 * the convergence of a VM created through agent 0 in every view, each beside
 * the baseline's and as a ratio to it.
 */
import { parseArgs } from 'node:util'
import { clusterUp } from './lib/cluster.ts'
import { convergence, idle, loadAverage, settle } from './lib/measure.ts'
import { statusMiB, ussMiB } from './lib/proc.ts'

const SETTLE_MS = 15_000
const SETTLE_WINDOW_MS = 5_000
const SETTLE_MAX_MS = 120_000
const IDLE_SAMPLE_MS = 10_000
const CONVERGENCE_SAMPLES = 10
const log = (line: string): void => { process.stderr.write(`[per-process] ${line}\n`) }

interface Figures { k: number, processes: number, upS: number, idlePctOfCore: number, rssMiBPerAgent: number, ussMiBPerAgent: number, convergenceP50Ms: number, convergenceP99Ms: number, loadAverage: number }

async function one (nodes: number, k: number): Promise<Figures> {
  log(`${nodes} agents, ${k} per process: cluster up`)
  const cluster = await clusterUp({ nodes, basePort: 0, cpu: 8, memMiB: 16_384, waitS: 120, extra: k > 1 ? ['--per-process', String(k)] : [] })
  try {
    const pids = [...new Set(cluster.nodes.map(m => m.pid))]
    log(`  up in ${(cluster.upMs / 1000).toFixed(1)} s (${pids.length} processes); settling`)
    await new Promise(resolve => setTimeout(resolve, SETTLE_MS))
    const calm = await settle(pids, SETTLE_WINDOW_MS, SETTLE_MAX_MS)
    log(`  settled (CPU of all, % of one core, each 5 s: ${calm.windowsPct.map(p => p.toFixed(0)).join(', ')}); idle sample ${IDLE_SAMPLE_MS / 1000} s`)
    const load = loadAverage()
    const quiet = await idle(pids, IDLE_SAMPLE_MS)
    const sum = (f: (pid: number) => number): number => pids.reduce((a, p) => a + (f(p) || 0), 0)
    const rss = sum(p => statusMiB(p, 'VmRSS')) / nodes
    const uss = sum(ussMiB) / nodes
    log(`  convergence: ${CONVERGENCE_SAMPLES} creates through agent 0, every agent waiting for the VM`)
    const conv = await convergence(cluster.nodes.map(m => m.api), CONVERGENCE_SAMPLES, { cpu: 1, memMiB: 256 }, '')
    return { k, processes: pids.length, upS: cluster.upMs / 1000, idlePctOfCore: quiet.cpuPctSum, rssMiBPerAgent: rss, ussMiBPerAgent: uss, convergenceP50Ms: conv.p50Ms, convergenceP99Ms: conv.p99Ms, loadAverage: load }
  } finally {
    await cluster.down()
  }
}

export async function main (args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { nodes: { type: 'string', default: '100' }, 'per-process': { type: 'string', default: '10' }, json: { type: 'boolean', default: false } } })
  const nodes = Number(values.nodes)
  const k = Number(values['per-process'])
  if (!Number.isInteger(nodes) || nodes < 2) throw new Error(`Expected --nodes to be a whole number ≥ 2, got \`${values.nodes}\``)
  if (!Number.isInteger(k) || k < 2 || k > 100) throw new Error(`Expected --per-process to be from 2 to 100, got \`${values['per-process']}\``)
  const base = await one(nodes, 1)
  const grouped = await one(nodes, k)
  const ratio = (a: number, b: number): string => b > 0 ? `${(a / b).toFixed(2)}×` : '-'
  if (values.json === true) {
    process.stdout.write(JSON.stringify({ nodes, baseline: base, grouped }, null, 2) + '\n')
    return 0
  }
  const row = (name: string, f: (x: Figures) => number, unit: string, digits = 1): string =>
    `${name.padEnd(30)} ${f(base).toFixed(digits).padStart(9)} ${f(grouped).toFixed(digits).padStart(9)} ${unit.padEnd(6)} ${ratio(f(grouped), f(base)).padStart(7)}`
  process.stdout.write([
    `${nodes} agents: one per process (baseline) against ${k} per process`,
    `${''.padEnd(30)} ${'1/proc'.padStart(9)} ${`${k}/proc`.padStart(9)} ${''.padEnd(6)} ${'ratio'.padStart(7)}`,
    row('processes', x => x.processes, '', 0),
    row('up (each sees all alive)', x => x.upS, 's'),
    row('idle CPU, whole cluster', x => x.idlePctOfCore, '% core'),
    row('resident per agent', x => x.rssMiBPerAgent, 'MiB'),
    row('own memory (USS) per agent', x => x.ussMiBPerAgent, 'MiB'),
    row('convergence p50', x => x.convergenceP50Ms, 'ms', 0),
    row('convergence p99', x => x.convergenceP99Ms, 'ms', 0),
    row('load average (idle sample)', x => x.loadAverage, '')
  ].join('\n') + '\n')
  return 0
}
