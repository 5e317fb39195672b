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
 */
import { constraintMiss } from './constraints.ts'
import { type Constraints, LIMITS } from './messages.ts'
import { add, free, fits, sub, sum, type Resources, ZERO } from './resources.ts'

export interface Lease {
  id: string
  resources: Resources
  expiresAtMs: number
}

/** How long a lease id stays closed: far longer than any request is in flight. */
export const CLOSED_LEASE_KEEP_MS = 5 * 60_000
/** The most lease ids kept closed at once (the oldest are forgotten first): bounded memory. */
export const CLOSED_LEASE_MAX = 100_000

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
  /** Lease ids used up, with when they were closed, oldest first. */
  readonly #closed = new Map<string, number>()
  #used: Resources = ZERO
  #reserved: Resources = ZERO

  constructor (capacity: Resources, cpuOvercommit = 1, labels: Readonly<Record<string, string>> = {}) {
    this.capacity = capacity
    this.cpuOvercommit = cpuOvercommit
    this.labels = labels
  }

  /**
   * The owner's decision on a reservation asked by a placing agent (the
   * place protocol's `reserve`): the node holds fewer VMs than its gossiped
   * state can list, matches the constraints (its labels, its zone, no VM or
   * lease of the spread group), and has the room. Then the lease is taken.
   */
  admit (leaseId: string, resources: Resources, constraints: Constraints | undefined, ttlMs: number, nowMs: number): ReserveResult {
    this.expire(nowMs)
    if (this.#vms.size + this.#leases.size >= LIMITS.maxVmsPerNode) return { ok: false, reason: `this node already holds ${LIMITS.maxVmsPerNode} VMs, the most one node's gossiped state can list` }
    const miss = constraintMiss(this.labels, constraints, group => this.runsSpread(group))
    if (miss != null) return { ok: false, reason: miss.reason }
    const r = this.reserve(leaseId, resources, ttlMs, nowMs)
    if (r.ok && constraints?.spread != null) this.#leaseSpread.set(leaseId, constraints.spread)
    return r
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
    this.#reserved = sub(this.#reserved, lease.resources)
    this.#close(lease.id, nowMs)
  }

  #close (leaseId: string, nowMs: number): void {
    this.#closed.delete(leaseId)
    this.#closed.set(leaseId, nowMs)
    if (this.#closed.size > CLOSED_LEASE_MAX) this.#closed.delete(this.#closed.keys().next().value!)
  }
}
