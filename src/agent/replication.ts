/**
 * The owner's side of replicated VM records: each VM of this node is held by
 * the `k` peers after it on the ring of the peers not declared dead
 * (core/replica-rule.ts). New VMs are pushed to them (`put`, batched per
 * holder); when the set changes — a member died or joined, and the ring has
 * settled — every record is pushed again with a new designation, then taken
 * back from the holders that left (`drop`). A user's delete sends the VM's
 * tombstone to its holders before it is answered. Each holder has an outbox
 * sent one request at a time, in order, and retried with a back-off.
 */
import type { Logger } from 'pino'
import type { PeerStatus } from '../core/cluster-view.ts'
import { designate, extend, headOf, makeTombstone, migrateLink, type Signer } from '../core/ownership.ts'
import type { Chain, Designation, Tombstone } from '../core/ownership-messages.ts'
import { PROTOCOL_VERSION } from '../core/messages.ts'
import { MAX_RECORDS_PER_MESSAGE, type ReplicaRecord, type ReplicaRequest, type ReplicaResponse } from '../core/replica-messages.ts'
import { type ReplicaConfig, replicaSet, sameHolders } from '../core/replica-rule.ts'
import type { Ring } from '../core/ring.ts'
import type { VmRecord } from '../store/index.ts'
import type { Holdings } from './holdings.ts'
import type { LocalNode } from './local-node.ts'

/** The longest pause between two tries of an outbox. */
const MAX_RETRY_MS = 10_000
/** Peers a user's delete sends its tombstone to, following later copies from one to the next: a bound on a chain of restarts. */
const MAX_LATER_ASKED = 16

export interface ReplicationInit {
  self: string
  config: ReplicaConfig
  signer: Signer
  local: LocalNode
  holdings: Holdings
  log: Logger
  now: () => number
  /** The ring of the peers not declared dead, this node included. */
  ring: () => Ring
  /** A peer's failure domain (core/replica-rule.ts `replicaSet`): our holders are taken from other domains first. */
  domainOf?: (peerId: string) => string | undefined
  status: (peerId: string) => PeerStatus | undefined
  send: (peerId: string, req: ReplicaRequest) => Promise<ReplicaResponse>
  /** How long a user's delete waits for its tombstone to reach the holders. */
  deleteWaitMs: number
  /** Tombstones a holder answered a `put` with (its records refused as deleted): taken as if pushed (tombstone-intake.ts). */
  takeTombstones?: (from: string, tombstones: Tombstone[]) => void
  /** The owners of copies of a VM later than the tombstone's head that this node knows of (tombstone-intake.ts `laterHeads`). */
  laterOwners: (vmId: string, tombstone: Tombstone) => string[]
}

interface Outbox {
  /**
   * The records to push, each with the number of its latest queuing: a record
   * queued again while an earlier push of it is in flight (a new designation
   * after a ring change, a new chain) is pushed again after it, not taken as sent.
   */
  puts: Map<string, number>
  drops: Set<string>
  deletes: Map<string, Tombstone>
  sending: boolean
  nextAtMs: number
  pauseMs: number
}

export class Replication {
  readonly #init: ReplicationInit
  #holders: string[] = []
  readonly #designations = new Map<string, Designation>()
  readonly #outboxes = new Map<string, Outbox>()
  /** Numbers each queuing of a record for a holder (Outbox.puts). */
  #queued = 0
  /** When the ring last changed, until the holders are computed again. */
  #ringChangedAtMs?: number
  #kickTimer?: NodeJS.Timeout
  /** Deletes waiting for their holders: told when a holder dies or an outbox delivered tombstones. */
  readonly #watchers = new Set<() => void>()

  constructor (init: ReplicationInit) {
    this.#init = init
  }

