/**
 * Cooperative rebalancing after DVMS (Quesnel, Lèbre, Südholt): the
 * sans-I/O state machine one node runs. The agent feeds it over
 * `/discovery/rebalance/1.0.0`; the simulator feeds it over a simulated
 * network. Both run this same code.
 *
 * A node with a problem (overload; underload when consolidation is on)
 * starts an event: a token that travels along the ring and carries the
 * partition — the states of the nodes it has gathered. A free node that
 * receives the token joins the partition (a node is in at most one at a
 * time), becomes its leader and computes a plan over the partition's nodes.
 * With a plan, it orders the migrations and, when they are reported done,
 * dissolves the partition; without one, it passes the token on and the
 * partition grows. Nodes of other partitions are skipped. A token back at a
 * node of its own partition has made a full turn: the partition is blocked
 * (it waits for nodes to free up as it goes round again); blocked partitions
 * that meet merge, the one with the smaller id taking the node; a second full
 * turn dissolves the partition as unsolvable for now. A member that hears
 * nothing of its partition for `partitionTimeoutMs` leaves it (a member, or
 * the token, died).
 *
 * With locality (the agent passes each peer's measured round trip), the
 * token goes to the nearest peer it has not visited in this turn rather
 * than the ring's next node — so a partition grows among the nearest nodes
 * first, the nodes of one site before another's (after DVMS's Vivaldi
 * variant, which cut the migrations between sites by 72 %). The visited
 * nodes travel with the token (`near`); once every peer was visited the
 * token goes back to the initiator, closing the turn; past `NEAR_HOPS` nodes,
 * or when the peers left were never measured, it walks the ring past the
 * visited ones. Without round trips (the simulator, locality off) it walks
 * the ring.
 */
import { plan, isOverloaded, isUnderloaded, type HostLoad, type Migration, type PlanOptions, type PlanResult, type Problem } from './planner.ts'
import type { EventToken, Outcome, RebalanceMessage } from './rebalance-messages.ts'
import { allocatable } from './resources.ts'
import type { Ring } from './ring.ts'
import { nextHop, type RttOf } from './token-route.ts'

export { NEAR_HOPS, type RttOf } from './token-route.ts'

export interface RebalanceConfig {
  /** Evacuate nearly empty nodes when the others can absorb their VMs (opt-in). */
  consolidate: boolean
  /** A member that hears nothing of its partition for this long leaves it. */
  partitionTimeoutMs: number
  /** After an unsolvable event, wait this long before starting another. */
  retryAfterUnsolvableMs: number
  /** A token carries at most this many nodes; past it, it only looks for a plan among them. */
  maxPartitionSize: number
  /** Full turns of the ring after which an event is unsolvable for now. */
  maxTurns: number
  /**
   * Plans first aim to leave the source and every destination at or below
   * this share of their cores (0..1]; a plan that only brings them to 100 %
   * is taken once the partition has `fallbackPartitionSize` nodes or is
   * blocked. Default 0.95: a destination filled to the brim is the next
   * overload when one of its VMs' demand rises. Measured in the simulator
   * (vmplaces, 1,024 hosts, seed 7), cumulated overload time: 1,629 s at 1.0,
   * 1,375 s at 0.95, 1,471 s at 0.9 (aiming lower makes partitions grow and
   * migrations multiply).
   */
  targetUtilization: number
  fallbackPartitionSize: number
  planOptions?: PlanOptions
}

export const DEFAULT_REBALANCE: RebalanceConfig = {
  consolidate: false,
  partitionTimeoutMs: 30_000,
  retryAfterUnsolvableMs: 10_000,
  maxPartitionSize: 64,
  maxTurns: 2,
  targetUtilization: 0.95,
  fallbackPartitionSize: 4
}

/**
 * Hosts as the planner should see them to aim at `target` of their cores:
 * cores scaled down, over-commit scaled up so the allocation limit stays the
 * same, memory untouched.
 */
export function withTarget (hosts: HostLoad[], target: number): HostLoad[] {
  if (target >= 1) return hosts
  return hosts.map(h => {
    const cpu = h.capacity.cpu * target
    // The same allocation limit, floor(cores × over-commit), whatever the rounding of cpu × ratio.
    const limit = allocatable(h.capacity, h.cpuOvercommit).cpu
    return { ...h, capacity: { cpu, memMiB: h.capacity.memMiB }, cpuOvercommit: cpu > 0 ? (limit + 0.5) / cpu : h.cpuOvercommit }
  })
}

