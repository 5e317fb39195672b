/** `discovery sim`: flags into SimOptions (or PlacementOptions), a progress bar on stderr, the report on stdout. */
import { validateDemandConfig } from '../core/demand.ts'
import { ALGORITHMS, type AlgorithmName } from '../sim/algorithms.ts'
import { LINKS, type LinkModel } from '../sim/network.ts'
import { churnTable, placementTable, reportTable } from './sim-report.ts'
import { type ChurnOptions, runChurn } from '../sim/churn-run.ts'
import { placementDefaults, type PlacementOptions, runPlacement } from '../sim/placement-run.ts'
import { runSimulation, type SimOptions } from '../sim/run.ts'
import { type DirtyIntensity, GBIT_MIBPS, SCENARIOS } from '../sim/scenarios.ts'
import { UsageError } from './errors.ts'
import { parseDuration, parseInteger, parseRatio } from './parse.ts'

export interface SimFlags {
  nodes?: string
  vms?: string
  duration?: string
  scenario?: string
  seed?: string
  algorithms?: string
  latency?: string
  loss?: string
  centralDelay?: string
  centralPeriod?: string
  demandMean?: string
  bandwidth?: string
  dirtyIntensity?: string
  rate?: string
  churn?: string
  vmsPerNode?: string
  json?: boolean
  progress?: boolean
}

/** The `placement` scenario is a run of its own (placement-run.ts); the others are rebalancing runs. */
export const SIM_SCENARIOS = [...Object.keys(SCENARIOS), 'placement', 'churn']

/** Flags that only one kind of run reads: given to the other, they are a mistake, not something to ignore. */
const REBALANCING_ONLY: Array<[keyof SimFlags, string]> = [['duration', '--duration'], ['algorithms', '--algorithms'], ['centralDelay', '--central-delay'], ['centralPeriod', '--central-period'], ['demandMean', '--demand-mean'], ['bandwidth', '--bandwidth'], ['dirtyIntensity', '--dirty-intensity']]

export function resolveSimOptions (flags: SimFlags): SimOptions {
  const name = flags.scenario ?? 'vmplaces'
  const base = SCENARIOS[name]
  if (base == null) throw new UsageError(`Expected --scenario to be one of ${SIM_SCENARIOS.join(', ')}, got \`${name}\``)
  if (flags.nodes == null) throw new UsageError('Expected --nodes N, e.g. `discovery sim --nodes 1024 --vms 10240`')
  if (flags.rate != null) throw new UsageError(`--rate is for --scenario placement, not ${name}`)
  if (flags.churn != null) throw new UsageError(`--churn is for --scenario churn, not ${name}`)
  if (flags.vmsPerNode != null) throw new UsageError(`--vms-per-node is for --scenario churn, not ${name}`)
  const hosts = parseInteger('--nodes', flags.nodes, 1, 1_000_000)
  const vms = flags.vms != null ? parseInteger('--vms', flags.vms, 0, 100_000_000) : hosts * base.vmsPerHost
  const scenario = { ...base, demand: { ...base.demand } }
  if (flags.demandMean != null) scenario.demand = validateDemandConfig({ ...scenario.demand, mean: parseRatio('--demand-mean', flags.demandMean, 0, 1) })
  if (flags.bandwidth != null) scenario.bandwidthMiBps = parseBandwidth('--bandwidth', flags.bandwidth)
  if (flags.dirtyIntensity != null) scenario.dirtyIntensity = parseDirtyIntensity('--dirty-intensity', flags.dirtyIntensity)
  const durationS = flags.duration != null ? parseDuration('--duration', flags.duration) / 1000 : base.durationS
  if (durationS <= 0) throw new UsageError('Expected --duration to be longer than 0')
  const algorithms = (flags.algorithms ?? ALGORITHMS.join(',')).split(',').map(a => a.trim()) as AlgorithmName[]
  for (const a of algorithms) if (!ALGORITHMS.includes(a)) throw new UsageError(`Expected --algorithms to be a comma-separated list of ${ALGORITHMS.join(', ')}, got \`${a}\``)
  let link: LinkModel = { ...LINKS.lan }
  if (flags.latency != null) {
    if (LINKS[flags.latency] != null) link = { ...LINKS[flags.latency] }
    else {
      const ms = parseDuration('--latency', flags.latency)
      link = { baseMs: ms, jitterMs: ms / 2, loss: 0 }
    }
  }
  if (flags.loss != null) link.loss = parseRatio('--loss', flags.loss, 0, 0.5)
  let centralDelay: 'measured' | number = 'measured'
  if (flags.centralDelay != null && flags.centralDelay !== 'measured') centralDelay = parseDuration('--central-delay', flags.centralDelay)
  return {
    scenario,
    hosts,
    vms,
    durationS,
    seed: flags.seed != null ? parseInteger('--seed', flags.seed, 0, 2 ** 31 - 1) : 1,
    link,
    algorithms,
    monitorMs: 1000,
    centralPeriodMs: flags.centralPeriod != null ? parseDuration('--central-period', flags.centralPeriod) : 30_000,
    centralDelay
  }
}

