/**
 * Simulation scenarios of `discovery sim`'s rebalancing runs.
 * - `vmplaces` follows VMPlaceS (Pastor, Lèbre et al., github.com/BeyondTheClouds/VMPlaceS):
 *   hosts of 8 cores / 32 GiB, 10 VMs of 1 vCPU / 1 GiB per host
 *   (run_all.sh), each VM's CPU demand changing on average every 300 s to a
 *   Gaussian draw (simulator.properties, Injector.java), one hour; live
 *   migrations at 125 MB/s (its VM classes' migration bandwidth: 1 Gbit/s),
 *   each VM's dirty-page intensity one of 10, 20, 30, 40, 50 % of it, drawn
 *   once per VM (its five `m1.small` classes, picked uniformly, in
 *   config/vm_classes.txt). Where it still differs: README, "Rebalancing".
 * - `vmplaces-10g`: the same cluster and trace with 10 Gbit/s links
 *   (1,250 MiB/s) and every VM's intensity 0.3: what the README reported
 *   before `vmplaces` followed VMPlaceS's links.
 * - `consolidation`: the same cluster, lightly loaded, with consolidation
 *   on: how many hosts can be emptied and kept idle.
 */
import { DEFAULT_DEMAND, type DemandConfig } from '../core/demand.ts'
import type { Rng } from '../core/rng.ts'

/**
 * Each VM's dirty-page intensity (pre-copy model), drawn once per VM: `lo`
 * when `hi` equals it; else one of `classes` values evenly spaced from `lo`
 * to `hi` when `classes` ≥ 2; else uniform over [lo, hi].
 */
export interface DirtyIntensity {
  lo: number
  hi: number
  classes?: number
}

export interface Scenario {
  name: string
  hostCpu: number
  hostMemMiB: number
  /** Allocation over-commit: 10 vCPUs on 8 cores in vmplaces; demand, not allocation, is what overloads. */
  cpuOvercommit: number
  vmCpu: number
  vmMemMiB: number
  vmsPerHost: number
  durationS: number
  demand: DemandConfig
  consolidate: boolean
  /** What one live migration gets of the link, MiB/s. vmplaces 119.2 (125 MB/s, 1 Gbit/s), vmplaces-10g 1,250. */
  bandwidthMiBps: number
  /** How write-heavy VMs are (pre-copy model). vmplaces 0.1–0.5 in five classes, vmplaces-10g 0.3. */
  dirtyIntensity: DirtyIntensity
}

/** 125 MB/s (VMPlaceS's migration bandwidth, 1 Gbit/s) in MiB/s. */
export const GBIT_MIBPS = 1e9 / 8 / 1024 / 1024

const CLUSTER = {
  hostCpu: 8,
  hostMemMiB: 32 * 1024,
  cpuOvercommit: 4,
  vmCpu: 1,
  vmMemMiB: 1024,
  durationS: 3600
}

/**
 * Mean 0.65, deviation 0.25: 10 VMs ask 6.5 of 8 cores on average and about
 * 2 % of hosts are overloaded at any time, enough that placement alone
 * cannot keep up, as in VMPlaceS's runs.
 */
const VMPLACES_DEMAND: DemandConfig = { ...DEFAULT_DEMAND, mean: 0.65, stddev: 0.25 }

export const SCENARIOS: Record<string, Scenario> = {
  vmplaces: {
    name: 'vmplaces',
    ...CLUSTER,
    vmsPerHost: 10,
    demand: VMPLACES_DEMAND,
    consolidate: false,
    bandwidthMiBps: GBIT_MIBPS,
    dirtyIntensity: { lo: 0.1, hi: 0.5, classes: 5 }
  },
  'vmplaces-10g': {
    name: 'vmplaces-10g',
    ...CLUSTER,
    vmsPerHost: 10,
    demand: VMPLACES_DEMAND,
    consolidate: false,
    bandwidthMiBps: 1250,
    dirtyIntensity: { lo: 0.3, hi: 0.3 }
  },
  consolidation: {
    name: 'consolidation',
    ...CLUSTER,
    vmsPerHost: 4,
    demand: { ...DEFAULT_DEMAND, mean: 0.25, stddev: 0.1 },
    consolidate: true,
    bandwidthMiBps: 1250,
    dirtyIntensity: { lo: 0.3, hi: 0.3 }
  }
}

/** One VM's dirty-page intensity, from its own stream (never the demand trace's). */
export function drawDirtyIntensity (rng: Rng, d: DirtyIntensity): number {
  if (d.hi <= d.lo) return d.lo
  const u = rng.next()
  const x = d.classes != null && d.classes >= 2
    ? d.lo + Math.min(d.classes - 1, Math.floor(u * d.classes)) * (d.hi - d.lo) / (d.classes - 1)
    : d.lo + u * (d.hi - d.lo)
  // Exact decimals (0.3, not 0.30000000000000004): the figures derived from it read the same everywhere.
  return Math.round(x * 1e9) / 1e9
}

/** The intensity as one line: `0.3`, `0.1–0.5 (5 classes)`, `0.1–0.5 (uniform)`. */
export function describeDirtyIntensity (d: DirtyIntensity): string {
  if (d.hi <= d.lo) return String(d.lo)
  return `${d.lo}–${d.hi} (${d.classes != null && d.classes >= 2 ? `${d.classes} classes` : 'uniform'})`
}