/** A plan that aims at the target utilization, or (when `fallback`) one that merely removes the problem. */
export function planWithTarget (hosts: HostLoad[], problem: Problem, target: number, fallback: boolean, opts?: PlanOptions): PlanResult {
  if (target < 1 && problem.kind === 'overload') {
    const aimed = plan(withTarget(hosts, target), problem, opts)
    if (aimed.ok || !fallback) return aimed
  }
  return plan(hosts, problem, opts)
}

export type { EventToken, Outcome, RebalanceMessage }

export type Note =
  | { kind: 'initiated', partitionId: string, problem: Problem }
  | { kind: 'joined' | 'merged' | 'blocked' | 'left-timeout', partitionId: string }
  | { kind: 'planned', partitionId: string, migrations: number, size: number }
  | { kind: 'ended', partitionId: string, outcome: Outcome, problem: Problem, size: number, durationMs: number, initiator: string }

export interface Effects {
  send: Array<{ to: string, msg: RebalanceMessage }>
  /** Migrations this node must run as their source. */
  migrate: Array<{ partitionId: string, migration: Migration }>
  notes: Note[]
}

interface Membership {
  partitionId: string
  lastProgressMs: number
  blocked: boolean
  initiator: boolean
}

interface Leading {
  token: EventToken
  pending: Set<string>
  failed: number
  migrations: number
}

function effects (): Effects {
  return { send: [], migrate: [], notes: [] }
}

export class RebalanceNode {
  readonly self: string
  readonly #config: RebalanceConfig
  #membership?: Membership
  #leading?: Leading
  /** Migrations this node runs as source: vm id → (partition, leader). */
  readonly #sourcing = new Map<string, { partitionId: string, leader: string }>()
  #counter = 0
  #cooldownUntilMs = 0

  constructor (self: string, config: RebalanceConfig = DEFAULT_REBALANCE) {
    this.self = self
    this.#config = config
  }