const BANDWIDTH_UNITS: Record<string, number> = { 'mib/s': 1, 'mb/s': 1e6 / 1024 / 1024, 'gbit/s': GBIT_MIBPS, 'gbps': GBIT_MIBPS, 'mbit/s': GBIT_MIBPS / 1000, 'mbps': GBIT_MIBPS / 1000 }

/** A live-migration bandwidth in MiB/s: `119.2`, `119.2MiB/s`, `125MB/s`, `1Gbit/s`, `100Mbit/s` (a bare number is MiB/s). */
export function parseBandwidth (flag: string, value: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z/]+)?$/i.exec(value.trim())
  const unit = BANDWIDTH_UNITS[(m?.[2] ?? 'mib/s').toLowerCase()]
  const mibps = m == null || unit == null ? NaN : Number(m[1]) * unit
  if (!(mibps > 0) || mibps > 1e6) throw new UsageError(`Expected ${flag} to be a bandwidth like 119.2 (MiB/s), 125MB/s, 1Gbit/s or 10Gbit/s, got \`${value}\``)
  return mibps
}

/** A dirty-page intensity: `0.3` for every VM, `0.1-0.5` uniform per VM, `0.1-0.5:5` one of 5 evenly spaced classes per VM. */
export function parseDirtyIntensity (flag: string, value: string): DirtyIntensity {
  const m = /^(\d*\.?\d+)(?:\s*-\s*(\d*\.?\d+)(?::(\d+))?)?$/.exec(value.trim())
  const expected = `Expected ${flag} to be a fraction from 0 to 1 like 0.3, a range like 0.1-0.5 (uniform per VM) or 0.1-0.5:5 (5 classes), got \`${value}\``
  if (m == null) throw new UsageError(expected)
  const lo = Number(m[1])
  const hi = m[2] != null ? Number(m[2]) : lo
  const classes = m[3] != null ? Number(m[3]) : undefined
  if (!(lo >= 0 && hi >= lo && hi <= 1) || (classes != null && (classes < 2 || classes > 1000))) throw new UsageError(expected)
  return classes != null ? { lo, hi, classes } : { lo, hi }
}

export function resolvePlacementOptions (flags: SimFlags): PlacementOptions {
  for (const [key, flag] of REBALANCING_ONLY) if (flags[key] != null) throw new UsageError(`${flag} is not read by --scenario placement`)
  if (flags.vmsPerNode != null) throw new UsageError('--vms-per-node is for --scenario churn, not placement (use --vms)')
  if (flags.nodes == null) throw new UsageError('Expected --nodes N, e.g. `discovery sim --scenario placement --nodes 1000 --vms 100000`')
  const nodes = parseInteger('--nodes', flags.nodes, 2, 1_000_000)
  const d = placementDefaults(nodes, flags.vms != null ? parseInteger('--vms', flags.vms, 0, 100_000_000) : undefined)
  const profile = flags.latency ?? 'lan'
  if (profile !== 'lan' && profile !== 'wan') throw new UsageError(`Expected --latency to be lan or wan with --scenario placement (the agents' profile and its link), got \`${profile}\``)
  const link = { ...LINKS[profile] }
  if (flags.loss != null) link.loss = parseRatio('--loss', flags.loss, 0, 0.5)
  const ratePerS = flags.rate != null ? parseRatio('--rate', flags.rate, 0.001, 1_000_000) : d.ratePerS
  return { nodes, vms: d.vms, seed: flags.seed != null ? parseInteger('--seed', flags.seed, 0, 2 ** 31 - 1) : 1, profile, link, ratePerS, hostCpu: d.hostCpu, hostMemMiB: d.hostMemMiB }
}

