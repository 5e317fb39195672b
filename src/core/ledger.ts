/**
 * One node's own capacity book: the VMs it runs and the reservations (leases)
 * it has promised. Only the owner of the capacity writes here, one call at a
 * time, so a reservation is atomic: two concurrent placements through
 * different agents can never both take the last slot.
 *
 * A lease id is used once. Once its lease is committed, released or expired
 * — or once a commit or release asked for it before it existed — the id is
 * closed for `CLOSED_LEASE_KEEP_MS`, and a reserve of it is refused. So when a
 * placer's reserve and commit travel apart (a stream broke, the commit was
 * asked again on a new one), an answer "no such reservation" is final: the
 * late reserve cannot make the VM appear after all.
 *
 * What one peer may hold is bounded (`PeerLeaseBound`): a peer that runs the
 * code of the cluster but not its intent (a bug, or a process that got the
 * swarm key) could otherwise reserve the whole node for two minutes at a time
 * and starve every honest create. Only leases count: a committed VM is no
 * longer the placer's. The bound is per peer id, and a process can make as
 * many peer ids as it likes: it limits a misbehaving agent, it does not keep
 * out an attacker. The swarm key does that.
 */
import { constraintMiss } from './constraints.ts'
import { type Constraints, LIMITS } from './messages.ts'
import { expectNumber } from './options.ts'
import { add, allocatable, free, fits, sub, sum, type Resources, ZERO } from './resources.ts'

export interface Lease {
  id: string
  resources: Resources
  expiresAtMs: number
}

/** How long a lease id stays closed: far longer than any request is in flight. */
export const CLOSED_LEASE_KEEP_MS = 5 * 60_000
/** The most lease ids kept closed at once (the oldest are forgotten first): bounded memory. */
export const CLOSED_LEASE_MAX = 100_000

/**
 * What one peer may hold in leases on this node at once. The node's own
 * placements (no holder) are not bounded: it answers to itself.
 */
export interface PeerLeaseBound {
  /**
   * Leases at once. Default 64: a placer holds one lease per create in flight
   * to this node, for one round trip (reserve and commit travel together); the
   * placement benchmark keeps 64 creates in flight across the whole cluster.
   */
  maxLeases: number
  /**
   * Share of the node's allocatable CPU and memory, each, that one peer's
   * leases may cover, from 0 to 1. Default 0.5: a peer can never hold the
   * node alone, and half a node in flight from one placer is far more than
   * honest bursts reach (leases become VMs within milliseconds). A peer that
   * holds no lease may always ask for one, so a VM as large as the node can
   * still be placed.
   */
  maxShare: number
}

export const DEFAULT_PEER_LEASE_BOUND: Readonly<PeerLeaseBound> = Object.freeze({ maxLeases: 64, maxShare: 0.5 })

export type ReserveResult = { ok: true } | { ok: false, reason: string }
export type CommitResult = { ok: true, resources: Resources } | { ok: false, reason: 'unknown-lease' | 'expired' }

export class Ledger {
  readonly capacity: Resources
  readonly cpuOvercommit: number
  /** This node's labels: what `admit` matches constraints against. */
  readonly labels: Readonly<Record<string, string>>
  readonly #vms = new Map<string, Resources>()
  /** Spread groups of the VMs and of the live leases: two creates of one group never both land here. */
  readonly #vmSpread = new Map<string, string>()
  readonly #leaseSpread = new Map<string, string>()
  readonly #leases = new Map<string, Lease>()
  /** Who asked for each lease that has a holder, and what each holder holds. */
  readonly #leaseHolder = new Map<string, string>()
  readonly #held = new Map<string, { count: number, resources: Resources }>()
  readonly #bound: PeerLeaseBound
  /** Lease ids used up, with when they were closed, oldest first. */
  readonly #closed = new Map<string, number>()
  #used: Resources = ZERO
  #reserved: Resources = ZERO

