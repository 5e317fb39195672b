/**
 * The search of the planner (planner.ts): per-destination sums, the
 * exhaustive phases over single VMs and pairs, the greedy fill, and the
 * consolidation of an underloaded host. Internal to the planner; see
 * planner.ts for what a plan must satisfy and why.
 */
import type { HostLoad, Migration, VmLoad } from './rebalance-messages.ts'
import { allocatable } from './resources.ts'

/**
 * Demand is a float summed in whatever order: the predicates forgive this
 * much rounding. The planner itself forgives only half of it, so that a host
 * it accepted is never read as over by a sum taken in another order.
 */
export const EPSILON = 1e-9
const SLACK = EPSILON / 2

export const DEFAULT_UNDERLOAD_THRESHOLD = 0.2

export function demandOf (h: HostLoad): number {
  let d = 0
  for (const vm of h.vms) d += vm.demand
  return d
}

/** A host that runs VMs, is not idle, and whose demand over its cores is below `threshold`. */
export function isUnderloaded (h: HostLoad, threshold = DEFAULT_UNDERLOAD_THRESHOLD): boolean {
  if (h.idle === true || h.vms.length === 0 || !(h.capacity.cpu > 0)) return false
  return demandOf(h) / h.capacity.cpu < threshold
}

export type PlanResult = { ok: true, migrations: Migration[], memMovedMiB: number } | { ok: false, reason: string }

export interface Resolved {
  maxMigrations: number
  maxSearch: number
  underloadThreshold: number
  allowIdle: boolean
}

/** A candidate destination: its sums taken once. */
interface Dest {
  host: HostLoad
  demand: number
  memMiB: number
  alloc: number
  allocLimit: number
  /** capacity.cpu − demand. */
  headroom: number
  /** Spread groups on the host, built on first need. */
  spreads: Set<string> | undefined
}

/** What one candidate plan adds to a destination, kept apart so that trying a plan never touches the shared `Dest`. */
interface Added {
  demand: number
  memMiB: number
  alloc: number
  spreads: string[]
}

type Overlay = Map<number, Added>

/** A host's demand, memory and allocated vCPUs, summed over its VMs. */
export function totals (h: HostLoad): { demand: number, memMiB: number, alloc: number } {
  let demand = 0
  let memMiB = 0
  let alloc = 0
  for (const vm of h.vms) {
    demand += vm.demand
    memMiB += vm.memMiB
    alloc += vm.cpu
  }
  return { demand, memMiB, alloc }
}

function toDest (h: HostLoad): Dest {
  const { demand, memMiB, alloc } = totals(h)
  return { host: h, demand, memMiB, alloc, allocLimit: allocatable(h.capacity, h.cpuOvercommit).cpu, headroom: h.capacity.cpu - demand, spreads: undefined }
}

function spreadsOf (d: Dest): Set<string> {
  if (d.spreads === undefined) {
    d.spreads = new Set()
    for (const vm of d.host.vms) if (vm.spread != null) d.spreads.add(vm.spread)
  }
  return d.spreads
}

function fitsOn (d: Dest, vm: VmLoad, add?: Added): boolean {
  if (d.demand + (add?.demand ?? 0) + vm.demand > d.host.capacity.cpu + SLACK) return false
  if (d.memMiB + (add?.memMiB ?? 0) + vm.memMiB > d.host.capacity.memMiB) return false
  if (d.alloc + (add?.alloc ?? 0) + vm.cpu > d.allocLimit) return false
  if (vm.spread != null && (spreadsOf(d).has(vm.spread) || add?.spreads.includes(vm.spread) === true)) return false
  return true
}

