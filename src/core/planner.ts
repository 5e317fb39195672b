/**
 * The reconfiguration planner of cooperative rebalancing (after DVMS): given
 * the hosts of a partition and the problem that started the event, the
 * migrations that solve it, or one line on why none do. The partition leader
 * calls it each time its partition grows; a centralized baseline calls it
 * with every host of the cluster.
 *
 * Overload: shed the excess demand onto the other hosts with as few
 * migrations as possible, then with as little memory moved as possible
 * (memory is what a pre-copy live migration costs). Single VMs first, then
 * pairs, both exhaustive over the sets of VMs within `maxSearch`, then a
 * greedy fill, largest demand first. Destinations are tried worst fit, most demand head-room
 * first: what lands there has the most room to grow before it becomes the
 * next overload.
 *
 * Underload (consolidation, opt-in): every VM off the host, best fit (the
 * most loaded host that stays viable first), to pack the work onto few hosts
 * so that the caller can mark the emptied one idle.
 *
 * Every destination stays viable: demand within its cores, memory within its
 * memory, allocation within cores × over-commit (DESIGN.md invariant 3), no
 * two VMs of one spread group, never an idle host unless asked. Only the
 * hosts passed in are touched: a partition leader knows nothing of the rest.
 *
 * Cost: one pass over the VMs to sum the hosts, one sort of the destinations,
 * then per VM tried a scan that stops at its first fit or at the first
 * destination with too little head-room. The first fit of each VM on the
 * untouched hosts is cached, and a set of VMs only rescans past a host that
 * an earlier VM of the same set has filled. Both shortcuts rest on one fact:
 * placing more VMs on a host only makes it fit less (demand, memory,
 * allocation and spread groups only grow).
 *
 * Deterministic: no randomness, every sort ends on an id.
 */
import type { HostLoad, Migration, Problem, VmLoad } from './rebalance-messages.ts'
import { count, DEFAULT_UNDERLOAD_THRESHOLD, demandOf, EPSILON, fail, isUnderloaded, planOverload, type PlanResult, planUnderload, type Resolved, totals } from './planner-search.ts'
import { allocatable } from './resources.ts'

export { DEFAULT_UNDERLOAD_THRESHOLD, demandOf, isUnderloaded }
export type { HostLoad, Migration, PlanResult, Problem, VmLoad }

export interface PlanOptions {
  /**
   * Most migrations in one plan. Default 8: every one is a live migration
   * that loads two hosts and the network while it runs; a problem that needs
   * more is better split over successive events.
   */
  maxMigrations?: number
  /**
   * Bound on the sets of VMs the exhaustive phases (single VMs, pairs)
   * examine. Default 2000: every pair of a host of 63 VMs, a few ms at
   * worst. The greedy fallback is linear and always runs.
   */
  maxSearch?: number
  /** Demand over cores below which a host with VMs is underloaded. Default 0.2. */
  underloadThreshold?: number
  /**
   * Overload only: idle hosts may receive VMs (the caller wakes them).
   * Default false: waking a host undoes a consolidation, so it is a last
   * resort the caller asks for after a plan without it failed.
   */
  allowIdle?: boolean
}

export const DEFAULT_MAX_MIGRATIONS = 8
export const DEFAULT_MAX_SEARCH = 2000

/** Sum of VM demand above the host's cores. */
export function isOverloaded (h: HostLoad): boolean {
  return demandOf(h) > h.capacity.cpu + EPSILON
}

/** Allocation ceiling: the same formula as `free()` in resources.ts, so the planner never promises what a reservation would refuse. */
export function allocationLimit (h: HostLoad): number {
  return allocatable(h.capacity, h.cpuOvercommit).cpu
}

/** Demand ≤ cores, memory ≤ capacity, allocation ≤ floor(cores × over-commit). Spread groups are the planner's concern, not viability's. */
export function isViable (h: HostLoad): boolean {
  const { demand, memMiB, alloc } = totals(h)
  return demand <= h.capacity.cpu + EPSILON && memMiB <= h.capacity.memMiB && alloc <= allocationLimit(h)
}

export function plan (hosts: HostLoad[], problem: Problem, opts: PlanOptions = {}): PlanResult {
  const o = resolve(opts)
  const src = hosts.find(h => h.peerId === problem.peerId)
  if (src === undefined) return fail(`${problem.peerId} is not in the partition of ${count(hosts.length, 'host')}`)
  switch (problem.kind) {
    case 'overload': return planOverload(hosts, src, o)
    case 'underload': return planUnderload(hosts, src, o)
    default: return fail(`unknown problem kind \`${String((problem as { kind: unknown }).kind)}\``)
  }
}

/** A new host list with the VMs moved; the input is left alone. Throws on a migration that does not match the hosts: a plan from `plan()` on the same hosts always does. */
export function applyPlan (hosts: HostLoad[], migrations: Migration[]): HostLoad[] {
  const out = hosts.map(h => ({ ...h, vms: [...h.vms] }))
  const byPeer = new Map(out.map(h => [h.peerId, h]))
  for (const m of migrations) {
    const from = byPeer.get(m.from)
    const to = byPeer.get(m.to)
    if (from === undefined || to === undefined) throw new Error(`applyPlan: no host ${from === undefined ? m.from : m.to} for the migration of ${m.vmId}`)
    const i = from.vms.findIndex(vm => vm.id === m.vmId)
    if (i < 0) throw new Error(`applyPlan: ${m.from} runs no VM ${m.vmId}`)
    to.vms.push(from.vms[i])
    from.vms.splice(i, 1)
  }
  return out
}

// ---------------------------------------------------------------------------

function resolve (opts: PlanOptions): Resolved {
  const r: Resolved = {
    maxMigrations: opts.maxMigrations ?? DEFAULT_MAX_MIGRATIONS,
    maxSearch: opts.maxSearch ?? DEFAULT_MAX_SEARCH,
    underloadThreshold: opts.underloadThreshold ?? DEFAULT_UNDERLOAD_THRESHOLD,
    allowIdle: opts.allowIdle ?? false
  }
  wholeAtLeast('maxMigrations', r.maxMigrations, 1)
  wholeAtLeast('maxSearch', r.maxSearch, 0)
  const t = r.underloadThreshold
  if (typeof t !== 'number' || !(t >= 0 && t <= 1)) throw new RangeError(`Expected \`underloadThreshold\` to be a number from 0 to 1, got \`${String(t)}\` (${typeof t})`)
  return r
}

function wholeAtLeast (name: string, value: unknown, min: number): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new RangeError(`Expected \`${name}\` to be a whole number >= ${min}, got \`${String(value)}\` (${typeof value})`)
  }
}
