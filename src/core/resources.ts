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
 * What a node can still promise: memory is never over-committed, CPU may be
 * by `cpuOvercommit` (a ratio ≥ 1), as DESIGN.md's invariant 3 says.
 */
export function free (capacity: Resources, committed: Resources, cpuOvercommit = 1): Resources {
  return {
    cpu: Math.floor(capacity.cpu * cpuOvercommit) - committed.cpu,
    memMiB: capacity.memMiB - committed.memMiB
  }
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
