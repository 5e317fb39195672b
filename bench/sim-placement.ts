/**
 * `npm run bench -- sim-placement [--nodes 1000,10000] [--vms 100000] [--latency lan,wan] [--rate R] [--seed 1] [--json]`:
 * the simulator's `placement` scenario at each node count and link: VMs
 * created through random agents whose views come from simulated state
 * gossip. Prints what the scenario reports (placed, refused, false refusals,
 * candidates asked, over-commits, age of the state placed with, state
 * messages per node per second) with the wall time of each run, and how
 * msgsPerNodePerS grows with the node count. Figures, never pass/fail.
 */
import { LINKS } from '../src/sim/network.ts'
import { placementDefaults, type PlacementReport, runPlacement } from '../src/sim/placement-run.ts'
import { table } from './lib/table.ts'

function arg (args: string[], name: string, fallback: string): string {
  const i = args.indexOf(`--${name}`)
  return i >= 0 && args[i + 1] != null ? args[i + 1] : fallback
}

export async function main (args: string[]): Promise<number> {
  if (args.includes('--help')) {
    process.stdout.write('usage: npm run bench -- sim-placement [--nodes 1000,10000] [--vms 100000] [--latency lan,wan] [--rate R (default: the VMs over 300 s)] [--seed 1] [--json]\n')
    return 0
  }
  const nodeCounts = arg(args, 'nodes', '1000,10000').split(',').map(Number)
  const vms = Number(arg(args, 'vms', '100000'))
  const profiles = arg(args, 'latency', 'lan,wan').split(',')
  const seed = Number(arg(args, 'seed', '1'))
  const rate = args.includes('--rate') ? Number(arg(args, 'rate', '')) : undefined
  if (nodeCounts.some(n => !Number.isInteger(n) || n < 2) || !Number.isInteger(vms) || vms < 1 || profiles.some(p => p !== 'lan' && p !== 'wan') || (rate != null && !(rate > 0))) {
    process.stderr.write('bench sim-placement: expected --nodes a comma list of integers ≥ 2, --vms an integer ≥ 1, --latency a comma list of lan and wan, --rate > 0\n')
    return 2
  }
  const reports: PlacementReport[] = []
  for (const profile of profiles as Array<'lan' | 'wan'>) {
    for (const nodes of nodeCounts) {
      const d = placementDefaults(nodes, vms)
      const report = runPlacement({ nodes, vms, seed, profile, link: { ...LINKS[profile] }, ratePerS: rate ?? d.ratePerS, hostCpu: d.hostCpu, hostMemMiB: d.hostMemMiB },
        f => { if (process.stderr.isTTY) process.stderr.write(`\r${profile} · ${nodes} nodes ${(f * 100).toFixed(0)}%   `) })
      if (process.stderr.isTTY) process.stderr.write('\r' + ' '.repeat(40) + '\r')
      reports.push(report)
    }
  }
  if (args.includes('--json')) {
    process.stdout.write(JSON.stringify(reports, null, 2) + '\n')
    return 0
  }
  const r0 = reports[0]
  process.stdout.write(`placement · ${vms} VMs at ${r0.ratePerS} a second · seed ${seed} · RSS ${(process.memoryUsage().rss / 1024 / 1024).toFixed(0)} MiB at the end\n\n`)
  process.stdout.write(table(
    ['link', 'nodes', 'host vCPU', 'placed', 'refused', 'falseRefusals', 'uncertain', 'attemptsMean', 'overcommits', 'stalenessP50Ms', 'stalenessP99Ms', 'msgsPerNodePerS', 'simulated s', 'wall s'],
    reports.map(r => [r.profile, r.nodes, r.hostCpu, r.placed, r.refused, r.falseRefusals, r.uncertain, r.attemptsMean, r.overcommits, r.stalenessP50Ms, r.stalenessP99Ms, r.msgsPerNodePerS, r.simulatedS, r.wallS])
  ) + '\n')
  for (const profile of profiles) {
    const rs = reports.filter(r => r.profile === profile)
    if (rs.length >= 2) process.stdout.write(`${profile}: msgsPerNodePerS at ${rs[rs.length - 1].nodes} nodes / at ${rs[0].nodes} nodes = ${(rs[rs.length - 1].msgsPerNodePerS / rs[0].msgsPerNodePerS).toFixed(2)}\n`)
  }
  return 0
}