  /** Records and tombstones queued for our holders and not yet taken by them. */
  get pending (): number {
    let n = 0
    for (const [peer, box] of this.#outboxes) if (this.#holders.includes(peer)) n += box.puts.size + box.deletes.size
    return n
  }

  /** A holder is back: what is queued for it goes now, not after the back-off its failures built up. */
  peerAlive (peer: string): void {
    const box = this.#outboxes.get(peer)
    if (box == null) return
    box.nextAtMs = 0
    box.pauseMs = this.#init.config.retryMs
  }

  /** This node's holders now, in ring order. */
  get holders (): readonly string[] {
    return this.#holders
  }

  /** A peer joined, died or came back: the holders are computed again once the ring has settled. */
  ringChanged (): void {
    this.#ringChangedAtMs = this.#init.now()
  }

  tick (): void {
    const now = this.#init.now()
    if (this.#ringChangedAtMs != null && now - this.#ringChangedAtMs >= this.#init.config.ringSettleMs) {
      this.#ringChangedAtMs = undefined
      this.#recompute()
    }
    for (const [peer, box] of this.#outboxes) if (!box.sending && box.nextAtMs <= now) void this.#flush(peer, box)
  }

  /** A VM of ours appeared (placed, adopted, restarted, restored): its holders get it. */
  added (rec: VmRecord): void {
    for (const h of this.#holders) this.#queuePut(h, rec.spec.id)
    this.#kick()
  }

  /** A VM of ours moved away (migrated, fenced): its holders let it go; its new owner has its own. */
  moved (rec: VmRecord): void {
    this.#designations.delete(rec.spec.id)
    for (const h of this.#holders) {
      const box = this.#outbox(h)
      box.puts.delete(rec.spec.id)
      box.drops.add(rec.spec.id)
    }
    this.#kick()
  }

  /**
   * A user deleted a VM of ours: its tombstone is kept here and sent to its
   * holders, and the delete is answered once each holder took it or was
   * declared dead, or `deleteWaitMs` passed. A holder that could not be
   * reached gets it from its outbox, and the delete still waits: for the
   * outbox to deliver it, or for the detector to declare the holder dead (a
   * partition or a crash being detected — it then gets the tombstone should
   * it come back still our holder). True when every holder not declared
   * dead took it: a restarter asks the other holders for tombstones before
   * it restarts anything, so the VM stays deleted unless we and all of them
   * die first. False otherwise: the delete is not certain yet (a live holder
   * may lack the tombstone, and the one that has it may be down when we die).
   */
  async deleted (rec: VmRecord): Promise<boolean> {
    const id = rec.spec.id
    this.#designations.delete(id)
    const tombstone = makeTombstone(rec.chain, this.#init.now(), this.#init.signer)
    this.#init.holdings.addTombstones([tombstone])
    for (const h of this.#holders) {
      const box = this.#outbox(h)
      box.puts.delete(id)
      // A holder dead now gets it from its outbox should it come back still our holder.
      if (this.#init.status(h) === 'dead') box.deletes.set(id, tombstone)
    }
    const live = (p: string): boolean => this.#init.status(p) !== 'dead'
    // Our live holders, and the owners of later copies we know of (ours was left behind: core/ownership.ts `checkTombstone`).
    const first = new Set([...this.#holders, ...this.#init.laterOwners(id, tombstone)].filter(live))
    // Each one: its answer awaited ('sending'), or its tombstone in its outbox ('queued').
    const waiting = new Map<string, 'sending' | 'queued'>()
    const asked = new Set([this.#init.self])
    return await new Promise<boolean>(resolve => {
      let over = false
      const done = (sure: boolean): void => {
        if (over) return
        over = true
        clearTimeout(timer)
        this.#watchers.delete(check)
        resolve(sure)
      }
      const took = (h: string): void => {
        waiting.delete(h)
        if (waiting.size === 0) done(true)
      }
      const check = (): void => {
        for (const [h, how] of waiting) {
          if (this.#init.status(h) === 'dead' || (how === 'queued' && this.#outboxes.get(h)?.deletes.get(id) !== tombstone)) took(h)
        }
      }
      const ask = (h: string): void => {
        asked.add(h)
        waiting.set(h, 'sending')
        void this.#request(h, { v: PROTOCOL_VERSION, op: 'delete', tombstones: [tombstone] }).then(res => {
          // Those it knows of later copies are asked too, before it counts as done (a chain of restarts: each knows the next).
          for (const l of res.later ?? []) if (l.vmId === id && !asked.has(l.owner) && asked.size <= MAX_LATER_ASKED && live(l.owner)) ask(l.owner)
          took(h)
        }, () => {
          this.#outbox(h).deletes.set(id, tombstone)
          waiting.set(h, 'queued')
          check()
        })
      }
      const timer = setTimeout(() => { done(false) }, this.#init.deleteWaitMs)
      this.#watchers.add(check)
      if (first.size === 0) return done(true)
      for (const h of first) ask(h)
    })
  }

  /** A peer was declared dead: a delete waiting for it to take a tombstone waits no more. */
  peerDead (): void {
    this.#notify()
  }

  #notify (): void {
    for (const check of [...this.#watchers]) check()
  }

  /** The chain a migration's commit carries: ours with our migrate link to `to`. */
  commitChain (vmId: string, to: string): Chain | undefined {
    const rec = this.#init.local.get(vmId)
    if (rec == null) return undefined
    return extend(rec.chain, migrateLink(rec.chain, to, this.#init.signer))
  }

  /** A holder asks which of `vmIds` it should still hold for us (`held`): the others, and the tombstones of the deleted ones. */
  heldBy (holder: string, vmIds: readonly string[]): { drop: string[], tombstones: Tombstone[] } {
    const drop: string[] = []
    const tombstones: Tombstone[] = []
    for (const id of vmIds) {
      const rec = this.#init.local.get(id)
      // Our holders not computed yet (we just started): keep every record of a VM we run; the puts that follow settle it.
      if (rec != null && (this.#holders.length === 0 || this.#designation(rec).replicas.includes(holder))) continue
      drop.push(id)
      const t = this.#init.holdings.tombstone(id)
      if (t != null && tombstones.length < MAX_RECORDS_PER_MESSAGE) tombstones.push(t)
    }
    return { drop, tombstones }
  }

  #recompute (): void {
    const next = replicaSet(this.#init.ring(), this.#init.self, this.#init.config.replicas, this.#init.domainOf)
    if (sameHolders(next, this.#holders)) return
    const before = this.#holders
    this.#holders = next
    this.#designations.clear()
    const ids = this.#init.local.records().map(r => r.spec.id)
    this.#init.log.info({ component: 'discovery:replica', holders: next, before, vms: ids.length }, 'replica holders changed')
    // Every holder gets the new designation (the order decides the restarter); those that left let go.
    for (const h of next) for (const id of ids) this.#queuePut(h, id)
    for (const h of before.filter(p => !next.includes(p))) {
      const box = this.#outbox(h)
      box.puts.clear()
      for (const id of ids) box.drops.add(id)
    }
    this.#kick()
  }

  /** The designation of one of our VMs at its head, for the holders we have now (signed once per change). */
  #designation (rec: VmRecord): Designation {
    const head = headOf(rec.chain)
    let d = this.#designations.get(rec.spec.id)
    if (d == null || d.epoch !== head.epoch || !sameHolders(d.replicas, this.#holders)) {
      d = designate(rec.spec.id, head, this.#holders, this.#init.now(), this.#init.signer)
      this.#designations.set(rec.spec.id, d)
    }
    return d
  }

  /** Queues `id`'s record for `holder`; a drop of it still queued there is void (it would follow the put and undo it). */
  #queuePut (holder: string, id: string): void {
    const box = this.#outbox(holder)
    box.drops.delete(id)
    box.puts.set(id, ++this.#queued)
  }

  #outbox (peer: string): Outbox {
    let box = this.#outboxes.get(peer)
    if (box == null) {
      box = { puts: new Map(), drops: new Set(), deletes: new Map(), sending: false, nextAtMs: 0, pauseMs: this.#init.config.retryMs }
      this.#outboxes.set(peer, box)
    }
    return box
  }

  /** Sends what is due after `pushDelayMs` rather than at the next tick, gathering the records of that time in one message per holder. */
  #kick (): void {
    if (this.#kickTimer != null) return
    this.#kickTimer = setTimeout(() => {
      this.#kickTimer = undefined
      this.tick()
    }, this.#init.config.pushDelayMs)
  }

  stop (): void {
    if (this.#kickTimer != null) clearTimeout(this.#kickTimer)
    this.#kickTimer = undefined
  }

  async #flush (peer: string, box: Outbox): Promise<void> {
    // A holder declared dead is sent nothing while it is, but its outbox is kept while it is still one of our holders:
    // should it come back before our holders are computed again (the same holders then: nothing is pushed anew), what
    // was queued for it while it was away — records of VMs placed or restarted here meanwhile — still reaches it. Once
    // the ring change replaces it, every record goes to its successor and its outbox is dropped.
    if (this.#init.status(peer) === 'dead' || (box.puts.size === 0 && box.drops.size === 0 && box.deletes.size === 0)) {
      if (!this.#holders.includes(peer)) this.#outboxes.delete(peer)
      return
    }
    box.sending = true
    try {
      if (box.deletes.size > 0) {
        const batch = [...box.deletes.values()].slice(0, MAX_RECORDS_PER_MESSAGE)
        await this.#request(peer, { v: PROTOCOL_VERSION, op: 'delete', tombstones: batch })
        for (const t of batch) if (box.deletes.get(t.vmId) === t) box.deletes.delete(t.vmId)
        this.#notify()
      }
      while (box.puts.size > 0) {
        const batch = [...box.puts].slice(0, MAX_RECORDS_PER_MESSAGE)
        const records: ReplicaRecord[] = []
        for (const [id] of batch) {
          const rec = this.#init.local.get(id)
          if (rec != null && rec.chain.length > 0) records.push({ spec: rec.spec, chain: rec.chain, designation: this.#designation(rec) })
        }
        if (records.length > 0) {
          const res = await this.#request(peer, { v: PROTOCOL_VERSION, op: 'put', records })
          if (res.ok && res.refused != null && res.refused.length > 0) this.#init.log.debug({ component: 'discovery:replica', peer, refused: res.refused.slice(0, 3) }, 'records refused by a holder')
          // Deleted at a later head while we were cut off or down: our copy stops.
          if (res.ok && res.tombstones != null && res.tombstones.length > 0) this.#init.takeTombstones?.(peer, res.tombstones)
        }
        // Queued again meanwhile (a ring change: a new designation): sent again, in this loop.
        for (const [id, n] of batch) if (box.puts.get(id) === n) box.puts.delete(id)
      }
      if (box.drops.size > 0) {
        const ids = [...box.drops]
        await this.#request(peer, { v: PROTOCOL_VERSION, op: 'drop', vmIds: ids })
        for (const id of ids) box.drops.delete(id)
      }
      box.pauseMs = this.#init.config.retryMs
    } catch (err: any) {
      box.nextAtMs = this.#init.now() + box.pauseMs
      box.pauseMs = Math.min(2 * box.pauseMs, MAX_RETRY_MS)
      this.#init.log.debug({ component: 'discovery:replica', peer, err: err.message }, 'replica push failed')
    } finally {
      box.sending = false
    }
  }

  async #request (peer: string, req: ReplicaRequest): Promise<ReplicaResponse & { ok: true }> {
    const res = await this.#init.send(peer, req)
    if (!res.ok) throw new Error(res.reason)
    return res
  }
}
