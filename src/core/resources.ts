/**
 * Resource vectors. CPU in whole vCPUs, memory in MiB, as on the wire.
 * Pure arithmetic: every function returns a new vector.
 */
export interface Resources {
  cpu: number
  memMiB: number
}

export const ZERO: Resources = Object.freeze({ cpu: 0, memMiB: 0 })

export function add (a: Resources, b: Resources): Resources {
  return { cpu: a.cpu + b.cpu, memMiB: a.memMiB + b.memMiB }
}

export function sub (a: Resources, b: Resources): Resources {
  return { cpu: a.cpu - b.cpu, memMiB: a.memMiB - b.memMiB }
}

export function sum (list: Iterable<Resources>): Resources {
  let cpu = 0
  let memMiB = 0
  for (const r of list) {
    cpu += r.cpu
    memMiB += r.memMiB
  }
  return { cpu, memMiB }
}

/** Whether `need` fits in `free` on every dimension. */
export function fits (need: Resources, free: Resources): boolean {
  return need.cpu <= free.cpu && need.memMiB <= free.memMiB
}

/**
 * The most a node may allocate: memory is never over-committed, CPU may be by
 * `cpuOvercommit` (a ratio ≥ 1), rounded down to whole vCPUs (invariant 3).
 * The one place this rule is written: reservations, placement, the planner and
 * the migration admission all read it from here.
 */
export function allocatable (capacity: Resources, cpuOvercommit = 1): Resources {
  return { cpu: Math.floor(capacity.cpu * cpuOvercommit), memMiB: capacity.memMiB }
}

/** What a node can still promise once `committed` is running or reserved. */
export function free (capacity: Resources, committed: Resources, cpuOvercommit = 1): Resources {
  return sub(allocatable(capacity, cpuOvercommit), committed)
}

/** The larger of the two shares of capacity that `r` takes: the dominant share. */
export function dominantShare (r: Resources, capacity: Resources): number {
  const c = capacity.cpu > 0 ? r.cpu / capacity.cpu : (r.cpu > 0 ? Infinity : 0)
  const m = capacity.memMiB > 0 ? r.memMiB / capacity.memMiB : (r.memMiB > 0 ? Infinity : 0)
  return Math.max(c, m)
}

export function equals (a: Resources, b: Resources): boolean {
  return a.cpu === b.cpu && a.memMiB === b.memMiB
}
