/**
 * `discovery sim`: the same core/ driven by a virtual clock and a simulated
 * network, thousands of hosts in one process. Each algorithm runs on a world
 * of its own built from the same seed: the same hosts, VMs and demand trace.
 */
import { mean as meanOf, percentile } from '../core/stats.ts'
import { type AlgorithmName, type AlgorithmOptions, type AlgorithmStats, emptyStats, installCentralized, installDvms } from './algorithms.ts'
import type { LinkModel } from './network.ts'
import type { DirtyIntensity, Scenario } from './scenarios.ts'
import { World } from './world.ts'

export interface SimOptions {
  scenario: Scenario
  hosts: number
  vms: number
  durationS: number
  seed: number
  link: LinkModel
  algorithms: AlgorithmName[]
  monitorMs: number
  centralPeriodMs: number
  centralDelay: 'measured' | number
}

export interface AlgorithmReport {
  algorithm: AlgorithmName
  overloadEvents: number
  overloadS: number
  overloadMeanS: number
  overloadP99S: number
  planMeanMs: number | null
  planP99Ms: number | null
  solveMeanS: number | null
  solveP99S: number | null
  solved: number
  unsolvable: number
  migrations: number
  migrationsAborted: number
  memMigratedGiB: number
  migrationMeanS: number | null
  downtimeMeanMs: number | null
  partitionMean: number | null
  partitionMax: number | null
  msgsPerNodePerS: number
  activeHosts: number
  centralComputeMeanMs: number | null
  wallS: number
}

export interface SimReport {
  scenario: string
  hosts: number
  vms: number
  durationS: number
  seed: number
  link: LinkModel
  /** What one live migration gets of the link, MiB/s, and the VMs' dirty-page intensity: the pre-copy model's inputs. */
  bandwidthMiBps: number
  dirtyIntensity: DirtyIntensity
  centralDelay: 'measured' | number
  results: AlgorithmReport[]
}

function mean (values: number[]): number | null {
  return values.length === 0 ? null : meanOf(values)
}

const round = (x: number | null, digits = 3): number | null => x == null || Number.isNaN(x) ? null : Number(x.toFixed(digits))

export function runSimulation (opts: SimOptions, onProgress?: (algorithm: AlgorithmName, fraction: number) => void): SimReport {
  const results: AlgorithmReport[] = []
  for (const algorithm of opts.algorithms) {
    const started = performance.now()
    const world = new World({ scenario: opts.scenario, hosts: opts.hosts, vms: opts.vms, seed: opts.seed, link: opts.link })
    const stats: AlgorithmStats = emptyStats()
    const aopts: AlgorithmOptions = { monitorMs: opts.monitorMs, centralPeriodMs: opts.centralPeriodMs, centralDelay: opts.centralDelay, consolidate: opts.scenario.consolidate }
    if (algorithm === 'centralized') installCentralized(world, stats, aopts)
    if (algorithm === 'dvms') installDvms(world, stats, aopts)
    const untilMs = opts.durationS * 1000
    world.run(untilMs, onProgress == null ? undefined : (now) => { onProgress(algorithm, now / untilMs) })
    const overloads = world.overloadDurationsMs
    results.push({
      algorithm,
      overloadEvents: world.overloadEvents,
      overloadS: round(world.overloadMs / 1000, 1)!,
      overloadMeanS: round((mean(overloads) ?? 0) / 1000)!,
      overloadP99S: round((overloads.length > 0 ? percentile(overloads, 0.99) : 0) / 1000)!,
      planMeanMs: round(mean(stats.planMs)),
      planP99Ms: round(stats.planMs.length > 0 ? percentile(stats.planMs, 0.99) : null),
      solveMeanS: round(stats.solveMs.length > 0 ? mean(stats.solveMs)! / 1000 : null),
      solveP99S: round(stats.solveMs.length > 0 ? percentile(stats.solveMs, 0.99) / 1000 : null),
      solved: stats.solved,
      unsolvable: stats.unsolvable,
      migrations: world.migrations.count,
      migrationsAborted: world.migrations.aborted,
      memMigratedGiB: round(world.migrations.memMiB / 1024, 1)!,
      migrationMeanS: round(world.migrations.totalMs.length > 0 ? mean(world.migrations.totalMs)! / 1000 : null),
      downtimeMeanMs: round(mean(world.migrations.downtimeMs), 1),
      partitionMean: round(mean(stats.partitionSizes), 2),
      partitionMax: stats.partitionSizes.length > 0 ? Math.max(...stats.partitionSizes) : null,
      msgsPerNodePerS: round(world.network.sent / opts.hosts / opts.durationS, 4)!,
      activeHosts: world.activeHosts(),
      centralComputeMeanMs: round(mean(stats.computeMs), 2),
      wallS: round((performance.now() - started) / 1000, 1)!
    })
  }
  return { scenario: opts.scenario.name, hosts: opts.hosts, vms: opts.vms, durationS: opts.durationS, seed: opts.seed, link: opts.link, bandwidthMiBps: round(opts.scenario.bandwidthMiBps, 2)!, dirtyIntensity: opts.scenario.dirtyIntensity, centralDelay: opts.centralDelay, results }
}