  constructor (capacity: Resources, cpuOvercommit = 1, labels: Readonly<Record<string, string>> = {}, bound: PeerLeaseBound = DEFAULT_PEER_LEASE_BOUND) {
    this.capacity = capacity
    this.cpuOvercommit = cpuOvercommit
    this.labels = labels
    this.#bound = {
      maxLeases: expectNumber('maxLeases', bound.maxLeases, { min: 1, integer: true }),
      maxShare: expectNumber('maxShare', bound.maxShare, { above: 0, max: 1 })
    }
  }

  /**
   * The owner's decision on a reservation asked by a placing agent (the
   * place protocol's `reserve`): the node holds fewer VMs than its gossiped
   * state can list, matches the constraints (its labels, its zone, no VM or
   * lease of the spread group), has the room, and `holder` (the peer asking;
   * none for this node itself) stays within its bound. Then the lease is taken.
   */
  admit (leaseId: string, resources: Resources, constraints: Constraints | undefined, ttlMs: number, nowMs: number, holder?: string): ReserveResult {
    this.expire(nowMs)
    if (this.#vms.size + this.#leases.size >= LIMITS.maxVmsPerNode) return { ok: false, reason: `this node already holds ${LIMITS.maxVmsPerNode} VMs, the most one node's gossiped state can list` }
    const miss = constraintMiss(this.labels, constraints, group => this.runsSpread(group))
    if (miss != null) return { ok: false, reason: miss.reason }
    if (holder != null) {
      const over = this.#overBound(holder, resources)
      if (over != null) return { ok: false, reason: over }
    }
    const r = this.reserve(leaseId, resources, ttlMs, nowMs)
    if (!r.ok) return r
    if (constraints?.spread != null) this.#leaseSpread.set(leaseId, constraints.spread)
    if (holder != null) {
      this.#leaseHolder.set(leaseId, holder)
      const h = this.#held.get(holder) ?? { count: 0, resources: ZERO }
      this.#held.set(holder, { count: h.count + 1, resources: add(h.resources, resources) })
    }
    return r
  }

  /** What `holder` holds in leases now. */
  heldBy (holder: string): { count: number, resources: Resources } {
    return this.#held.get(holder) ?? { count: 0, resources: ZERO }
  }

  /** Why `holder` may not take `resources` more, or undefined if it may. */
  #overBound (holder: string, resources: Resources): string | undefined {
    const h = this.#held.get(holder)
    if (h == null || h.count === 0) return undefined
    const { maxLeases, maxShare } = this.#bound
    if (h.count >= maxLeases) return `this peer already holds ${h.count} reservations here, the most one peer may (${maxLeases})`
    const cap = allocatable(this.capacity, this.cpuOvercommit)
    const after = add(h.resources, resources)
    if (after.cpu > maxShare * cap.cpu || after.memMiB > maxShare * cap.memMiB) {
      return `this peer already holds ${h.resources.cpu} vCPU / ${h.resources.memMiB} MiB in reservations here: one peer may hold at most ${Math.round(maxShare * 100)} % of the node`
    }
    return undefined
  }

  /** Whether a VM or a live lease of this node belongs to the spread group. */
  runsSpread (group: string): boolean {
    for (const g of this.#vmSpread.values()) if (g === group) return true
    for (const g of this.#leaseSpread.values()) if (g === group) return true
    return false
  }

  get used (): Resources { return this.#used }
  get reserved (): Resources { return this.#reserved }
  get free (): Resources { return free(this.capacity, add(this.#used, this.#reserved), this.cpuOvercommit) }

  /** Promises `resources` until `nowMs + ttlMs`, if they fit next to everything already promised. */
  reserve (leaseId: string, resources: Resources, ttlMs: number, nowMs: number): ReserveResult {
    this.expire(nowMs)
    if (this.#leases.has(leaseId)) return { ok: false, reason: 'lease id already in use' }
    if (this.#closed.has(leaseId)) return { ok: false, reason: 'lease id already used: the reservation was given up' }
    const available = this.free
    if (!fits(resources, available)) {
      return { ok: false, reason: `not enough free capacity: need ${resources.cpu} vCPU / ${resources.memMiB} MiB, free ${Math.max(0, available.cpu)} vCPU / ${Math.max(0, available.memMiB)} MiB` }
    }
    this.#leases.set(leaseId, { id: leaseId, resources, expiresAtMs: nowMs + ttlMs })
    this.#reserved = add(this.#reserved, resources)
    return { ok: true }
  }

  /** Turns a live lease into a running VM's usage. */
  commit (leaseId: string, vmId: string, nowMs: number): CommitResult {
    const lease = this.#leases.get(leaseId)
    if (lease == null) {
      this.#close(leaseId, nowMs)
      return { ok: false, reason: 'unknown-lease' }
    }
    if (lease.expiresAtMs <= nowMs) {
      this.#drop(lease, nowMs)
      return { ok: false, reason: 'expired' }
    }
    const spread = this.#leaseSpread.get(leaseId)
    this.#drop(lease, nowMs)
    this.addVm(vmId, lease.resources, spread)
    return { ok: true, resources: lease.resources }
  }

  release (leaseId: string, nowMs: number): boolean {
    const lease = this.#leases.get(leaseId)
    if (lease == null) {
      this.#close(leaseId, nowMs)
      return false
    }
    this.#drop(lease, nowMs)
    return true
  }

  /** Drops the leases whose time is up; returns their ids. */
  expire (nowMs: number): string[] {
    const gone: string[] = []
    for (const lease of this.#leases.values()) {
      if (lease.expiresAtMs <= nowMs) {
        this.#drop(lease, nowMs)
        gone.push(lease.id)
      }
    }
    for (const [id, closedAtMs] of this.#closed) {
      if (closedAtMs > nowMs - CLOSED_LEASE_KEEP_MS) break
      this.#closed.delete(id)
    }
    return gone
  }

  /** Records a VM's usage directly (restoring from the store, or a local placement). */
  addVm (vmId: string, resources: Resources, spread?: string): void {
    const old = this.#vms.get(vmId)
    if (old != null) this.#used = sub(this.#used, old)
    this.#vms.set(vmId, resources)
    this.#used = add(this.#used, resources)
    if (spread != null) this.#vmSpread.set(vmId, spread)
    else this.#vmSpread.delete(vmId)
  }

  removeVm (vmId: string): boolean {
    const old = this.#vms.get(vmId)
    if (old == null) return false
    this.#vms.delete(vmId)
    this.#vmSpread.delete(vmId)
    this.#used = sub(this.#used, old)
    return true
  }

  hasVm (vmId: string): boolean {
    return this.#vms.has(vmId)
  }

  get leaseCount (): number { return this.#leases.size }

  /** Recomputes the totals from scratch: a check used by the tests. */
  audit (): { used: Resources, reserved: Resources } {
    return { used: sum(this.#vms.values()), reserved: sum([...this.#leases.values()].map(l => l.resources)) }
  }

  #drop (lease: Lease, nowMs: number): void {
    this.#leases.delete(lease.id)
    this.#leaseSpread.delete(lease.id)
    const holder = this.#leaseHolder.get(lease.id)
    if (holder != null) {
      this.#leaseHolder.delete(lease.id)
      const h = this.#held.get(holder)!
      if (h.count <= 1) this.#held.delete(holder)
      else this.#held.set(holder, { count: h.count - 1, resources: sub(h.resources, lease.resources) })
    }
    this.#reserved = sub(this.#reserved, lease.resources)
    this.#close(lease.id, nowMs)
  }

  #close (leaseId: string, nowMs: number): void {
    this.#closed.delete(leaseId)
    this.#closed.set(leaseId, nowMs)
    if (this.#closed.size > CLOSED_LEASE_MAX) this.#closed.delete(this.#closed.keys().next().value!)
  }
}
