/** The tables of `discovery sim`: rebalancing algorithms side by side, or the placement scenario's figures. */
import { table } from './table.ts'
import type { ChurnReport } from '../sim/churn-run.ts'
import type { PlacementReport } from '../sim/placement-run.ts'
import type { SimReport } from '../sim/run.ts'
import { describeDirtyIntensity } from '../sim/scenarios.ts'

const f = (x: number | null, unit = ''): string => x == null ? '-' : `${x}${unit}`

export function reportTable (r: SimReport): string {
  const head = `scenario ${r.scenario} · ${r.hosts} hosts · ${r.vms} VMs · ${r.durationS} s simulated · seed ${r.seed} · link ${r.link.baseMs} ms (+${r.link.jitterMs}), loss ${r.link.loss} · migrations at ${r.bandwidthMiBps} MiB/s, dirty-page intensity ${describeDirtyIntensity(r.dirtyIntensity)} · centralized planning delay ${r.centralDelay === 'measured' ? 'measured' : `${r.centralDelay} ms`}`
  const rows: Array<[string, (a: SimReport['results'][number]) => string]> = [
    ['overload events', a => String(a.overloadEvents)],
    ['cumulated overload time', a => f(a.overloadS, ' s')],
    ['overload duration mean / p99', a => `${f(a.overloadMeanS, ' s')} / ${f(a.overloadP99S, ' s')}`],
    ['time to plan mean / p99', a => `${f(a.planMeanMs, ' ms')} / ${f(a.planP99Ms, ' ms')}`],
    ['time to solve mean / p99', a => `${f(a.solveMeanS, ' s')} / ${f(a.solveP99S, ' s')}`],
    ['events solved / unsolvable', a => `${a.solved} / ${a.unsolvable}`],
    ['migrations (aborted)', a => `${a.migrations} (${a.migrationsAborted})`],
    ['memory migrated', a => f(a.memMigratedGiB, ' GiB')],
    ['migration time mean, downtime mean', a => `${f(a.migrationMeanS, ' s')}, ${f(a.downtimeMeanMs, ' ms')}`],
    ['partition size mean / max', a => `${f(a.partitionMean)} / ${f(a.partitionMax)}`],
    ['messages per node per second', a => String(a.msgsPerNodePerS)],
    ['active hosts at the end', a => String(a.activeHosts)],
    ['central planner compute mean', a => f(a.centralComputeMeanMs, ' ms')],
    ['wall time', a => f(a.wallS, ' s')]
  ]
  return head + '\n\n' + table(['', ...r.results.map(a => a.algorithm)], rows.map(([name, get]) => [name, ...r.results.map(get)]))
}

export function placementTable (r: PlacementReport): string {
  const head = `scenario placement · ${r.nodes} agents of ${r.hostCpu} vCPU / ${r.hostMemMiB / 1024} GiB · ${r.vms} VMs at ${r.ratePerS} a second · seed ${r.seed} · ${r.profile} (link ${r.link.baseMs} ms (+${r.link.jitterMs}), loss ${r.link.loss})`
  const rows: Array<[string, string]> = [
    ['placed', String(r.placed)],
    ['refused (503)', String(r.refused)],
    ['false refusals (503 while a node had room)', String(r.falseRefusals)],
    ['uncertain (504)', String(r.uncertain)],
    ['candidates asked per create, mean', String(r.attemptsMean)],
    ['over-commits', String(r.overcommits)],
    ['age of the state placed with p50 / p99', `${r.stalenessP50Ms} ms / ${r.stalenessP99Ms} ms`],
    ['state messages received per node per second', String(r.msgsPerNodePerS)],
    ['state publishes per second (cluster)', String(r.publishesPerS)],
    ['vCPUs allocated at the end', `${(r.cpuFill * 100).toFixed(1)} %`],
    ['simulated time', `${r.simulatedS} s`],
    ['wall time', `${r.wallS} s`]
  ]
  return head + '\n\n' + table(['', ''], rows).split('\n').slice(1).join('\n')
}

export function churnTable (r: ChurnReport): string {
  const head = `scenario churn · ${r.nodes} nodes · ${r.durationS} s simulated · ${r.eventsPerMin} failures a minute (half kills, half hangs) · seed ${r.seed} · ${r.profile} (link ${r.link.baseMs} ms (+${r.link.jitterMs}), loss ${r.link.loss})`
  const ms = (x: number | null): string => x == null ? '-' : `${x} ms`
  const rows: Array<[string, string]> = [
    ['kills / hangs', `${r.kills} / ${r.hangs}`],
    ['killed: dead at every node p50 / p99', `${ms(r.killEveryP50Ms)} / ${ms(r.killEveryP99Ms)}`],
    ['killed: dead at each node p50 / p99', `${ms(r.killEachP50Ms)} / ${ms(r.killEachP99Ms)}`],
    ['hung: dead at every node p50 / p99', `${ms(r.hangEveryP50Ms)} / ${ms(r.hangEveryP99Ms)}`],
    ['hung: dead at each node p50 / p99', `${ms(r.hangEachP50Ms)} / ${ms(r.hangEachP99Ms)}`],
    ['failures some node never noticed', String(r.missed)],
    ['false positives (a running node declared dead)', String(r.falsePositives)],
    ['late deaths (within a minute of coming back)', String(r.lateDeaths)],
    ['deaths refuted (hung nodes resumed)', String(r.refutedDeaths)],
    ['detector messages per node per second', String(r.msgsPerNodePerS)],
    ['VMs (one in ten `never`)', String(r.vms)],
    ['VMs restarted: running again after p50 / p99', `${r.vmsRestarted}: ${ms(r.restartP50Ms)} / ${ms(r.restartP99Ms)}`],
    ['restart conflicts (one VM restarted twice)', String(r.restartConflicts)],
    ['copies fenced (owner back, VM restarted elsewhere)', String(r.fenced)],
    ['duplicates once settled (a VM on two nodes)', String(r.duplicates)],
    ['VMs lost (`always`, no holder could restart)', String(r.lost)],
    ['`never` VMs reported lost', String(r.neverReported)],
    ['replica and restart messages per node per second', String(r.vmMsgsPerNodePerS)],
    ['wall time', `${r.wallS} s`]
  ]
  return head + '\n\n' + table(['', ''], rows).split('\n').slice(1).join('\n')
}
