/**
 * The algorithms compared on the same trace:
 * - `none`: static placement, nothing moves;
 * - `centralized`: one global planner over the whole cluster every period
 *   (30 s), as Snooze or Entropy would; its planning time is its compute time
 *   measured on this machine (or a fixed delay), applied as simulated delay;
 * - `dvms`: our core/rebalance.ts on every host, messages over the simulated network.
 */
import { applyPlan, plan, type HostLoad, type Migration, type Problem } from '../core/planner.ts'
import { DEFAULT_REBALANCE, planWithTarget, RebalanceNode, type Effects } from '../core/rebalance.ts'
import { Ring } from '../core/ring.ts'
import type { SimHost, World } from './world.ts'

export type AlgorithmName = 'none' | 'centralized' | 'dvms'
export const ALGORITHMS: AlgorithmName[] = ['none', 'centralized', 'dvms']

export interface AlgorithmStats {
  /** Time from a problem noticed to a plan decided, ms. */
  planMs: number[]
  /** Time from a problem noticed to its migrations done, ms (solved events only). */
  solveMs: number[]
  partitionSizes: number[]
  solved: number
  unsolvable: number
  failed: number
  /** Wall-clock compute time of the centralized planner per period, ms. */
  computeMs: number[]
}

export function emptyStats (): AlgorithmStats {
  return { planMs: [], solveMs: [], partitionSizes: [], solved: 0, unsolvable: 0, failed: 0, computeMs: [] }
}

export interface AlgorithmOptions {
  monitorMs: number
  centralPeriodMs: number
  /** 'measured', or a fixed planning delay in ms (deterministic runs). */
  centralDelay: 'measured' | number
  consolidate: boolean
}

export function installCentralized (world: World, stats: AlgorithmStats, opts: AlgorithmOptions): void {
  world.every(opts.centralPeriodMs, opts.centralPeriodMs, () => {
    const started = performance.now()
    let working: HostLoad[] = world.hosts.map(h => world.hostLoad(h))
    const index = new Map(working.map((h, i) => [h.peerId, i]))
    const orders: Migration[] = []
    const noticed: number[] = []
    const problems: Problem[] = [...world.overloaded].sort((a, b) => a - b).map(i => ({ kind: 'overload', peerId: world.hosts[i].id }))
    if (opts.consolidate) {
      for (const h of world.hosts) if (world.isUnderloaded(h)) problems.push({ kind: 'underload', peerId: h.id })
    }
    for (const problem of problems) {
      // The same aim as DVMS's leaders (core/rebalance.ts): leave head-room, else just remove the problem.
      let r = planWithTarget(working, problem, DEFAULT_REBALANCE.targetUtilization, true)
      if (!r.ok && problem.kind === 'overload') r = plan(working, problem, { allowIdle: true })
      if (!r.ok) continue
      orders.push(...r.migrations)
      working = applyPlan(working, r.migrations)
      if (problem.kind === 'underload') {
        const i = index.get(problem.peerId)!
        working[i] = { ...working[i], idle: true }
      }
      const h = world.hostById.get(problem.peerId)!
      noticed.push(h.overloadSince ?? world.now)
    }
    const compute = performance.now() - started
    stats.computeMs.push(compute)
    // Every host reports its state to the scheduler once a period.
    world.network.sent += world.hosts.length
    const delay = opts.centralDelay === 'measured' ? compute : opts.centralDelay
    const decidedAt = world.now + delay
    for (const t of noticed) stats.planMs.push(decidedAt - t)
    world.queue.push(decidedAt, () => {
      const evacuated = new Set(orders.filter(o => problems.some(p => p.kind === 'underload' && p.peerId === o.from)).map(o => o.from))
      let pending = orders.length
      for (const o of orders) {
        world.network.sent++ // the order to the source
        world.migrate(o.vmId, o.from, o.to, undefined, () => {
          if (--pending === 0) {
            for (const id of evacuated) {
              const h = world.hostById.get(id)!
              if (h.vms.size === 0) h.idle = true
            }
          }
        })
      }
    })
  })
}

export function installDvms (world: World, stats: AlgorithmStats, opts: AlgorithmOptions): void {
  const config = { ...DEFAULT_REBALANCE, consolidate: opts.consolidate }
  const nodes = world.hosts.map(h => new RebalanceNode(h.id, config))
  const ring = new Ring(world.hosts.map(h => h.id))
  const started = new Map<string, number>()
  // Hosts worth a monitor tick: overloaded, underloaded (with consolidation), or in a partition.
  const watch = new Set<number>()
  const consider = (h: SimHost): void => {
    if (world.isOverloaded(h) || (opts.consolidate && world.isUnderloaded(h)) || nodes[h.idx].partitionId != null) watch.add(h.idx)
  }
  world.onHostChanged = consider
  // The destination of a migration admits it only if it is in no other partition (core/migration-fsm.ts).
  world.partitionOf = h => nodes[h.idx].partitionId
  for (const h of world.hosts) consider(h)

  const handle = (idx: number, fx: Effects): void => {
    const host = world.hosts[idx]
    for (const note of fx.notes) {
      if (note.kind === 'initiated') started.set(note.partitionId, world.now)
      else if (note.kind === 'planned') stats.planMs.push(world.now - (started.get(note.partitionId) ?? world.now))
      else if (note.kind === 'ended') {
        started.delete(note.partitionId)
        stats.partitionSizes.push(note.size)
        if (note.outcome === 'solved') {
          stats.solved++
          stats.solveMs.push(note.durationMs)
          if (note.problem.kind === 'underload') {
            const evacuated = world.hostById.get(note.problem.peerId)!
            if (evacuated.vms.size === 0) evacuated.idle = true
          }
        } else if (note.outcome === 'unsolvable') stats.unsolvable++
        else stats.failed++
      }
    }
    for (const { to, msg } of fx.send) {
      const dst = world.hostById.get(to)!
      world.network.send(() => {
        handle(dst.idx, nodes[dst.idx].receive(host.id, msg, world.now, world.hostLoad(dst), ring))
        consider(dst)
      })
    }
    for (const { partitionId, migration } of fx.migrate) {
      world.migrate(migration.vmId, migration.from, migration.to, partitionId, (ok, reason) => {
        handle(idx, nodes[idx].migrationEnded(migration.vmId, ok, world.now, reason))
        consider(host)
      })
    }
    consider(host)
  }

  world.every(opts.monitorMs, opts.monitorMs, () => {
    for (const idx of [...watch]) {
      const h = world.hosts[idx]
      const node = nodes[idx]
      handle(idx, node.tick(world.now, world.hostLoad(h), ring))
      if (node.partitionId == null && !world.isOverloaded(h) && !(opts.consolidate && world.isUnderloaded(h))) watch.delete(idx)
    }
  })
}