  /** The partition this node belongs to, if any. */
  get partitionId (): string | undefined { return this.#membership?.partitionId }
  get isLeader (): boolean { return this.#leading != null }

  /** The monitor: detects a problem and starts an event; times out silent partitions. `rtt`: locality (see above). */
  tick (nowMs: number, local: HostLoad, ring: Ring, rtt?: RttOf): Effects {
    const fx = effects()
    const m = this.#membership
    if (m != null) {
      if (nowMs - m.lastProgressMs > this.#config.partitionTimeoutMs) {
        if (this.#leading != null) this.#finish(fx, 'timeout', nowMs)
        else {
          fx.notes.push({ kind: 'left-timeout', partitionId: m.partitionId })
          this.#leave(nowMs, m.initiator)
        }
      }
      return fx
    }
    if (nowMs < this.#cooldownUntilMs || this.#sourcing.size > 0) return fx
    let problem: Problem | undefined
    if (isOverloaded(local)) problem = { kind: 'overload', peerId: this.self }
    else if (this.#config.consolidate && local.idle !== true && isUnderloaded(local, this.#config.planOptions?.underloadThreshold)) problem = { kind: 'underload', peerId: this.self }
    if (problem == null) return fx
    const partitionId = `${this.self}#${++this.#counter}`
    this.#membership = { partitionId, lastProgressMs: nowMs, blocked: false, initiator: true }
    const token: EventToken = { type: 'event', partitionId, initiator: this.self, problem, members: [local], turns: 0, blocked: false, hops: 0, startedAtMs: nowMs }
    fx.notes.push({ kind: 'initiated', partitionId, problem })
    this.#forward(fx, token, ring, nowMs, rtt)
    return fx
  }

  /** A message from another node (or looped back from this one). */
  receive (from: string, msg: RebalanceMessage, nowMs: number, local: HostLoad, ring: Ring, rtt?: RttOf): Effects {
    const fx = effects()
    const m = this.#membership
    switch (msg.type) {
      case 'event':
        this.#onToken(fx, msg, nowMs, local, ring, rtt)
        break
      case 'blocked':
        if (m?.partitionId === msg.partitionId) {
          m.blocked = true
          m.lastProgressMs = nowMs
        }
        break
      case 'order':
        if (m?.partitionId !== msg.partitionId) {
          // We left that partition (timeout, merge): refuse its migrations so its leader does not wait.
          for (const migration of msg.migrations) {
            if (migration.from === this.self) fx.send.push({ to: msg.leader, msg: { type: 'report', partitionId: msg.partitionId, vmId: migration.vmId, ok: false, reason: 'the source is no longer in this partition' } })
          }
          break
        }
        m.lastProgressMs = nowMs
        for (const migration of msg.migrations) {
          if (migration.from !== this.self) continue
          this.#sourcing.set(migration.vmId, { partitionId: msg.partitionId, leader: msg.leader })
          fx.migrate.push({ partitionId: msg.partitionId, migration })
        }
        break
      case 'report':
        this.#onReport(fx, msg.partitionId, msg.vmId, msg.ok, nowMs)
        break
      case 'dissolve':
        if (m?.partitionId === msg.partitionId && this.#leading == null) {
          if (msg.outcome !== 'solved') this.#leave(nowMs, m.initiator)
          else this.#leave(nowMs, false)
        }
        break
    }
    void from
    return fx
  }

  /** A migration this node ran as source has ended (committed or aborted). */
  migrationEnded (vmId: string, ok: boolean, nowMs: number, reason?: string): Effects {
    const fx = effects()
    const s = this.#sourcing.get(vmId)
    if (s == null) return fx
    this.#sourcing.delete(vmId)
    if (s.leader === this.self) this.#onReport(fx, s.partitionId, vmId, ok, nowMs)
    else fx.send.push({ to: s.leader, msg: { type: 'report', partitionId: s.partitionId, vmId, ok, ...(reason != null ? { reason } : {}) } })
    return fx
  }

  #onToken (fx: Effects, token: EventToken, nowMs: number, local: HostLoad, ring: Ring, rtt?: RttOf): void {
    const m = this.#membership
    const next: EventToken = { ...token, hops: token.hops + 1, members: token.members.map(h => h.peerId === this.self ? local : h) }
    if (m?.partitionId !== next.partitionId && next.members.some(h => h.peerId === this.self)) {
      // We left this partition (timeout, merge): we are no longer one of its members.
      next.members = next.members.filter(h => h.peerId !== this.self)
      if (next.members.length === 0) {
        // Every member went elsewhere (merged into other partitions): the event ends here.
        this.#end(fx, next, 'unsolvable', nowMs)
        return
      }
    }
    if (m == null) {
      if (next.members.length >= this.#config.maxPartitionSize) {
        this.#forward(fx, next, ring, nowMs, rtt)
        return
      }
      this.#membership = { partitionId: next.partitionId, lastProgressMs: nowMs, blocked: next.blocked, initiator: false }
      next.members = [...next.members, local]
      fx.notes.push({ kind: 'joined', partitionId: next.partitionId })
      this.#tryPlan(fx, next, ring, nowMs, rtt)
      return
    }
    if (m.partitionId === next.partitionId) {
      m.lastProgressMs = nowMs
      if (next.initiator !== this.self) {
        // A member on the way round: its state is fresh in the token now; try again, go on.
        this.#tryPlan(fx, next, ring, nowMs, rtt)
        return
      }
      // Back at its start: a full turn. The next one starts nearest-first again.
      next.turns++
      delete next.near
      if (next.turns >= this.#config.maxTurns) {
        this.#end(fx, next, 'unsolvable', nowMs)
        return
      }
      if (!next.blocked) {
        next.blocked = true
        m.blocked = true
        fx.notes.push({ kind: 'blocked', partitionId: next.partitionId })
        for (const h of next.members) if (h.peerId !== this.self) fx.send.push({ to: h.peerId, msg: { type: 'blocked', partitionId: next.partitionId } })
      }
      this.#tryPlan(fx, next, ring, nowMs, rtt)
      return
    }
    // A node of another partition. Two blocked partitions merge: the smaller id takes the node.
    if (next.blocked && m.blocked && this.#leading == null && this.#sourcing.size === 0 && next.partitionId < m.partitionId && next.members.length < this.#config.maxPartitionSize) {
      this.#membership = { partitionId: next.partitionId, lastProgressMs: nowMs, blocked: true, initiator: false }
      next.members = [...next.members, local]
      fx.notes.push({ kind: 'merged', partitionId: next.partitionId })
      this.#tryPlan(fx, next, ring, nowMs, rtt)
      return
    }
    this.#forward(fx, next, ring, nowMs, rtt)
  }

  #tryPlan (fx: Effects, token: EventToken, ring: Ring, nowMs: number, rtt?: RttOf): void {
    const c = this.#config
    const fallback = token.blocked || token.members.length >= c.fallbackPartitionSize
    let result = token.members.length >= 2 ? planWithTarget(token.members, token.problem, c.targetUtilization, fallback, c.planOptions) : undefined
    if (result?.ok !== true && fallback && token.problem.kind === 'overload' && token.members.some(h => h.idle === true)) {
      // No plan among the active nodes: wake idle (consolidated) ones.
      result = plan(token.members, token.problem, { ...c.planOptions, allowIdle: true })
    }
    if (result?.ok !== true) {
      this.#forward(fx, token, ring, nowMs, rtt)
      return
    }
    this.#leading = { token, pending: new Set(result.migrations.map(x => x.vmId)), failed: 0, migrations: result.migrations.length }
    fx.notes.push({ kind: 'planned', partitionId: token.partitionId, migrations: result.migrations.length, size: token.members.length })
    const bySource = new Map<string, Migration[]>()
    for (const mig of result.migrations) bySource.set(mig.from, [...(bySource.get(mig.from) ?? []), mig])
    for (const [source, migrations] of bySource) {
      const order: RebalanceMessage = { type: 'order', partitionId: token.partitionId, leader: this.self, migrations }
      if (source === this.self) {
        for (const migration of migrations) {
          this.#sourcing.set(migration.vmId, { partitionId: token.partitionId, leader: this.self })
          fx.migrate.push({ partitionId: token.partitionId, migration })
        }
      } else fx.send.push({ to: source, msg: order })
    }
    if (result.migrations.length === 0) this.#finish(fx, 'solved', nowMs)
  }

  #forward (fx: Effects, token: EventToken, ring: Ring, nowMs: number, rtt?: RttOf): void {
    const hop = token.hops > this.#config.maxTurns * ring.size + 1 ? undefined : nextHop(token, this.self, ring, rtt)
    if (hop == null) {
      this.#end(fx, token, 'unsolvable', nowMs)
      return
    }
    fx.send.push({ to: hop.to, msg: hop.token })
  }

  #onReport (fx: Effects, partitionId: string, vmId: string, ok: boolean, nowMs: number): void {
    const l = this.#leading
    if (l == null || l.token.partitionId !== partitionId || !l.pending.has(vmId)) return
    l.pending.delete(vmId)
    if (!ok) l.failed++
    if (this.#membership != null) this.#membership.lastProgressMs = nowMs
    if (l.pending.size === 0) this.#finish(fx, l.failed === 0 ? 'solved' : 'failed', nowMs)
  }

  /** Ends the partition this node leads (its plan is done, failed or timed out). */
  #finish (fx: Effects, outcome: Outcome, nowMs: number): void {
    const l = this.#leading
    if (l == null) return
    this.#leading = undefined
    this.#end(fx, l.token, outcome, nowMs)
  }

  /**
   * Ends a partition here, whether or not this node is (still) one of its
   * members: tells every member, notes the outcome, and leaves it if we are in it.
   */
  #end (fx: Effects, token: EventToken, outcome: Outcome, nowMs: number): void {
    for (const h of token.members) if (h.peerId !== this.self) fx.send.push({ to: h.peerId, msg: { type: 'dissolve', partitionId: token.partitionId, outcome } })
    fx.notes.push({ kind: 'ended', partitionId: token.partitionId, outcome, problem: token.problem, size: token.members.length, durationMs: nowMs - token.startedAtMs, initiator: token.initiator })
    const m = this.#membership
    if (m?.partitionId === token.partitionId) this.#leave(nowMs, m.initiator && outcome !== 'solved')
  }

  #leave (nowMs: number, cooldown: boolean): void {
    this.#membership = undefined
    if (cooldown) this.#cooldownUntilMs = nowMs + this.#config.retryAfterUnsolvableMs
  }
}
