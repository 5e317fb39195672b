/**
 * The placement benchmark's report: per node count, each figure of the agents
 * beside the bare-libp2p baseline's and as a ratio to it (lower is better for
 * every figure but throughput), the agents' own counters and capacity check,
 * the goals of issue 11 that apply to the node count, and the CPU profile.
 */
import type { RunResult, SystemRun } from '../placement.ts'
import { fmt } from './stats.ts'
import { keyValues, table } from './table.ts'

export interface Goal { what: string, target: string, measured: string, met: boolean }

export function goals (r: RunResult): Goal[] {
  const a = r.agents
  const out: Goal[] = []
  if (r.nodes === 100) {
    out.push({ what: 'time to come up', target: '≤ 60 s', measured: `${fmt(a.upS)} s`, met: a.upS <= 60 })
    out.push({ what: 'idle CPU of the whole cluster', target: '≤ 50 % of one core', measured: `${fmt(a.idle.cpuPctSum)} %`, met: a.idle.cpuPctSum <= 50 })
    out.push({ what: 'RSS per agent under load', target: '≤ 100 MiB', measured: `mean ${fmt(a.load.rssMiB.mean)} MiB, max ${fmt(a.load.rssMiB.max)} MiB`, met: a.load.rssMiB.mean <= 100 })
    // RSS counts whole, in each agent, the pages of the Node binary they all share: the memory each agent adds is its own (USS).
    out.push({ what: 'memory of its own (USS) per agent under load', target: '≤ 100 MiB', measured: `mean ${fmt(a.load.ussMiB.mean)} MiB, max ${fmt(a.load.ussMiB.max)} MiB`, met: a.load.ussMiB.mean <= 100 })
    out.push(...convergenceGoals(a, 500))
  }
  if (r.nodes === 50) out.push(...convergenceGoals(a, 250))
  if (r.nodes === 20) {
    const ratio = r.baseline != null ? r.baseline.load.vmsPerS / a.load.vmsPerS : NaN
    out.push({ what: 'placement throughput', target: '≥ 1,000 VMs/s, or within 2× of the baseline', measured: `${fmt(a.load.vmsPerS)} VMs/s${Number.isFinite(ratio) ? `, baseline ${fmt(ratio, 2)}× as fast` : ''}`, met: a.load.vmsPerS >= 1000 || ratio <= 2 })
  }
  return out
}

/**
 * Convergence judged two ways, as memory is (RSS and USS): by the answers to
 * `?wait=` (what a client asking every agent sees, the benchmark's own
 * hundred requests and answers on the same cores included), and by each
 * view's own clock (when the agent merged the VM: bench/lib/view-events.ts),
 * which is what converging means. A view that never said so fails the second.
 */
function convergenceGoals (a: SystemRun, targetMs: number): Goal[] {
  const c = a.convergence
  const out: Goal[] = [{ what: 'convergence p99 (answers to ?wait=)', target: `≤ ${targetMs} ms`, measured: `${fmt(c.p99Ms, 0)} ms${c.missed > 0 ? `, ${c.missed} missed` : ''}`, met: c.missed === 0 && c.p99Ms <= targetMs }]
  if (Number.isFinite(c.view.p99Ms)) out.push({ what: 'convergence p99 (the views\' own clock)', target: `≤ ${targetMs} ms`, measured: `${fmt(c.view.p99Ms, 0)} ms${c.view.missed > 0 ? `, ${c.view.missed} missed` : ''}`, met: c.view.missed === 0 && c.view.p99Ms <= targetMs })
  return out
}

interface Row { figure: string, get: (s: SystemRun) => number, digits?: number, unit?: string }

