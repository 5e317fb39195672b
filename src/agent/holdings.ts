/**
 * What this node holds for others: the replicas of other owners' VMs (spec,
 * chain, designation: all a restart needs) and the tombstones of deleted VMs,
 * in memory and durably (store/replica-store.ts). A record is taken only
 * from its owner, with a designation naming this node, and never over a
 * later head unless its chain reaches the one held; a tombstone deletes only
 * the copies its chain reaches (core/ownership.ts).
 */
import { checkChain, checkDesignation, checkTombstone, compareHeads, connects, headOf, type Signer } from '../core/ownership.ts'
import type { Chain, Designation, Tombstone } from '../core/ownership-messages.ts'
import type { ReplicaRecord } from '../core/replica-messages.ts'
import type { ReplicaConfig } from '../core/replica-rule.ts'
import type { ReplicaStore, StoredReplica } from '../store/index.ts'

export interface HoldingsInit {
  self: string
  signer: Signer
  store: ReplicaStore
  config: ReplicaConfig
  now: () => number
}

/** A record not taken: why, and whether its proof failed (forged or broken: counted as invalid input) or it is merely stale. */
export interface Refusal {
  vmId: string
  reason: string
  forged: boolean
}

interface KeptTombstone {
  tombstone: Tombstone
  storedAtMs: number
}

export class Holdings {
  readonly #init: HoldingsInit
  readonly #replicas = new Map<string, StoredReplica>()
  readonly #byOwner = new Map<string, Set<string>>()
  /** By VM id, oldest first (a Map keeps insertion order): expiry drops from the front. */
  readonly #tombstones = new Map<string, KeptTombstone>()

  constructor (init: HoldingsInit) {
    this.#init = init
  }

