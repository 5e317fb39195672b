/**
 * The holder's side of a death: when the view declares an owner dead (the
 * failure detector's word, never ours), each VM we hold of it goes through
 * the restart rule (core/replica-rule.ts). If we are its restarter, an
 * `always` VM is placed again through the normal cooperative placement, each
 * candidate's commit carrying the VM's chain with our restart link naming it;
 * a `never` VM is reported lost. Otherwise we wait, and take over if the
 * restarter is declared dead before the VM shows up elsewhere; from
 * `handoffAfterMs` after the death we hand the restarter our record, in case
 * the owner died before it sent it one (it says when it restarted the VM
 * already, or runs it: then our record is dropped). With
 * `restartQuorum`, a majority of the VM's replica set must confirm the death
 * first. Our replica is dropped once the new owner has committed the VM
 * (durable there); the other holders drop theirs when they see it (claims.ts).
 */
import type { Logger } from 'pino'
import { afterFailure, type BackoffState, isDue } from '../core/backoff.ts'
import type { VmSpec } from '../core/messages.ts'
import { compareHeads, extend, type Head, headOf, restartLink, type Signer } from '../core/ownership.ts'
import type { Chain, Designation, Tombstone } from '../core/ownership-messages.ts'
import { MAX_RECORDS_PER_MESSAGE, type ReplicaRecord } from '../core/replica-messages.ts'
import { confirmers, decideRestart, hasQuorum, isGone, type ReplicaConfig, type StatusOf } from '../core/replica-rule.ts'
import type { StoredReplica } from '../store/index.ts'
import type { EventLog } from './event-log.ts'
import type { Holdings } from './holdings.ts'
import type { Metrics } from './metrics.ts'
import type { Placed } from './placer.ts'

/** The longest pause between two tries of a restart that failed (no capacity, no quorum), or of a handoff. */
const MAX_RETRY_MS = 10_000
/** The VMs whose restart we remember (the oldest forgotten first): a record handed to us again after it is refused. */
const MAX_REMEMBERED = 10_000
/**
 * How many rounds a restart waits for the proof of a later copy a peer told
 * of (`tombstones`): proved, it drops our record and nothing is restarted;
 * a peer that tells of copies it cannot prove delays a restart this many
 * rounds at most (then fencing settles it, as for any two copies).
 */
const MAX_LATER_WAITS = 3

export interface RestartsInit {
  self: string
  config: ReplicaConfig
  signer: Signer
  holdings: Holdings
  events: EventLog
  metrics: Metrics
  log: Logger
  now: () => number
  /** What this node believes of each peer (itself alive). */
  status: StatusOf
  /** Places the VM again (placement-service.ts `restartVm`). */
  place: (spec: VmSpec, chainFor: (node: string) => Chain) => Promise<Placed>
  /** Asks `peer` whether it has declared `dead` dead (the quorum mode). */
  confirmDead: (peer: string, dead: string) => Promise<boolean>
  /**
   * Asks `peer` for the tombstones it keeps of `vmIds`, and takes those that
   * delete a record we hold; resolves with the VMs it knows a copy of above
   * our record, whose proof is on its way (claims.ts `heard`).
   */
  tombstones: (peer: string, vmIds: string[]) => Promise<string[] | undefined>
  /** The peers that would hold `owner`'s records now (its successors on our ring): asked for tombstones too, as a record we hold may name older holders. */
  holdersOf?: (owner: string) => string[]
  /** Sends `peer` a tombstone (`delete`): a VM deleted while we restarted it there. */
  sendTombstone?: (peer: string, t: Tombstone) => Promise<void>
  /** Hands `peer`, the restarter of `records`, our copies (`handoff`); resolves with the VMs it settled (restarted, runs, deleted). */
  handoff: (peer: string, records: ReplicaRecord[]) => Promise<string[]>
}

interface Act { r: StoredReplica, owner: string, kind: 'restart' | 'lost' }