const ROWS: Row[] = [
  { figure: 'time to come up', get: s => s.upS, unit: 's' },
  { figure: 'idle CPU, all processes', get: s => s.idle.cpuPctSum, unit: '% of a core' },
  { figure: 'idle CPU per agent', get: s => s.idle.cpuPct.mean, digits: 2, unit: '% of a core' },
  { figure: 'idle RSS per agent', get: s => s.idle.rssMiB.mean, unit: 'MiB' },
  { figure: 'idle PSS per agent', get: s => s.idle.pssMiB.mean, unit: 'MiB' },
  { figure: 'idle USS per agent', get: s => s.idle.ussMiB.mean, unit: 'MiB' },
  { figure: 'idle messages sent per agent', get: s => s.idle.messagesPerAgentS ?? NaN, digits: 2, unit: 'a second' },
  { figure: 'idle connections opened, all', get: s => s.idle.connectionsOpenedPerS ?? NaN, digits: 2, unit: 'a second' },
  { figure: 'convergence p50', get: s => s.convergence.p50Ms, digits: 0, unit: 'ms' },
  { figure: 'convergence p99', get: s => s.convergence.p99Ms, digits: 0, unit: 'ms' },
  { figure: 'convergence p50, views\' own time', get: s => s.convergence.view.p50Ms, digits: 0, unit: 'ms' },
  { figure: 'convergence p99, views\' own time', get: s => s.convergence.view.p99Ms, digits: 0, unit: 'ms' },
  { figure: 'creates per second', get: s => s.load.vmsPerS, unit: 'VMs/s' },
  { figure: 'create p50', get: s => s.load.createMs.p50, unit: 'ms' },
  { figure: 'create p99', get: s => s.load.createMs.p99, unit: 'ms' },
  { figure: 'CPU under load, all processes', get: s => s.load.cpuPctSum, digits: 0, unit: '% of a core' },
  { figure: 'RSS per agent under load', get: s => s.load.rssMiB.mean, unit: 'MiB' },
  { figure: 'PSS per agent under load', get: s => s.load.pssMiB.mean, unit: 'MiB' },
  { figure: 'USS per agent under load', get: s => s.load.ussMiB.mean, unit: 'MiB' }
]

