/**
 * Simulation scenarios. `vmplaces` follows VMPlaceS (Lèbre et al.): hosts of
 * 8 cores / 32 GiB, 10 VMs of 1 vCPU / 1 GiB per host, each VM's CPU demand
 * changing on average every 300 s to a Gaussian draw, one hour.
 * `consolidation`: the same cluster, lightly loaded, with consolidation on:
 * how many hosts can be emptied and kept idle.
 */
import { DEFAULT_DEMAND, type DemandConfig } from '../core/demand.ts'

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
  /** Live-migration link per host, MiB/s. Default 1,250 (10 Gbit/s). */
  bandwidthMiBps: number
  /** How write-heavy VMs are (pre-copy model). Default 0.3. */
  dirtyIntensity: number
}

export const SCENARIOS: Record<string, Scenario> = {
  vmplaces: {
    name: 'vmplaces',
    hostCpu: 8,
    hostMemMiB: 32 * 1024,
    cpuOvercommit: 4,
    vmCpu: 1,
    vmMemMiB: 1024,
    vmsPerHost: 10,
    durationS: 3600,
    // Mean 0.65, deviation 0.25: 10 VMs ask 6.5 of 8 cores on average and about 2 % of hosts
    // are overloaded at any time, enough that placement alone cannot keep up, as in VMPlaceS's runs.
    demand: { ...DEFAULT_DEMAND, mean: 0.65, stddev: 0.25 },
    consolidate: false,
    bandwidthMiBps: 1250,
    dirtyIntensity: 0.3
  },
  consolidation: {
    name: 'consolidation',
    hostCpu: 8,
    hostMemMiB: 32 * 1024,
    cpuOvercommit: 4,
    vmCpu: 1,
    vmMemMiB: 1024,
    vmsPerHost: 4,
    durationS: 3600,
    demand: { ...DEFAULT_DEMAND, mean: 0.25, stddev: 0.1 },
    consolidate: true,
    bandwidthMiBps: 1250,
    dirtyIntensity: 0.3
  }
}
