/**
 * This node's own VMs and capacity: the ledger (reservations and usage), the
 * store (durable records) and the driver (the VMs themselves). Only this
 * class changes them, one synchronous step at a time, which is what makes a
 * reservation atomic.
 */
import type { Constraints, PlaceRequest, PlaceResponse, VmSpec, VmState, VmSummary } from '../core/messages.ts'
import { PROTOCOL_VERSION } from '../core/messages.ts'
import type { Chain } from '../core/ownership-messages.ts'
import type { Change } from '../core/gossip-policy.ts'
import { Ledger } from '../core/ledger.ts'
import type { Driver } from '../hypervisor/driver.ts'
import type { Store, VmRecord } from '../store/store.ts'

/** The proofs of our VMs' ownership (core/ownership.ts), made and checked with this agent's key. */
export interface OwnershipProofs {
  /** A new VM's chain: its origin, signed by us (at `epoch` for a record of an earlier version that has none). */
  origin: (vmId: string, epoch: number) => Chain
  /**
   * Why the chain a commit brings from `from` cannot be ours; undefined when
   * it can: a restart's (its last link a restart by `from` naming us) or a
   * migration's (a migration from `from` to us).
   */
  check: (vmId: string, chain: Chain, kind: 'restart' | 'migrate', from: string) => string | undefined
}

/** How long a VM that left is remembered for a commit asked again: well beyond the placer's retries (two lease lifetimes). */
const DEPARTED_KEEP_MS = 10 * 60_000
const DEPARTED_MAX = 10_000

/** Why a VM leaves this node: deleted by a user (it must never come back), or moved (migrated, fenced: it runs elsewhere). */
export type Removal = 'user' | 'moved'

/**
 * How a removal ended: done (for a user's delete, its tombstone taken by
 * every live holder of the VM's record); done here, but a live holder did
 * not take the tombstone in time (should this node die before it does, that
 * holder may restart the VM); or no such VM here.
 */
export type RemoveOutcome = 'deleted' | 'unconfirmed' | 'not-found'

export interface LocalNodeInit {
  ledger: Ledger
  store: Store
  driver: Driver
  proofs: OwnershipProofs
  /** A VM was deleted by a user: its tombstone goes to its replica holders before the delete is answered; false when some did not take it in time. */
  onDeleted?: (rec: VmRecord) => Promise<boolean>
  now: () => number
  /** Called after every change, saying what changed (state-publisher.ts decides how soon the cluster hears of it). */
  onChange: (change: Change) => void
  /** One VM of this node appeared (placed, adopted, restored), changed state, or was deleted (and why): for its events and its holders. */
  onVm?: (rec: VmRecord, what: 'added' | 'state' | 'deleted', why?: Removal) => void
}

export type { Change }

export type CommitOutcome = { ok: true, state: VmState } | { ok: false, reason: string }

export class LocalNode {
  readonly ledger: Ledger
  readonly #init: LocalNodeInit
  readonly #vms = new Map<string, VmRecord>()
  /**
   * VMs committed in the ledger whose record is on its way to disk: not yet
   * acknowledged, so not listed; they count against the node's VM limit and
   * their spread group is taken. A retried commit of one waits for it.
   */
  readonly #committing = new Map<string, { rec: VmRecord, done: Promise<CommitOutcome> }>()
  /** Migrated VMs being taken over: a commit asked again waits for the first. */
  readonly #adopting = new Map<string, Promise<CommitOutcome>>()
  /** Deletes on their way to disk: a second delete of the same VM waits for the first. */
  readonly #deleting = new Map<string, { why: Removal, done: Promise<RemoveOutcome> }>()
  /**
   * VMs that left this node since it started (moved or deleted), by id: a
   * commit asked again after its answer was lost must not be answered "no such
   * reservation" once its VM has moved on (fenced by a restart elsewhere while
   * this node was down, migrated) — the placer would place a second copy.
   * Kept DEPARTED_KEEP_MS, at most DEPARTED_MAX; stored with the delete, so
   * that a restart remembers them too.
   */
  readonly #departed = new Map<string, { atMs: number, why: Removal }>()
  #departures = 0
  /** Each VM's summary, made once per state; and the list of them, made once per change. */
  readonly #summary = new WeakMap<VmRecord, VmSummary>()
  #summaries?: VmSummary[]

