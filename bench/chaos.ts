/**
 * `npm run bench -- chaos [--nodes 30] [--runs 1] [--duration 5m] [--kill-every 3s] [--pause-every 30s] [--partition-every 30s] [--replicas 3] [--max-down 2] [--rate 5] [--fuzz 0] [--seed 1] [--per-process 1] [--report DIR] [--json]`
 *
 * The chaos soak: `discovery chaos` at 30 agents, split into runs that fit
 * the machine (each run starts its cluster, carries out its schedule, lets
 * the cluster settle, checks and stops it), run after run with seeds S, S+1…
 * Prints, summed over the runs, the faults injected, the requests, the VMs
 * lost, duplicated and resurrected, over-commit samples and crashes, and
 * the worst time for the views to agree after churn stopped, with each run's
 * verdict and where its HTML report is. The soak (1,000 kills, 50
 * partitions, 100,000 hostile messages) is `--runs 10 --duration 5m
 * --kill-every 3s --fuzz 10000` on a machine that can hold it. With
 * `--per-process K` the agents run K to a process and each kill, pause and
 * restart takes a whole process (`--max-down` counts processes): 100 agents
 * ten to a process fit where 100 processes do not.
 */
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { parseChaosOptions, runChaos } from '../src/chaos/index.ts'
import type { ChaosReport } from '../src/chaos/report.ts'

const USAGE = `usage: npm run bench -- chaos [--nodes 30] [--runs 1] [--duration 5m] [--kill-every 3s] [--pause-every 30s] [--partition-every 30s] [--replicas 3] [--max-down 2] [--rate 5] [--fuzz 0] [--seed 1] [--per-process 1] [--report DIR] [--json]`

export async function main (args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      nodes: { type: 'string', default: '30' },
      runs: { type: 'string', default: '1' },
      duration: { type: 'string', default: '5m' },
      'kill-every': { type: 'string', default: '3s' },
      'pause-every': { type: 'string', default: '30s' },
      'partition-every': { type: 'string', default: '30s' },
      replicas: { type: 'string', default: '3' },
      'max-down': { type: 'string', default: '2' },
      rate: { type: 'string', default: '5' },
      fuzz: { type: 'string', default: '0' },
      seed: { type: 'string', default: '1' },
      'per-process': { type: 'string', default: '1' },
      report: { type: 'string', default: '.discovery/bench-chaos' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false }
    }
  })
  if (values.help) {
    process.stdout.write(USAGE + '\n')
    return 0
  }
  const runs = Number(values.runs)
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`Expected --runs to be a whole number ≥ 1, got \`${values.runs}\``)
  const reports: ChaosReport[] = []
  for (let r = 0; r < runs; r++) {
    const seed = String(Number(values.seed) + r)
    const o = parseChaosOptions({
      nodes: values.nodes, duration: values.duration, killEvery: values['kill-every'], pauseEvery: values['pause-every'], partitionEvery: values['partition-every'],
      replicas: values.replicas, maxDown: values['max-down'], rate: values.rate, fuzz: values.fuzz, seed, perProcess: values['per-process'], report: join(resolve(values.report), `seed-${seed}`)
    })
    process.stderr.write(`[chaos bench] run ${r + 1} of ${runs}: ${o.nodes} agents, seed ${seed}\n`)
    const t = Date.now()
    const report = await runChaos(o, { progress: (line) => { process.stderr.write(`[chaos bench] ${line}\n`) } })
    process.stderr.write(`[chaos bench] run ${r + 1}: ${report.verdict} in ${((Date.now() - t) / 1000).toFixed(0)} s, report ${report.files.html}\n`)
    reports.push(report)
  }
  const sum = (f: (r: ChaosReport) => number): number => reports.reduce((a, r) => a + f(r), 0)
  const max = (f: (r: ChaosReport) => number | undefined): number | undefined => {
    const xs = reports.map(f).filter((x): x is number => x != null)
    return xs.length > 0 ? Math.max(...xs) : undefined
  }
  const figures = {
    runs,
    agents: Number(values.nodes),
    kills: sum(r => r.faults.injected.kill),
    pauses: sum(r => r.faults.injected.pause),
    partitions: sum(r => r.faults.injected.partition),
    oneWayPartitions: sum(r => r.faults.records.filter(f => f.kind === 'partition' && f.ok && f.oneWay === true).length),
    skippedFaults: sum(r => r.faults.skipped),
    requests: sum(r => r.requests.total),
    acknowledged: sum(r => r.counts.acknowledged),
    uncertain: sum(r => Object.values(r.requests.byOp).reduce((a, b) => a + b.uncertain, 0)),
    lost: sum(r => r.counts.lost),
    duplicated: sum(r => r.counts.duplicated),
    resurrected: sum(r => r.counts.resurrected),
    phantom: sum(r => r.counts.phantom),
    overcommitSamples: sum(r => r.counts.overcommitSamples),
    nodeSamples: sum(r => r.counts.nodeSamples),
    crashes: sum(r => r.counts.crashes),
    hostileMessages: sum(r => r.fuzz?.messages ?? 0),
    convergedAfterMsMax: max(r => r.settle.convergedAfterMs),
    detectionLastP50Ms: max(r => r.detection.lastP50Ms),
    detectionLastMaxMs: max(r => r.detection.lastMaxMs),
    vmRestarts: sum(r => r.restarts.count),
    vmRestartsAgain: sum(r => r.restarts.again),
    vmRestartP50MsMax: max(r => r.restarts.p50Ms),
    violations: reports.flatMap(r => r.violations.map(v => `seed ${r.seed}: ${v.kind}: ${v.message}`)),
    reports: reports.map(r => ({ seed: r.seed, verdict: r.verdict, html: r.files.html }))
  }
  if (values.json) process.stdout.write(JSON.stringify(figures, null, 2) + '\n')
  else {
    const { violations, reports: list, ...rest } = figures
    process.stdout.write(Object.entries(rest).map(([k, v]) => `${k.padEnd(22)} ${v ?? '-'}`).join('\n') + '\n')
    process.stdout.write(list.map(r => `seed ${r.seed}: ${r.verdict}  ${r.html}`).join('\n') + '\n')
    if (violations.length > 0) process.stdout.write('violations:\n' + violations.map(v => `  ${v}`).join('\n') + '\n')
  }
  return reports.every(r => r.verdict === 'clean') ? 0 : 1
}