  /** Loads what an earlier run held; returns the counts (corrupt rows are removed: owners send them again). */
  load (): { replicas: number, tombstones: number, corrupt: number } {
    const { replicas, corrupt } = this.#init.store.listReplicas()
    for (const r of replicas) this.#index(r)
    for (const t of this.#init.store.listTombstones()) this.#tombstones.set(t.tombstone.vmId, t)
    return { replicas: this.#replicas.size, tombstones: this.#tombstones.size, corrupt }
  }

  get size (): number { return this.#replicas.size }
  get tombstoneCount (): number { return this.#tombstones.size }

  get (vmId: string): StoredReplica | undefined {
    return this.#replicas.get(vmId)
  }

  /** Owners whose VMs we hold. */
  owners (): string[] {
    return [...this.#byOwner.keys()]
  }

  ofOwner (owner: string): StoredReplica[] {
    const out: StoredReplica[] = []
    for (const id of this.#byOwner.get(owner) ?? []) {
      const r = this.#replicas.get(id)
      if (r != null) out.push(r)
    }
    return out
  }

  all (): IterableIterator<StoredReplica> {
    return this.#replicas.values()
  }

  /** An owner's `put`: each record checked, the taken ones durable before this returns; the others with why. */
  put (from: string, records: readonly ReplicaRecord[]): Refusal[] {
    const refused: Refusal[] = []
    const taken: StoredReplica[] = []
    const now = this.#init.now()
    for (const record of records) {
      const why = this.#check(from, record)
      if (why != null) refused.push({ vmId: record.spec.id, ...why })
      else taken.push({ record, receivedAtMs: now })
    }
    if (taken.length > 0) {
      this.#init.store.putReplicas(taken)
      for (const r of taken) this.#index(r)
    }
    return refused
  }

  /**
   * Records handed over by `from`, another holder of them (`handoff`): each
   * taken as if its owner had sent it, but only with its signatures checked
   * (the chain, and the owner's designation naming both `from` and this node)
   * and its owner dead (`ownerDead`: only then may it be restarted from here).
   */
  handOver (from: string, records: readonly ReplicaRecord[], ownerDead: (owner: string) => boolean): Refusal[] {
    const refused: Refusal[] = []
    const sound: ReplicaRecord[] = []
    for (const record of records) {
      const vmId = record.spec.id
      const head = headOf(record.chain)
      const why = checkChain(record.chain, vmId, this.#init.signer) ?? checkDesignation(record.designation, vmId, head, this.#init.signer) ??
        (record.designation.replicas.includes(from) ? undefined : 'the designation does not name its sender')
      if (why != null) refused.push({ vmId, reason: why, forged: true })
      else if (!ownerDead(head.owner)) refused.push({ vmId, reason: `its owner ${head.owner} is not dead here`, forged: false })
      else sound.push(record)
    }
    const byOwner = new Map<string, ReplicaRecord[]>()
    for (const r of sound) byOwner.set(headOf(r.chain).owner, [...(byOwner.get(headOf(r.chain).owner) ?? []), r])
    for (const [owner, list] of byOwner) refused.push(...this.put(owner, list))
    return refused
  }

  /** The designations of the records we hold of `vmIds`: a restarter compares them with its own before it restarts. */
  designationsOf (vmIds: readonly string[]): Designation[] {
    const out: Designation[] = []
    for (const id of vmIds) {
      const r = this.#replicas.get(id)
      if (r != null && this.tombstoneFor(id, r.record.chain) == null) out.push(r.record.designation)
    }
    return out
  }

  /**
   * Designations another holder keeps (`designationsOf`), taken where one is
   * later than ours at the same head and signed by its owner: an owner that
   * died before its new designation reached every holder left some with an
   * older one, which may name a different restarter (or this node first,
   * when it is now second). The owner's latest word decides who restarts.
   * The record stays held even when the later one no longer names us (the
   * restart rule then leaves it to the holders it names). Returns the VMs
   * whose designation changed, and those whose proof failed (forged).
   */
  adoptDesignations (designations: readonly Designation[]): { adopted: string[], forged: Refusal[] } {
    const adopted: StoredReplica[] = []
    const forged: Refusal[] = []
    for (const d of designations) {
      const held = this.#replicas.get(d.vmId)
      if (held == null || d.issuedAtMs <= held.record.designation.issuedAtMs) continue
      const head = headOf(held.record.chain)
      if (d.epoch !== head.epoch || d.owner !== head.owner) continue
      const why = checkDesignation(d, d.vmId, head, this.#init.signer)
      if (why != null) forged.push({ vmId: d.vmId, reason: why, forged: true })
      else adopted.push({ record: { ...held.record, designation: d }, receivedAtMs: held.receivedAtMs })
    }
    if (adopted.length > 0) {
      this.#init.store.putReplicas(adopted)
      for (const r of adopted) this.#index(r)
    }
    return { adopted: adopted.map(r => r.record.spec.id), forged }
  }

  /**
   * This node now runs the VM at `chain`'s head (a restart or a migration
   * committed to it): a replica of it held at an earlier head is dropped.
   * Kept, it would make us a restarter of a VM we run ourselves, once its
   * earlier owner is declared dead here (seen in chaos runs: a holder
   * restarted onto a third node a VM another holder had just restarted onto
   * it). True when one was dropped.
   */
  supersededBy (vmId: string, chain: Chain): boolean {
    const held = this.#replicas.get(vmId)
    if (held == null || chain.length === 0 || compareHeads(headOf(chain), headOf(held.record.chain)) <= 0) return false
    this.drop([vmId])
    return true
  }

  /** Forgets replicas (superseded, taken back, restarted elsewhere); returns those it held. */
  drop (vmIds: readonly string[]): string[] {
    const gone = vmIds.filter(id => this.#replicas.has(id))
    if (gone.length === 0) return gone
    this.#init.store.dropReplicas(gone)
    for (const id of gone) {
      const r = this.#replicas.get(id)!
      this.#replicas.delete(id)
      const owner = headOf(r.record.chain).owner
      const set = this.#byOwner.get(owner)
      set?.delete(id)
      if (set?.size === 0) this.#byOwner.delete(owner)
    }
    return gone
  }

  tombstone (vmId: string): Tombstone | undefined {
    return this.#tombstones.get(vmId)?.tombstone
  }

  /** The tombstone we keep for `vmId`, if it deletes the copy or replica whose chain is `chain`. */
  tombstoneFor (vmId: string, chain: Chain): Tombstone | undefined {
    const t = this.#tombstones.get(vmId)?.tombstone
    return t != null && checkTombstone(t, chain, this.#init.signer) == null ? t : undefined
  }

  /** Keeps tombstones (already checked by the caller), durably. */
  addTombstones (tombstones: readonly Tombstone[]): void {
    if (tombstones.length === 0) return
    const now = this.#init.now()
    this.#init.store.putTombstones(tombstones, now)
    for (const t of tombstones) {
      this.#tombstones.delete(t.vmId)
      this.#tombstones.set(t.vmId, { tombstone: t, storedAtMs: now })
    }
    this.expire()
  }

  /** Drops tombstones kept longer than `tombstoneKeepMs`, and the oldest beyond `tombstoneMax`. */
  expire (): void {
    const { tombstoneKeepMs, tombstoneMax } = this.#init.config
    const now = this.#init.now()
    const gone: string[] = []
    for (const [id, t] of this.#tombstones) {
      if (this.#tombstones.size - gone.length <= tombstoneMax && t.storedAtMs > now - tombstoneKeepMs) break
      gone.push(id)
    }
    if (gone.length === 0) return
    this.#init.store.dropTombstones(gone)
    for (const id of gone) this.#tombstones.delete(id)
  }

  /**
   * Why a record from `from` is not taken. Its signatures are not checked
   * here: it comes from its owner over an authenticated connection, and they
   * prove nothing to us that the sender's identity does not (every later
   * verifier checks them: a restart's new owner, a fenced copy). Checking
   * them took two Ed25519 verifications per record on each holder, a tenth
   * of a create's cost. A record over one we hold is different: its chain
   * must reach ours, signatures and all.
   */
  #check (from: string, record: ReplicaRecord): { reason: string, forged: boolean } | undefined {
    const { self, signer } = this.#init
    const vmId = record.spec.id
    const head = headOf(record.chain)
    const forged = (reason: string): { reason: string, forged: boolean } => ({ reason, forged: true })
    if (head.owner !== from) return forged(`the record's head ${head.epoch} is owned by ${head.owner}, not by its sender`)
    const d = record.designation
    if (d.vmId !== vmId || d.owner !== head.owner || d.epoch !== head.epoch) return forged(`the designation is of ${d.vmId} at ${d.epoch}, not of the record's head`)
    if (record.chain.some(l => l.vmId !== vmId)) return forged('a chain with links of another VM')
    if (!d.replicas.includes(self)) return { reason: 'the designation does not name this node', forged: false }
    if (this.tombstoneFor(vmId, record.chain) != null) return { reason: `${vmId} was deleted`, forged: false }
    const held = this.#replicas.get(vmId)
    if (held == null) return undefined
    const order = compareHeads(head, headOf(held.record.chain))
    if (order < 0) return { reason: 'this node holds a later head of it', forged: false }
    if (order === 0) return record.designation.issuedAtMs < held.record.designation.issuedAtMs ? { reason: 'this node holds a later designation', forged: false } : undefined
    const gap = connects(held.record.chain, record.chain, vmId, signer)
    return gap != null ? forged(gap) : undefined
  }

  #index (r: StoredReplica): void {
    const id = r.record.spec.id
    const before = this.#replicas.get(id)
    if (before != null) {
      const owner = headOf(before.record.chain).owner
      this.#byOwner.get(owner)?.delete(id)
      if (this.#byOwner.get(owner)?.size === 0) this.#byOwner.delete(owner)
    }
    this.#replicas.set(id, r)
    const owner = headOf(r.record.chain).owner
    let set = this.#byOwner.get(owner)
    if (set == null) {
      set = new Set()
      this.#byOwner.set(owner, set)
    }
    set.add(id)
  }
}