  constructor (init: LocalNodeInit) {
    this.#init = init
    this.ledger = init.ledger
    init.driver.onStateChange(change => {
      const rec = this.#vms.get(change.id)
      if (rec == null || change.state === 'deleted' || rec.state === change.state) return
      // A VM that booted while it migrates stays migrating: the migration's end says where it runs.
      if (rec.state === 'migrating') return
      rec.state = change.state
      this.#summary.delete(rec)
      this.#summaries = undefined
      // Not waited on: a restart sets every VM back to creating, whatever the store says.
      init.store.putVmLater(rec)
      init.onChange('state')
      init.onVm?.(rec, 'state')
    })
  }

  /**
   * Brings back the records of an earlier run from the store, each
   * `creating` and counted in the ledger; the hypervisor is asked for them
   * next (vm-keeper.ts: adopted, started again, or lost).
   */
  async restore (): Promise<number> {
    // The VMs that left before the restart, still remembered: a commit asked again across it is answered taken.
    const since = this.#init.now() - DEPARTED_KEEP_MS
    this.#init.store.forgetDepartures(since)
    for (const d of this.#init.store.departures(since).slice(-DEPARTED_MAX)) this.#departed.set(d.id, { atMs: d.atMs, why: d.why })
    const records = this.#init.store.listVms()
    for (const rec of records) {
      if (rec.chain.length === 0) rec.chain = this.#init.proofs.origin(rec.spec.id, rec.epoch)
      this.#vms.set(rec.spec.id, rec)
      this.#summaries = undefined
      this.ledger.addVm(rec.spec.id, { cpu: rec.spec.cpu, memMiB: rec.spec.memMiB }, rec.spec.constraints?.spread)
      rec.state = 'creating'
      this.#init.onVm?.(rec, 'added')
    }
    if (records.length > 0) this.#init.onChange('vms')
    return records.length
  }

  /**
   * Serves one `/discovery/place/1.0.0` request, from peer `from` (its
   * reservations are bounded, `PeerLeaseBound`), or from this agent itself
   * (`from` its own id, or none).
   */
  async handle (req: PlaceRequest, from?: string): Promise<PlaceResponse> {
    switch (req.op) {
      case 'reserve': {
        const r = this.reserve(req.leaseId, req.resources, req.constraints, req.ttlMs, from)
        return r.ok ? { v: PROTOCOL_VERSION, ok: true } : { v: PROTOCOL_VERSION, ok: false, reason: r.reason }
      }
      case 'commit': {
        const r = await this.commit(req.leaseId, req.vm, req.chain, from)
        return r.ok ? { v: PROTOCOL_VERSION, ok: true, state: r.state } : { v: PROTOCOL_VERSION, ok: false, reason: r.reason }
      }
      case 'release':
        this.release(req.leaseId)
        return { v: PROTOCOL_VERSION, ok: true }
      case 'delete': {
        const outcome = await this.remove(req.vmId)
        return outcome === 'deleted' ? { v: PROTOCOL_VERSION, ok: true, state: 'deleted' } : { v: PROTOCOL_VERSION, ok: false, reason: outcome }
      }
    }
  }

  reserve (leaseId: string, resources: { cpu: number, memMiB: number }, constraints: Constraints | undefined, ttlMs: number, holder?: string): { ok: true } | { ok: false, reason: string } {
    const r = this.ledger.admit(leaseId, resources, constraints, ttlMs, this.#init.now(), holder)
    if (r.ok) this.#init.onChange('load')
    return r
  }

  /**
   * Turns a lease into a VM: durable in the store before it is acknowledged.
   * Idempotent for a retried commit. A restart brings the VM's chain, whose
   * restart link (by `from`) names us; a new VM starts its own.
   */
  async commit (leaseId: string, spec: VmSpec, restartChain?: Chain, from = ''): Promise<CommitOutcome> {
    const existing = this.#vms.get(spec.id)
    if (existing != null) return { ok: true, state: existing.state }
    const inFlight = this.#committing.get(spec.id)
    if (inFlight != null) return await inFlight.done
    let chain: Chain
    if (restartChain != null) {
      const bad = this.#init.proofs.check(spec.id, restartChain, 'restart', from)
      if (bad != null) return { ok: false, reason: `the restart's proof does not hold: ${bad}` }
      chain = restartChain
    } else {
      chain = this.#init.proofs.origin(spec.id, 0)
    }
    const now = this.#init.now()
    // The lease becomes the VM's usage here, in this synchronous step: the capacity never shows free in between.
    const r = this.ledger.commit(leaseId, spec.id, now)
    if (!r.ok) {
      // Taken here before, and gone since: the commit was taken, whatever became of its answer.
      const gone = this.#departed.get(spec.id)
      if (gone != null) return { ok: true, state: gone.why === 'user' ? 'deleted' : 'creating' }
      return { ok: false, reason: r.reason === 'expired' ? 'the reservation expired' : 'no such reservation' }
    }
    const rec: VmRecord = { spec, state: 'creating', epoch: chain[chain.length - 1].epoch, chain }
    const done = this.#persist(rec)
    this.#committing.set(spec.id, { rec, done })
    try {
      return await done
    } finally {
      this.#committing.delete(spec.id)
    }
  }

  async #persist (rec: VmRecord): Promise<CommitOutcome> {
    const spec = rec.spec
    try {
      // Shares its fsync with every other write of this turn of the event loop (group commit).
      await this.#init.store.writeVm(rec)
    } catch (err: any) {
      this.ledger.removeVm(spec.id)
      return { ok: false, reason: `could not store the VM: ${err.message}` }
    }
    this.#vms.set(spec.id, rec)
    this.#summaries = undefined
    try {
      await this.#init.driver.create(spec)
    } catch (err: any) {
      this.#vms.delete(spec.id)
      this.#summaries = undefined
      this.ledger.removeVm(spec.id)
      this.#init.store.removeVm(spec.id).catch(() => {})
      return { ok: false, reason: `the hypervisor refused the VM: ${err.message}` }
    }
    this.#init.onChange('vms')
    this.#init.onVm?.(rec, 'added')
    return { ok: true, state: rec.state }
  }

  release (leaseId: string): void {
    if (this.ledger.release(leaseId, this.#init.now())) this.#init.onChange('load')
  }

  /** Stops and forgets a VM; true when it was here. */
  async deleteVm (id: string, why: Removal = 'user'): Promise<boolean> {
    return (await this.remove(id, why)) !== 'not-found'
  }

  /** Stops and forgets a VM; a user's delete is answered once its tombstone reached the VM's holders, or could not (`unconfirmed`). */
  async remove (id: string, why: Removal = 'user'): Promise<RemoveOutcome> {
    const pending = this.#deleting.get(id)
    if (pending != null) {
      // A user's delete that meets our copy on its way elsewhere (fenced: a later copy runs on another node) did
      // not delete the VM: said so (not here), the caller goes to the node that runs it. Answering it deleted would
      // acknowledge a delete that left the VM running there, with no tombstone to stop it.
      const outcome = await pending.done
      return why === 'user' && pending.why !== 'user' ? 'not-found' : outcome
    }
    const rec = this.#vms.get(id)
    if (rec == null) return 'not-found'
    const done = (async (): Promise<RemoveOutcome> => {
      await this.#init.driver.delete(id)
      const atMs = this.#init.now()
      await this.#init.store.removeVm(id, { id, atMs, why })
      this.#vms.delete(id)
      this.#depart(id, why, atMs)
      this.#summaries = undefined
      this.ledger.removeVm(id)
      this.#init.onChange('vms')
      this.#init.onVm?.(rec, 'deleted', why)
      if (why === 'user' && (await this.#init.onDeleted?.(rec)) === false) return 'unconfirmed'
      return 'deleted'
    })()
    this.#deleting.set(id, { why, done })
    try {
      return await done
    } finally {
      this.#deleting.delete(id)
    }
  }

  /** `id` left at `atMs`: remembered (last in the map, which runs oldest first), the oldest beyond the bounds forgotten. */
  #depart (id: string, why: Removal, atMs: number): void {
    this.#departed.delete(id)
    this.#departed.set(id, { atMs, why })
    for (const [old, d] of this.#departed) {
      if (this.#departed.size <= DEPARTED_MAX && atMs - d.atMs < DEPARTED_KEEP_MS) break
      this.#departed.delete(old)
    }
    // The stored ones are forgotten as they age too, now and then (a store would otherwise keep every delete).
    if (++this.#departures % 256 === 0) this.#init.store.forgetDepartures(atMs - DEPARTED_KEEP_MS)
  }

  /** Marks a VM migrating (paused for the switch-over) or back to running. */
  setState (id: string, state: VmState): void {
    const rec = this.#vms.get(id)
    if (rec == null || rec.state === state) return
    rec.state = state
    this.#summaries = undefined
    this.#init.store.putVm(rec)
    this.#init.onChange('state')
    this.#init.onVm?.(rec, 'state')
  }

  /** Reserves room for a VM arriving by migration (the lease id is the migration id). */
  reserveIncoming (leaseId: string, spec: VmSpec, ttlMs: number, from?: string): { ok: true } | { ok: false, reason: string } {
    if (this.#vms.has(spec.id) || this.#committing.has(spec.id)) return { ok: false, reason: `this node already runs ${spec.id}` }
    return this.reserve(leaseId, { cpu: spec.cpu, memMiB: spec.memMiB }, spec.constraints?.spread != null ? { spread: spec.constraints.spread } : undefined, ttlMs, from)
  }

  /**
   * Takes over a migrated VM at its new epoch: the hypervisor has it running
   * here, and its record is durable, before the source is told. Idempotent.
   * The chain ends with the source's migrate link to us; a source of an
   * earlier version sends none, and the VM starts a new origin here.
   */
  async adoptIncoming (leaseId: string, spec: VmSpec, epoch: number, chain?: Chain, from = ''): Promise<CommitOutcome> {
    const existing = this.#vms.get(spec.id)
    if (existing != null) return existing.epoch >= epoch ? { ok: true, state: existing.state } : { ok: false, reason: `this node runs ${spec.id} at epoch ${existing.epoch}` }
    const inFlight = this.#adopting.get(spec.id)
    if (inFlight != null) return await inFlight
    if (chain != null) {
      const bad = chain[chain.length - 1].epoch !== epoch ? `its head is at epoch ${chain[chain.length - 1].epoch}, not ${epoch}` : this.#init.proofs.check(spec.id, chain, 'migrate', from)
      if (bad != null) return { ok: false, reason: `the migration's proof does not hold: ${bad}` }
    }
    const r = this.ledger.commit(leaseId, spec.id, this.#init.now())
    if (!r.ok) return { ok: false, reason: r.reason === 'expired' ? 'the reservation expired' : 'no such reservation' }
    const done = this.#adopt(spec, epoch, chain ?? this.#init.proofs.origin(spec.id, epoch))
    this.#adopting.set(spec.id, done)
    try {
      return await done
    } finally {
      this.#adopting.delete(spec.id)
    }
  }

  async #adopt (spec: VmSpec, epoch: number, chain: Chain): Promise<CommitOutcome> {
    try {
      // Resolves once the VM runs here; a real hypervisor's incoming migration may not have arrived whole.
      await this.#init.driver.create(spec, { incoming: true })
    } catch (err: any) {
      this.ledger.removeVm(spec.id)
      return { ok: false, reason: `the VM did not arrive here: ${err.message}` }
    }
    const rec: VmRecord = { spec, state: 'running', epoch, chain }
    try {
      this.#init.store.putVm(rec)
    } catch (err: any) {
      this.ledger.removeVm(spec.id)
      await this.#init.driver.delete(spec.id).catch(() => {})
      return { ok: false, reason: `could not store the VM: ${err.message}` }
    }
    this.#vms.set(spec.id, rec)
    this.#summaries = undefined
    this.#init.onChange('vms')
    this.#init.onVm?.(rec, 'added')
    return { ok: true, state: 'running' }
  }

  /** Expires leases whose time is up; called on every tick. */
  tick (): void {
    this.#expire(this.#init.now())
  }

  get (id: string): VmRecord | undefined {
    return this.#vms.get(id)
  }

  /** Whether a delete of `id` is on its way (the VM is still listed until it is durable). */
  isDeleting (id: string): boolean {
    return this.#deleting.has(id)
  }

  records (): VmRecord[] {
    return [...this.#vms.values()]
  }

  /** Every VM's summary. The array is shared until the next change: read it, do not change it. */
  summaries (): VmSummary[] {
    if (this.#summaries != null) return this.#summaries
    const out: VmSummary[] = []
    for (const rec of this.#vms.values()) {
      let s = this.#summary.get(rec)
      if (s == null || s.state !== rec.state || s.epoch !== rec.epoch) {
        s = summarize(rec)
        this.#summary.set(rec, s)
      }
      out.push(s)
    }
    this.#summaries = out
    return out
  }

  #expire (now: number): void {
    const gone = this.ledger.expire(now)
    if (gone.length > 0) this.#init.onChange('load')
  }
}

export function summarize (rec: VmRecord): VmSummary {
  const s: VmSummary = { id: rec.spec.id, name: rec.spec.name, cpu: rec.spec.cpu, memMiB: rec.spec.memMiB, state: rec.state, epoch: rec.epoch }
  if (rec.spec.constraints?.spread != null) s.spread = rec.spec.constraints.spread
  return s
}