export class Restarts {
  readonly #init: RestartsInit
  /** When each owner was declared dead here: the start of its VMs' time to run again. */
  readonly #deadAt = new Map<string, number>()
  readonly #inFlight = new Set<string>()
  readonly #retry = new Map<string, BackoffState>()
  /** When each VM we wait for another holder to restart is handed to it next. */
  readonly #handoffs = new Map<string, BackoffState>()
  /** Each VM we restarted: the head before our restart link (a record of it handed to us later is refused) and the one after (a tombstone of it is sent on there). */
  readonly #restarted = new Map<string, { from: Head, to: Head }>()
  /** Rounds each VM's restart has waited for the proof of a later copy (MAX_LATER_WAITS). */
  readonly #laterWaits = new Map<string, number>()
  #holdUntilMs = 0

  constructor (init: RestartsInit) {
    this.#init = init
  }

  /** A failed restart, or a handoff, is tried again after `retryMs`, then twice as long each time, up to 10 s. */
  get #backoff (): { minMs: number, maxMs: number } {
    return { minMs: this.#init.config.retryMs, maxMs: MAX_RETRY_MS }
  }

  /** The view declared `peerId` dead: its VMs, and those it was the restarter of, are looked at now (unless held). */
  peerDead (peerId: string): void {
    if (!this.#deadAt.has(peerId)) this.#deadAt.set(peerId, this.#init.now())
    if (this.#init.now() >= this.#holdUntilMs) this.evaluate()
  }

  /** We were paused: the deaths our view declares on waking are not acted on until `untilMs`. */
  hold (untilMs: number): void {
    this.#holdUntilMs = Math.max(this.#holdUntilMs, untilMs)
  }

  get held (): boolean {
    return this.#init.now() < this.#holdUntilMs
  }

  /** `peerId` is back: it runs its VMs again (a restart already done is settled by fencing). */
  peerAlive (peerId: string): void {
    if (!this.#deadAt.delete(peerId)) return
    for (const r of this.#init.holdings.ofOwner(peerId)) {
      this.#retry.delete(r.record.spec.id)
      this.#handoffs.delete(r.record.spec.id)
    }
  }

  /** Whether we restarted `vmId` from `head` or a later one (a record handed to us at that head is not needed). */
  restartedFrom (vmId: string, head: Head): boolean {
    const done = this.#restarted.get(vmId)
    return done != null && compareHeads(done.from, head) >= 0
  }

  /** The head we restarted `vmId` at, if we did. */
  restartedTo (vmId: string): Head | undefined {
    return this.#restarted.get(vmId)?.to
  }

  /** Runs the restart rule over every VM we hold of an owner we count as dead; on each tick and each death. */
  evaluate (): void {
    const { holdings, status, self } = this.#init
    const now = this.#init.now()
    if (now < this.#holdUntilMs) return
    const handoffs = new Map<string, StoredReplica[]>()
    const acts: Act[] = []
    for (const owner of holdings.owners()) {
      if (!isGone(status(owner))) continue
      if (!this.#deadAt.has(owner)) this.#deadAt.set(owner, now)
      const waitedMs = now - this.#deadAt.get(owner)!
      for (const r of holdings.ofOwner(owner)) {
        const id = r.record.spec.id
        if (this.#inFlight.has(id) || !isDue(this.#retry.get(id), now)) continue
        const tombstoned = holdings.tombstoneFor(id, r.record.chain) != null
        const decision = decideRestart({ designation: r.record.designation, policy: r.record.spec.restartPolicy ?? 'always' }, self, status, tombstoned)
        if (decision.kind === 'restart' || decision.kind === 'lost') {
          acts.push({ r, owner, kind: decision.kind })
          this.#inFlight.add(id)
        } else if (decision.kind === 'wait' && waitedMs >= this.#init.config.handoffAfterMs && isDue(this.#handoffs.get(id), now)) {
          handoffs.set(decision.restarter, [...(handoffs.get(decision.restarter) ?? []), r])
        }
      }
    }
    if (acts.length > 0) void this.#actAll(acts)
    for (const [peer, list] of handoffs) void this.#handOff(peer, list.slice(0, MAX_RECORDS_PER_MESSAGE))
    // What is kept per VM held goes with the record.
    for (const perVm of [this.#handoffs, this.#laterWaits]) for (const id of perVm.keys()) if (holdings.get(id) == null) perVm.delete(id)
  }

  /**
   * Restarts (or reports lost) what we are the restarter of, once the live
   * peers that may keep their tombstones — or a later designation, naming
   * another restarter — have answered.
   */
  async #actAll (acts: Act[]): Promise<void> {
    const { unanswered, later } = await this.#askTombstones(acts)
    await Promise.all(acts.map(async a => {
      const id = a.r.record.spec.id
      const waits = this.#laterWaits.get(id) ?? 0
      const wait = later.has(id) && waits < MAX_LATER_WAITS
      if (unanswered.has(id) || wait) {
        this.#init.metrics.restarts.inc({ result: wait ? 'later-copy' : 'tombstones-unanswered' })
        if (wait) this.#laterWaits.set(id, waits + 1)
        this.#later(id)
        this.#inFlight.delete(id)
        return
      }
      this.#laterWaits.delete(id)
      await this.#act(a.r, a.owner, a.kind)
    }))
  }

  /**
   * A holder down when a VM was deleted, or one whose record is older than
   * its owner's last designation (the ring changed since, and the delete's
   * tombstone went to the holders of then), may hold its record without the
   * tombstone: before we restart a VM, the live peers that may keep it are
   * asked — the other holders its designation names and the owner's
   * successors on our ring now — and what they keep is taken (only when it
   * deletes our record: #act then finds it gone), and so is a later
   * designation of the owner's than ours (holdings.ts `adoptDesignations`:
   * #act then finds the record replaced, and the rule runs on the new one —
   * an owner that died before its new designation reached every holder would
   * otherwise have two restarters). A peer that tells of a copy above our
   * record (another holder restarted it, having seen the owner or us dead
   * first) has it proved by its owner, and the restart waits a round: once
   * proved, our record is dropped and nothing is restarted. Resolves with
   * the VMs for which a later copy is being proved (`later`), and those for
   * which a peer still live did not answer within `tombstoneAskMs`: they are
   * not restarted now but asked about again later (a peer declared dead
   * meanwhile is not asked again). A late answer is still taken.
   */
  async #askTombstones (acts: Act[]): Promise<{ unanswered: Set<string>, later: Set<string> }> {
    const { self, status } = this.#init
    const byPeer = new Map<string, string[]>()
    for (const { r, owner } of acts) {
      const peers = new Set([...r.record.designation.replicas, ...(this.#init.holdersOf?.(owner) ?? [])])
      for (const p of peers) {
        if (p === self || p === owner || isGone(status(p))) continue
        byPeer.set(p, [...(byPeer.get(p) ?? []), r.record.spec.id])
      }
    }
    const unanswered = new Set<string>()
    const later = new Set<string>()
    await Promise.all([...byPeer].map(async ([peer, ids]) => {
      for (let i = 0; i < ids.length; i += MAX_RECORDS_PER_MESSAGE) {
        const batch = ids.slice(i, i + MAX_RECORDS_PER_MESSAGE)
        let timer: NodeJS.Timeout | undefined
        const late = new Promise<false>(resolve => { timer = setTimeout(() => { resolve(false) }, this.#init.config.tombstoneAskMs) })
        const answered = await Promise.race([this.#init.tombstones(peer, batch).then(ids => { for (const id of ids ?? []) later.add(id); return true }, () => false), late])
        clearTimeout(timer)
        if (answered || isGone(status(peer))) continue
        for (const id of batch) unanswered.add(id)
        this.#init.log.info({ component: 'discovery:restart', peer, vms: batch.length }, 'a live peer did not answer for tombstones: restarts held back, asked again later')
      }
    }))
    return { unanswered, later }
  }

  /** Hands `peer` (the restarter their designations name) our records of VMs still not running elsewhere. */
  async #handOff (peer: string, list: StoredReplica[]): Promise<void> {
    const now = this.#init.now()
    for (const r of list) this.#handoffs.set(r.record.spec.id, afterFailure(this.#handoffs.get(r.record.spec.id), now, this.#backoff))
    try {
      const settled = await this.#init.handoff(peer, list.map(r => r.record))
      this.#init.log.info({ component: 'discovery:restart', to: peer, vms: list.length, settled: settled.length }, 'records handed to their restarter')
      for (const id of this.#init.holdings.drop(settled)) this.#handoffs.delete(id)
    } catch (err: any) {
      this.#init.log.debug({ component: 'discovery:restart', to: peer, err: err.message }, 'handoff failed: trying again later')
    }
  }

  async #act (r: StoredReplica, owner: string, kind: 'restart' | 'lost'): Promise<void> {
    const { spec, chain, designation } = r.record
    const id = spec.id
    try {
      if (this.#init.config.restartQuorum && !(await this.#quorum(designation, owner))) {
        this.#init.metrics.restarts.inc({ result: 'no-quorum' })
        this.#later(id)
        return
      }
      // Superseded, deleted, dropped or designated anew while the other holders were asked: the rule runs again on what we hold now.
      if (this.#init.holdings.get(id) !== r) return
      if (kind === 'lost') {
        this.#init.events.emit('vm.lost', { id, owner, reason: 'its owner was declared dead and its restart policy is never' })
        // Reported once; should its owner come back, it runs the VM again and sends its record anew.
        this.#init.holdings.drop([id])
        return
      }
      const placing = this.#init.now()
      const placed = await this.#init.place(spec, node => extend(chain, restartLink(chain, designation, node, this.#init.signer)))
      this.#remember(id, headOf(chain), { epoch: headOf(chain).epoch + 1, owner: placed.node })
      const now = this.#init.now()
      this.#init.events.emit('vm.restarted', { id, deadOwner: owner, node: placed.node, epoch: headOf(chain).epoch + 1, ms: now - (this.#deadAt.get(owner) ?? now), placeMs: now - placing, attempts: placed.attempts })
      this.#retry.delete(id)
      // Durable on its new owner (its commit was answered): our copy of the record is not needed any more.
      this.#init.holdings.drop([id])
      // Deleted while we placed it (its owner was alive after all, and took a delete): the tombstone reached us after
      // our last look, and told its owner of no later copy, since there was none yet. It deletes the new copy too.
      const t = this.#init.holdings.tombstoneFor(id, chain)
      if (t != null && this.#init.sendTombstone != null) {
        this.#init.log.info({ component: 'discovery:restart', vm: id, node: placed.node }, 'deleted while we restarted it: its tombstone sent to the new owner')
        await this.#init.sendTombstone(placed.node, t).catch((err: Error) => {
          this.#init.log.warn({ component: 'discovery:restart', vm: id, node: placed.node, err: err.message }, 'could not send the tombstone of a VM deleted while we restarted it: the holders send it when they see it run')
        })
      }
    } catch (err: any) {
      this.#init.metrics.restarts.inc({ result: 'failed' })
      this.#init.log.warn({ component: 'discovery:restart', vm: id, owner, err: err.message }, 'restart failed: trying again later')
      this.#later(id)
    } finally {
      this.#inFlight.delete(id)
    }
  }

  /** Whether a majority of the VM's replica set confirms its owner dead (we do, by deciding to restart). */
  async #quorum (designation: Designation, dead: string): Promise<boolean> {
    const confirmed = new Set([this.#init.self])
    await Promise.all(confirmers(designation, this.#init.self).map(async p => {
      try {
        if (await this.#init.confirmDead(p, dead)) confirmed.add(p)
      } catch {}
    }))
    return hasQuorum(designation, confirmed)
  }

  #remember (id: string, from: Head, to: Head): void {
    this.#restarted.delete(id)
    this.#restarted.set(id, { from, to })
    if (this.#restarted.size > MAX_REMEMBERED) this.#restarted.delete(this.#restarted.keys().next().value!)
  }

  #later (id: string): void {
    this.#retry.set(id, afterFailure(this.#retry.get(id), this.#init.now(), this.#backoff))
  }
}
