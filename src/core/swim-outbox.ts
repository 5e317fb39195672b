/**
 * What the failure detector sends in one step (failure-detector.ts) and how
 * each message is composed: its own incarnation in the header, first the
 * accusation the receiver must hear about itself (so that it refutes,
 * whatever the retransmit budget), then the updates waiting to be
 * piggy-backed, the least sent first. Urgent updates are also pushed to
 * `gossipFanout` peers every `gossipIntervalMs` while any is queued.
 */
import { BroadcastQueue, retransmitLimit } from './broadcast-queue.ts'
import type { DetectionTargets } from './detection-targets.ts'
import type { DetectorConfig } from './detector-config.ts'
import type { DetectorStats, DetectorStep } from './detector-step.ts'
import { PROTOCOL_VERSION } from './messages.ts'
import type { SwimMessage, SwimUpdate } from './swim-messages.ts'
import type { Incarnation, StatusChange, SwimMembers } from './swim-members.ts'
import type { Sync } from './swim-sync.ts'

/** A message without what `compose` adds; `run` and `inc` given only by a helper passing on the target's ack. */
export type Draft<T extends SwimMessage> = T extends unknown ? Omit<T, 'v' | 'run' | 'inc' | 'updates'> & { run?: number, inc?: number } : never

/** Updates piggy-backed on one message: a few hundred bytes. */
export const PIGGYBACK = 8

/** `first`: updates this message is sent for (anti-entropy), before the queue's. */
export function compose<T extends SwimMessage> (to: string, draft: Draft<T>, self: Incarnation, members: SwimMembers, queue: BroadcastQueue, retransmits: number, first: SwimUpdate[] = []): SwimMessage {
  const updates: SwimUpdate[] = []
  const m = members.peek(to)
  const accusation = m != null ? members.accusationFor(m) : undefined
  if (accusation != null) updates.push(accusation)
  for (const u of first) if (u.peer !== accusation?.peer) updates.push(u)
  updates.push(...queue.take(Math.max(0, PIGGYBACK - updates.length), retransmits, to))
  return { v: PROTOCOL_VERSION, run: self.run, inc: self.inc, ...draft, updates } as SwimMessage
}

export interface OutboxInit {
  config: DetectorConfig
  members: SwimMembers
  targets: DetectionTargets
  stats: DetectorStats
  /** Our run: the incarnation starts at (run, 0). */
  run: number
}

/** One step's messages and status changes, the updates to piggy-back, and our incarnation in every header. */
export class Outbox {
  readonly queue = new BroadcastQueue()
  /** Ours: raised to refute an accusation. */
  incarnation: Incarnation
  readonly #i: OutboxInit
  #step: DetectorStep = { send: [], changes: [] }
  /** When queued updates are next pushed (set by an urgent one); undefined while nothing urgent waits. */
  #nextPushMs?: number

  constructor (init: OutboxInit) {
    this.#i = init
    this.incarnation = { run: init.run, inc: 0 }
  }

  get nextPushMs (): number | undefined { return this.#nextPushMs }

  /** A new step. */
  begin (): void {
    this.#step = { send: [], changes: [] }
  }

  change (c: StatusChange): void {
    this.#step.changes.push(c)
  }

  /** Spreads `u`; `urgent`: pushed at this step's end, without waiting for a probe to carry it. */
  update (u: SwimUpdate, urgent: boolean, nowMs: number): void {
    this.queue.push(u)
    if (urgent && (this.#nextPushMs == null || this.#nextPushMs > nowMs)) this.#nextPushMs = nowMs
  }

  /** One message to `to`: our incarnation, the accusation it must hear, `first` (what it is sent for), piggy-backed updates. */
  send<T extends SwimMessage> (to: string, draft: Draft<T>, first: SwimUpdate[] = []): void {
    this.#i.stats.messagesSent++
    this.#step.send.push({ to, message: compose(to, draft, this.incarnation, this.#i.members, this.queue, retransmitLimit(this.#i.config.retransmitMult, this.#i.members.liveCount), first) })
  }

  sync (sync: Sync | undefined): void {
    if (sync == null) return
    if (sync.answer === true) this.#i.stats.syncNews += sync.updates.length; else this.#i.stats.syncs++
    this.send(sync.to, { type: sync.answer === true ? 'gossip' : 'sync' }, sync.updates)
  }

  /** The step, urgent updates pushed first when their time has come. */
  finish (nowMs: number): DetectorStep {
    if (this.queue.size > 0 && this.#nextPushMs != null && this.#nextPushMs <= nowMs) {
      for (const to of this.#i.targets.gossip(this.#i.config.gossipFanout)) {
        if (this.queue.size === 0) break
        this.send(to, { type: 'gossip' })
      }
      this.#nextPushMs = nowMs + this.#i.config.gossipIntervalMs
    }
    if (this.queue.size === 0) this.#nextPushMs = undefined
    return this.#step
  }
}