function cmp (a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/** Worst fit: most head-room first. */
function byHeadroomDesc (a: Dest, b: Dest): number {
  return b.headroom - a.headroom || cmp(a.host.peerId, b.host.peerId)
}

/** Best fit: least head-room first, then least free memory, to pack. */
function byHeadroomAsc (a: Dest, b: Dest): number {
  return a.headroom - b.headroom ||
    (a.host.capacity.memMiB - a.memMiB) - (b.host.capacity.memMiB - b.memMiB) ||
    cmp(a.host.peerId, b.host.peerId)
}

function byMemAsc (a: VmLoad, b: VmLoad): number {
  return a.memMiB - b.memMiB || b.demand - a.demand || cmp(a.id, b.id)
}

function byDemandDesc (a: VmLoad, b: VmLoad): number {
  return b.demand - a.demand || a.memMiB - b.memMiB || cmp(a.id, b.id)
}

export function planOverload (hosts: HostLoad[], src: HostLoad, o: Resolved): PlanResult {
  const demand = demandOf(src)
  const cores = src.capacity.cpu
  const excess = demand - cores
  if (excess <= EPSILON) return planOf(src, [], [])
  const relieved = (shed: number): boolean => demand - shed <= cores + SLACK
  const where = `the partition of ${count(hosts.length, 'host')}`
  const dests = hosts
    .filter(h => h.peerId !== src.peerId && (o.allowIdle || h.idle !== true))
    .map(toDest)
    .sort(byHeadroomDesc)
  if (dests.length === 0) return fail(`cannot relieve ${src.peerId}: no other host of ${where} may receive VMs${o.allowIdle ? '' : ' (idle hosts may not)'}`)

  // From `from` on, the first destination `vm` fits, given what the plan being tried adds.
  const scan = (vm: VmLoad, from: number, overlay?: Overlay): number => {
    for (let k = from; k < dests.length; k++) {
      const d = dests[k]
      // Sorted by head-room and an overlay only lowers it: nothing further on can take this demand.
      if (vm.demand > d.headroom + EPSILON) break
      if (fitsOn(d, vm, overlay?.get(k))) return k
    }
    return -1
  }
  const firstFit = new Map<VmLoad, number>()
  const base = (vm: VmLoad): number => {
    let k = firstFit.get(vm)
    if (k === undefined) {
      k = scan(vm, 0)
      firstFit.set(vm, k)
    }
    return k
  }
  // Hosts before the cached first fit did not fit the VM untouched, and a plan only fills them more.
  const place = (vm: VmLoad, overlay: Overlay): number => {
    const k = base(vm)
    if (k < 0) return -1
    const add = overlay.get(k)
    if (add === undefined || fitsOn(dests[k], vm, add)) return k
    return scan(vm, k + 1, overlay)
  }
  const put = (overlay: Overlay, k: number, vm: VmLoad): void => {
    let add = overlay.get(k)
    if (add === undefined) {
      add = { demand: 0, memMiB: 0, alloc: 0, spreads: [] }
      overlay.set(k, add)
    }
    add.demand += vm.demand
    add.memMiB += vm.memMiB
    add.alloc += vm.cpu
    if (vm.spread != null) add.spreads.push(vm.spread)
  }
  const placeAll = (vms: VmLoad[]): number[] | undefined => {
    const overlay: Overlay = new Map()
    const ks: number[] = []
    for (const vm of vms) {
      const k = place(vm, overlay)
      if (k < 0) return undefined
      put(overlay, k, vm)
      ks.push(k)
    }
    return ks
  }
  const done = (vms: VmLoad[], ks: number[]): PlanResult => planOf(src, vms, ks.map(k => dests[k].host.peerId))

  // Moving a VM that demands nothing sheds nothing.
  const vms = src.vms.filter(vm => vm.demand > 0 && vm.pinned !== true)
  let budget = o.maxSearch
  let cut = false

  // 1. One VM that sheds the excess alone, least memory first.
  const singles = vms.filter(vm => relieved(vm.demand)).sort(byMemAsc)
  for (const vm of singles) {
    if (budget === 0) {
      cut = true
      break
    }
    budget--
    const k = base(vm)
    if (k >= 0) return done([vm], [k])
  }

  // A VM that fits nowhere on its own fits nowhere beside another either.
  const movable = vms.filter(vm => base(vm) >= 0).sort(byDemandDesc)

  // 2. Two VMs, least memory first. Placing the pair in both orders, first
  //    fit, finds an assignment whenever one exists.
  if (o.maxMigrations >= 2) {
    const pairs: Array<{ a: VmLoad, b: VmLoad, memMiB: number }> = []
    outer: for (let i = 0; i < movable.length; i++) {
      for (let j = i + 1; j < movable.length; j++) {
        // By demand, largest first: every later partner sheds less.
        if (!relieved(movable[i].demand + movable[j].demand)) break
        if (budget === 0) {
          cut = true
          break outer
        }
        budget--
        pairs.push({ a: movable[i], b: movable[j], memMiB: movable[i].memMiB + movable[j].memMiB })
      }
    }
    pairs.sort((p, q) => p.memMiB - q.memMiB || cmp(p.a.id, q.a.id) || cmp(p.b.id, q.b.id))
    for (const { a, b } of pairs) {
      const ab = placeAll([a, b])
      if (ab !== undefined) return done([a, b], ab)
      const ba = placeAll([b, a])
      if (ba !== undefined) return done([b, a], ba)
    }
  }

  // 3. Greedy, largest demand first, up to maxMigrations. Taken in that
  //    order, no move of the result is redundant: without any one of them
  //    the rest shed less than without the last, which was not enough.
  const overlay: Overlay = new Map()
  const chosen: VmLoad[] = []
  const ks: number[] = []
  let shed = 0
  for (const vm of movable) {
    if (relieved(shed) || chosen.length === o.maxMigrations) break
    const k = place(vm, overlay)
    if (k < 0) continue
    put(overlay, k, vm)
    chosen.push(vm)
    ks.push(k)
    shed += vm.demand
  }
  if (relieved(shed)) return done(chosen, ks)

  const parts = [`cannot shed ${num(excess)} vCPU of demand from ${src.peerId} within ${where}`]
  if (singles.length > 0) {
    const s = singles[0]
    parts.push(`no destination has ${num(s.demand)} vCPU of headroom and ${s.memMiB} MiB free${s.spread != null ? ` outside spread group ${s.spread}` : ''} for a VM that would do it alone`)
  }
  parts.push(`${movable.length} of its ${count(src.vms.length, 'VM')} fit on another host and ${count(chosen.length, 'migration')} of them shed only ${num(shed)} vCPU (maxMigrations ${o.maxMigrations})`)
  if (cut) parts.push(`search stopped at maxSearch (${o.maxSearch})`)
  return fail(parts.join('; '))
}

export function planUnderload (hosts: HostLoad[], src: HostLoad, o: Resolved): PlanResult {
  // Already empty: the goal holds, the caller may mark it idle.
  if (src.vms.length === 0) return planOf(src, [], [])
  // Not the problem any more: an empty plan would tell the caller to idle a busy host.
  if (!isUnderloaded(src, o.underloadThreshold)) {
    return fail(src.idle === true
      ? `${src.peerId} is idle, not underloaded`
      : `${src.peerId} is not underloaded: demand ${num(demandOf(src))} of ${src.capacity.cpu} cores is not below ${o.underloadThreshold} of them`)
  }
  if (src.vms.some(vm => vm.pinned === true)) return fail(`cannot evacuate ${src.peerId}: it holds reservations for VMs on their way`)
  if (src.vms.length > o.maxMigrations) return fail(`cannot evacuate ${src.peerId}: its ${count(src.vms.length, 'VM')} need more than maxMigrations (${o.maxMigrations}) migrations`)
  const where = `the partition of ${count(hosts.length, 'host')}`
  const dests = hosts
    .filter(h => h.peerId !== src.peerId && h.idle !== true)
    .map(toDest)
    .sort(byHeadroomAsc)
  if (dests.length === 0) return fail(`cannot evacuate ${src.peerId}: no other host of ${where} is awake`)

  // Largest first, as in first-fit decreasing: the big VMs are the hard ones to fit.
  const order = [...src.vms].sort((a, b) => b.demand - a.demand || b.memMiB - a.memMiB || cmp(a.id, b.id))
  const ks: string[] = []
  for (const vm of order) {
    let k = firstWithHeadroom(dests, vm.demand - EPSILON)
    while (k < dests.length && !fitsOn(dests[k], vm)) k++
    if (k === dests.length) {
      return fail(`cannot evacuate ${src.peerId}: no other awake host of ${where} has room for ${vm.id} ` +
        `(${num(vm.demand)} vCPU of demand, ${vm.cpu} vCPU allocated, ${vm.memMiB} MiB${vm.spread != null ? `, spread ${vm.spread}` : ''})` +
        (ks.length > 0 ? ` after placing ${count(ks.length, 'larger VM')}` : ''))
    }
    const d = dests[k]
    dests.splice(k, 1)
    d.demand += vm.demand
    d.memMiB += vm.memMiB
    d.alloc += vm.cpu
    d.headroom = d.host.capacity.cpu - d.demand
    if (vm.spread != null) spreadsOf(d).add(vm.spread)
    dests.splice(insertionPoint(dests, d), 0, d)
    ks.push(d.host.peerId)
  }
  return planOf(src, order, ks)
}

/** In `dests` sorted by head-room ascending, the first with at least `h`. */
function firstWithHeadroom (dests: Dest[], h: number): number {
  let lo = 0
  let hi = dests.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (dests[mid].headroom < h) lo = mid + 1
    else hi = mid
  }
  return lo
}

function insertionPoint (dests: Dest[], d: Dest): number {
  let lo = 0
  let hi = dests.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (byHeadroomAsc(dests[mid], d) < 0) lo = mid + 1
    else hi = mid
  }
  return lo
}

function planOf (src: HostLoad, vms: VmLoad[], to: string[]): PlanResult {
  const migrations = vms.map((vm, i) => ({ vmId: vm.id, from: src.peerId, to: to[i], memMiB: vm.memMiB }))
  return { ok: true, migrations, memMovedMiB: migrations.reduce((s, m) => s + m.memMiB, 0) }
}

export function fail (reason: string): PlanResult {
  return { ok: false, reason }
}

function num (x: number): string {
  return String(Math.round(x * 100) / 100)
}

export function count (n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`
}
