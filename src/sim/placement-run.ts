/**
 * `discovery sim --scenario placement`: M VMs created at a steady rate (a
 * Poisson process), each through an agent drawn at random, on N agents that
 * know each other only by simulated state gossip (placement-world.ts). What
 * it measures: how many were placed or refused, how many refusals were false
 * (some node could have taken the VM), candidates asked per create, ledgers
 * over capacity (must be none), how old the state was that a VM was placed
 * with, and the state messages each node received per second (the gossip
 * budget should keep it flat whatever N).
 */
import { PROFILE_GOSSIP, PROFILE_REQUEST_TIMEOUT_MS, DEFAULT_LEASE_TTL_MS, DEFAULT_PLACEMENT_SAMPLE } from '../core/profiles.ts'
import { exponential } from '../core/demand.ts'
import type { VmSpec } from '../core/messages.ts'
import { seededRng } from '../core/rng.ts'
import { mean, percentile } from '../core/stats.ts'
import type { LinkModel } from './network.ts'
import { PlacementWorld } from './placement-world.ts'

export interface PlacementOptions {
  nodes: number
  vms: number
  seed: number
  /** The agents' profile: its gossip policy and request timeout. */
  profile: 'lan' | 'wan'
  link: LinkModel
  /** Creates per second, cluster-wide. */
  ratePerS: number
  hostCpu: number
  hostMemMiB: number
}

export interface PlacementReport extends PlacementOptions {
  scenario: 'placement'
  placed: number
  /** Creates answered 503: every candidate refused, or none was known. */
  refused: number
  /** Of those, the ones where some node's ledger could have taken the VM. */
  falseRefusals: number
  /** Creates left uncertain (504): the chosen node never answered the commit. */
  uncertain: number
  /** Candidates asked per create. */
  attemptsMean: number
  /** Ledgers found over their allocatable capacity after a commit, or at the end. Must be 0. */
  overcommits: number
  /** How old the state was (now minus its publish time) that the placing agent held of the node it placed on. */
  stalenessP50Ms: number
  stalenessP99Ms: number
  /** State messages received per node per simulated second. */
  msgsPerNodePerS: number
  /** State publishes per simulated second, cluster-wide. */
  publishesPerS: number
  /** Share of the cluster's vCPUs allocated at the end. */
  cpuFill: number
  simulatedS: number
  wallS: number
}

/** Each VM: 1 to 4 vCPUs, 1 to 8 GiB, uniformly. */
export const VM_CPU = [1, 4] as const
export const VM_MEM_GIB = [1, 8] as const
const MEAN_VM_CPU = (VM_CPU[0] + VM_CPU[1]) / 2
/** The share of the cluster's vCPUs the VMs take by default: a cluster with room. */
export const TARGET_FILL = 0.6
/** The default rate runs the creates over this long. */
export const DEFAULT_RUN_S = 300
/** The smallest host: 32 vCPUs, 2 GiB each. */
export const MIN_HOST_CPU = 32

/** The defaults a run takes from its size: VMs filling 60 % of 32-vCPU hosts, hosts grown when more VMs are asked for, a 300 s run. */
export function placementDefaults (nodes: number, vms?: number): { vms: number, hostCpu: number, hostMemMiB: number, ratePerS: number } {
  const m = vms ?? Math.floor(nodes * MIN_HOST_CPU * TARGET_FILL / MEAN_VM_CPU)
  const hostCpu = Math.max(MIN_HOST_CPU, Math.ceil(m * MEAN_VM_CPU / (TARGET_FILL * nodes)))
  return { vms: m, hostCpu, hostMemMiB: 2048 * hostCpu, ratePerS: Math.max(1, m / DEFAULT_RUN_S) }
}

export function runPlacement (opts: PlacementOptions, onProgress?: (fraction: number) => void): PlacementReport {
  const started = performance.now()
  const world = new PlacementWorld({
    nodes: opts.nodes,
    seed: opts.seed,
    link: opts.link,
    gossip: PROFILE_GOSSIP[opts.profile],
    requestTimeoutMs: PROFILE_REQUEST_TIMEOUT_MS[opts.profile],
    leaseTtlMs: DEFAULT_LEASE_TTL_MS,
    sample: DEFAULT_PLACEMENT_SAMPLE,
    capacity: { cpu: opts.hostCpu, memMiB: opts.hostMemMiB }
  })
  // The arrivals and the VMs they ask for have their own stream: the same for every link and profile.
  const rng = seededRng(opts.seed ^ 0xa441)
  let created = 0
  const arrive = (): void => {
    const k = created++
    const spec: VmSpec = {
      id: `vm-${k.toString(16).padStart(12, '0')}`,
      name: `vm-${k}`,
      cpu: VM_CPU[0] + Math.floor(rng.next() * (VM_CPU[1] - VM_CPU[0] + 1)),
      memMiB: 1024 * (VM_MEM_GIB[0] + Math.floor(rng.next() * (VM_MEM_GIB[1] - VM_MEM_GIB[0] + 1))),
      createdAtMs: Math.floor(world.now)
    }
    world.create(Math.floor(rng.next() * opts.nodes), spec)
    if (created < opts.vms) world.queue.push(world.now + exponential(rng, 1000 / opts.ratePerS), arrive)
  }
  if (opts.vms > 0) world.queue.push(exponential(rng, 1000 / opts.ratePerS), arrive)
  world.run(opts.vms, onProgress == null ? undefined : ended => { onProgress(ended / opts.vms) })
  const c = world.counts
  const simulatedS = world.now / 1000
  const perS = (x: number): number => simulatedS > 0 ? x / simulatedS : 0
  return {
    scenario: 'placement',
    nodes: opts.nodes,
    vms: opts.vms,
    seed: opts.seed,
    profile: opts.profile,
    link: opts.link,
    ratePerS: round(opts.ratePerS, 2),
    hostCpu: opts.hostCpu,
    hostMemMiB: opts.hostMemMiB,
    placed: c.placed,
    refused: c.refused,
    falseRefusals: c.falseRefusals,
    uncertain: c.uncertain,
    attemptsMean: round(c.attempts.length > 0 ? mean(c.attempts) : 0, 3),
    overcommits: c.overcommits + world.overcommitted(),
    stalenessP50Ms: round(c.stalenessMs.length > 0 ? percentile(c.stalenessMs, 0.5) : 0, 1),
    stalenessP99Ms: round(c.stalenessMs.length > 0 ? percentile(c.stalenessMs, 0.99) : 0, 1),
    msgsPerNodePerS: round(perS(world.gossip.deliveries / opts.nodes), 3),
    publishesPerS: round(perS(world.gossip.publishes), 3),
    cpuFill: round(world.cpuFill(), 3),
    simulatedS: round(simulatedS, 1),
    wallS: round((performance.now() - started) / 1000, 1)
  }
}

function round (x: number, digits: number): number {
  return Number(x.toFixed(digits))
}
