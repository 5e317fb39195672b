/** `discovery sim`: flags into SimOptions, a progress bar on stderr, the report on stdout. */
import { validateDemandConfig } from '../core/demand.ts'
import { ALGORITHMS, type AlgorithmName } from '../sim/algorithms.ts'
import { LINKS, type LinkModel } from '../sim/network.ts'
import { reportTable } from '../sim/report.ts'
import { runSimulation, type SimOptions } from '../sim/run.ts'
import { SCENARIOS } from '../sim/scenarios.ts'
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
  json?: boolean
  progress?: boolean
}

export function resolveSimOptions (flags: SimFlags): SimOptions {
  const name = flags.scenario ?? 'vmplaces'
  const base = SCENARIOS[name]
  if (base == null) throw new UsageError(`Expected --scenario to be one of ${Object.keys(SCENARIOS).join(', ')}, got \`${name}\``)
  if (flags.nodes == null) throw new UsageError('Expected --nodes N, e.g. `discovery sim --nodes 1024 --vms 10240`')
  const hosts = parseInteger('--nodes', flags.nodes, 1, 1_000_000)
  const vms = flags.vms != null ? parseInteger('--vms', flags.vms, 0, 100_000_000) : hosts * base.vmsPerHost
  const scenario = { ...base, demand: { ...base.demand } }
  if (flags.demandMean != null) scenario.demand = validateDemandConfig({ ...scenario.demand, mean: parseRatio('--demand-mean', flags.demandMean, 0, 1) })
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

export function runSim (flags: SimFlags): void {
  const opts = resolveSimOptions(flags)
  const showProgress = flags.progress !== false && process.stderr.isTTY === true
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