export function runTable (r: RunResult, capacityOk: boolean): string {
  const a = r.agents
  const b = r.baseline
  const head = `placement · ${r.nodes} nodes · ${r.vms} VMs of 1 vCPU / 256 MiB · ${r.concurrency} in flight · ${r.capacityPerNode.cpu} vCPU / ${r.capacityPerNode.memMiB} MiB per node${r.agentsPerProcess > 1 ? ` · agents ${r.agentsPerProcess} to a process (CPU and memory per agent: the process's ÷ ${r.agentsPerProcess})` : ''}`
  const rows = ROWS.map(row => {
    const va = row.get(a)
    const vb = b != null ? row.get(b) : NaN
    return [`${row.figure} (${row.unit})`, fmt(va, row.digits ?? 1), fmt(vb, row.digits ?? 1), Number.isFinite(vb) && vb !== 0 ? `${fmt(va / vb, 2)}×` : '-']
  })
  const comparison = table(['figure', 'agents', 'baseline', 'agents / baseline'], rows)
  const load = (s: SystemRun | undefined): string => s == null ? '-' : `${fmt(s.loadAverage.up)} / ${fmt(s.loadAverage.idle)} / ${fmt(s.loadAverage.load)}`
  const details = keyValues([
    ['machine load average (up / idle / load)', `agents ${load(a)}, baseline ${load(b)}`],
    ['convergence', `agents: max ${fmt(a.convergence.maxMs, 0)} ms over ${a.convergence.pairs} pairs${a.convergence.missed > 0 ? `, ${a.convergence.missed} missed` : ''}; last agent p50 ${fmt(a.convergence.lastAgentP50Ms, 0)} ms; the first create (not counted) ${fmt(a.convergence.firstLastAgentMs, 0)} ms to the last agent` +
      (b != null ? `; baseline: max ${fmt(b.convergence.maxMs, 0)} ms${b.convergence.missed > 0 ? `, ${b.convergence.missed} missed` : ''}, first create ${fmt(b.convergence.firstLastAgentMs, 0)} ms` : '')],
    ['status', `201 ×${a.load.status.created}, 503 ×${a.load.status.noCapacity}, other ×${a.load.status.other}, failed ×${a.load.status.error}` +
      (b != null ? ` (baseline: 201 ×${b.load.status.created}, other ×${b.load.status.other + b.load.status.noCapacity}, failed ×${b.load.status.error})` : '')],
    ['placement attempts', `${Object.entries(a.counters.attempts).map(([k, n]) => `${k} ×${n}`).join(', ')}; peer disconnects ×${a.counters.peerDisconnects}; connections per agent after the load ${fmt(a.counters.connections)}`],
    ['capacity check', `${capacityOk ? 'ok' : 'FAILED'}: ${a.after.overCapacity.length} over capacity in ${a.after.viewsChecked} node views; ${a.after.placed} VMs on nodes, ${a.after.expected} expected${a.after.mayAlsoExist > 0 ? ` (and up to ${a.after.mayAlsoExist} more: creates left uncertain)` : ''}; reserved left ${a.after.reservedLeft.cpu} vCPU / ${a.after.reservedLeft.memMiB} MiB`],
    ...a.after.overCapacity.slice(0, 5).map((line): [string, string] => ['  over', line]),
    ['peak RSS per agent (VmHWM)', `mean ${fmt(a.after.peakRssMiB.mean)} MiB, max ${fmt(a.after.peakRssMiB.max)} MiB`],
    ...r.goals.map((g): [string, string] => [`goal: ${g.what}`, `${g.met ? 'met' : 'MISSED'}: ${g.measured} (goal ${g.target})`])
  ])
  let out = `${head}\n${comparison}\n${details}`
  if (r.profile != null) {
    const p = r.profile
    out += `\n  CPU profile of one agent under load (${fmt(p.busyMs, 0)} ms busy in ${10} s), self time:\n` +
      p.byPart.slice(0, 12).map(([k, ms]) => `    ${fmt(100 * ms / p.busyMs, 1).padStart(5)} %  ${k}`).join('\n') + '\n  top functions:\n' +
      p.byFunction.slice(0, 15).map(([k, ms]) => `    ${fmt(100 * ms / p.busyMs, 1).padStart(5)} %  ${k}`).join('\n')
  }
  return out
}

export function summaryTable (runs: RunResult[]): string {
  const pair = (va: number, vb: number | undefined, digits = 1): string => `${fmt(va, digits)}${vb != null && Number.isFinite(vb) && vb !== 0 ? ` (${fmt(va / vb, 2)}×)` : ''}`
  return table(['nodes', 'up s', 'idle CPU % (all)', 'idle msgs/agent/s', 'RSS MiB (load)', 'PSS MiB (load)', 'USS MiB (load)', 'VMs/s', 'create p50/p99 ms', 'convergence p50/p99 ms', 'goals'],
    runs.map(r => {
      const a = r.agents
      const b = r.baseline
      return [
        r.nodes,
        pair(a.upS, b?.upS),
        pair(a.idle.cpuPctSum, b?.idle.cpuPctSum),
        fmt(a.idle.messagesPerAgentS ?? NaN, 2),
        pair(a.load.rssMiB.mean, b?.load.rssMiB.mean),
        pair(a.load.pssMiB.mean, b?.load.pssMiB.mean),
        pair(a.load.ussMiB.mean, b?.load.ussMiB.mean),
        pair(a.load.vmsPerS, b?.load.vmsPerS),
        `${pair(a.load.createMs.p50, b?.load.createMs.p50, 0)} / ${pair(a.load.createMs.p99, b?.load.createMs.p99, 0)}`,
        `${pair(a.convergence.p50Ms, b?.convergence.p50Ms, 0)} / ${pair(a.convergence.p99Ms, b?.convergence.p99Ms, 0)}`,
        r.goals.length === 0 ? '-' : `${r.goals.filter(g => g.met).length}/${r.goals.length} met`
      ]
    }))
}