/** Flags the churn scenario does not read: given to it, they are a mistake. */
const NOT_CHURN: Array<[keyof SimFlags, string]> = [['vms', '--vms'], ['rate', '--rate'], ['algorithms', '--algorithms'], ['centralDelay', '--central-delay'], ['centralPeriod', '--central-period'], ['demandMean', '--demand-mean'], ['bandwidth', '--bandwidth'], ['dirtyIntensity', '--dirty-intensity']]

export function resolveChurnOptions (flags: SimFlags): ChurnOptions {
  for (const [key, flag] of NOT_CHURN) if (flags[key] != null) throw new UsageError(`${flag} is not read by --scenario churn`)
  if (flags.nodes == null) throw new UsageError('Expected --nodes N, e.g. `discovery sim --scenario churn --nodes 1000`')
  const nodes = parseInteger('--nodes', flags.nodes, 3, 1_000_000)
  const profile = flags.latency ?? 'lan'
  if (profile !== 'lan' && profile !== 'wan') throw new UsageError(`Expected --latency to be lan or wan with --scenario churn (the agents' profile and its link), got \`${profile}\``)
  const link = { ...LINKS[profile] }
  if (flags.loss != null) link.loss = parseRatio('--loss', flags.loss, 0, 0.5)
  const durationS = flags.duration != null ? parseDuration('--duration', flags.duration) / 1000 : 300
  if (durationS < 60) throw new UsageError('Expected --duration to be at least 60s with --scenario churn (failures start after 10 s and last 30 s and more)')
  const eventsPerMin = flags.churn != null ? parseRatio('--churn', flags.churn, 0, 10_000) : 6
  const opts: ChurnOptions = { nodes, durationS, seed: flags.seed != null ? parseInteger('--seed', flags.seed, 0, 2 ** 31 - 1) : 1, profile, link, eventsPerMin }
  if (flags.vmsPerNode != null) opts.vmsPerNode = parseInteger('--vms-per-node', flags.vmsPerNode, 0, 1_000)
  return opts
}

export function runSim (flags: SimFlags): void {
  const showProgress = flags.progress !== false && process.stderr.isTTY === true
  if (flags.scenario === 'churn') {
    const opts = resolveChurnOptions(flags)
    const report = runChurn(opts, showProgress ? f => { process.stderr.write(`\rchurn [${'#'.repeat(Math.round(f * 30)).padEnd(30, '.')}] ${(f * 100).toFixed(0)}%`) } : undefined)
    if (showProgress) process.stderr.write('\r' + ' '.repeat(60) + '\r')
    process.stdout.write((flags.json === true ? JSON.stringify(report, null, 2) : churnTable(report)) + '\n')
    return
  }
  if (flags.scenario === 'placement') {
    const opts = resolvePlacementOptions(flags)
    const report = runPlacement(opts, showProgress ? f => { process.stderr.write(`\rplacement [${'#'.repeat(Math.round(f * 30)).padEnd(30, '.')}] ${(f * 100).toFixed(0)}%`) } : undefined)
    if (showProgress) process.stderr.write('\r' + ' '.repeat(60) + '\r')
    process.stdout.write((flags.json === true ? JSON.stringify(report, null, 2) : placementTable(report)) + '\n')
    return
  }
  const opts = resolveSimOptions(flags)
  let last = ''
  const report = runSimulation(opts, showProgress
    ? (algorithm, fraction) => {
        const width = 30
        const filled = Math.round(fraction * width)
        const line = `${algorithm.padEnd(12)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(fraction * 100).toFixed(0)}%`
        if (line !== last) process.stderr.write(`\r${line}`)
        last = line
      }
    : undefined)
  if (showProgress) process.stderr.write('\r' + ' '.repeat(60) + '\r')
  process.stdout.write((flags.json === true ? JSON.stringify(report, null, 2) : reportTable(report)) + '\n')
}
