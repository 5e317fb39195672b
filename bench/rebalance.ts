/**
 * `npm run bench -- rebalance [--hosts 1024,10000] [--scenarios vmplaces,vmplaces-10g] [--duration 3600] [--seed 7] [--json]`:
 * the side-by-side table (none, centralized, dvms on one trace) of each
 * scenario — `vmplaces` (VMPlaceS's 1 Gbit/s links and dirty-page classes)
 * and `vmplaces-10g` (10 Gbit/s, intensity 0.3) — at each host count, from
 * the simulator, with its wall time and peak memory. Figures, never pass/fail.
 */
import { runSimulation } from '../src/sim/run.ts'
import { reportTable } from '../src/cli/sim-report.ts'
import { LINKS } from '../src/sim/network.ts'
import { SCENARIOS } from '../src/sim/scenarios.ts'

function arg (args: string[], name: string, fallback: string): string {
  const i = args.indexOf(`--${name}`)
  return i >= 0 && args[i + 1] != null ? args[i + 1] : fallback
}

export async function main (args: string[]): Promise<number> {
  if (args.includes('--help')) {
    process.stdout.write('usage: npm run bench -- rebalance [--hosts 1024,10000] [--scenarios vmplaces,vmplaces-10g] [--duration 3600] [--seed 7] [--latency lan|wan] [--json]\n')
    return 0
  }
  const hostCounts = arg(args, 'hosts', '1024,10000').split(',').map(Number)
  const durationS = Number(arg(args, 'duration', '3600'))
  const seed = Number(arg(args, 'seed', '7'))
  const link = LINKS[arg(args, 'latency', 'lan')]
  const scenarios = arg(args, 'scenarios', 'vmplaces,vmplaces-10g').split(',').map(name => SCENARIOS[name])
  if (hostCounts.some(n => !Number.isInteger(n) || n < 2) || !(durationS > 0) || link == null || scenarios.some(s => s == null)) {
    process.stderr.write(`bench rebalance: expected --hosts a comma list of integers ≥ 2, --duration > 0, --latency lan or wan, --scenarios a comma list of ${Object.keys(SCENARIOS).join(', ')}\n`)
    return 2
  }
  const reports = []
  for (const hosts of hostCounts) for (const scenario of scenarios) {
    const started = performance.now()
    const report = runSimulation({ scenario, hosts, vms: hosts * scenario.vmsPerHost, durationS, seed, link: { ...link }, algorithms: ['none', 'centralized', 'dvms'], monitorMs: 1000, centralPeriodMs: 30_000, centralDelay: 'measured' },
      (algorithm, f) => { if (process.stderr.isTTY) process.stderr.write(`\r${scenario.name} · ${hosts} hosts · ${algorithm.padEnd(12)} ${(f * 100).toFixed(0)}%   `) })
    const wallS = (performance.now() - started) / 1000
    const rssMiB = process.memoryUsage().rss / 1024 / 1024
    if (process.stderr.isTTY) process.stderr.write('\r' + ' '.repeat(70) + '\r')
    reports.push({ ...report, wallS, rssMiB })
    if (!args.includes('--json')) {
      const d = report.results.find(r => r.algorithm === 'dvms')
      const c = report.results.find(r => r.algorithm === 'centralized')
      process.stdout.write(reportTable(report) + '\n')
      process.stdout.write(`whole run: ${wallS.toFixed(1)} s of wall time for ${scenario.name}, ${hosts} hosts × ${durationS} simulated s (3 algorithms), RSS ${rssMiB.toFixed(0)} MiB\n`)
      if (d != null && c != null && c.overloadS > 0) process.stdout.write(`${scenario.name}, ${hosts} hosts: dvms / centralized cumulated overload time ${(d.overloadS / c.overloadS).toFixed(3)}\n`)
      process.stdout.write('\n')
    }
  }
  if (args.includes('--json')) process.stdout.write(JSON.stringify(reports, null, 2) + '\n')
  return 0
}
