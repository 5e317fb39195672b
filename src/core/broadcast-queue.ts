/**
 * Membership updates waiting to be piggy-backed (memberlist's
 * TransmitLimitedQueue): one per member — a newer update about a member
 * replaces the older one — each sent at most `limit` times, the least sent
 * first and, among those, the newest first. With `limit` = λ·log10(n + 1),
 * an update reaches every member with high probability (SWIM's infection-style
 * dissemination) while the bytes each member sends stay bounded.
 */
import type { SwimUpdate } from './swim-messages.ts'

interface Entry {
  update: SwimUpdate
  transmits: number
  /** Order of queueing: the newest first among equals. */
  id: number
}

/** Transmissions of one update: `mult × ceil(log10(n + 1))` (memberlist's `retransmitLimit`). */
export function retransmitLimit (mult: number, n: number): number {
  return mult * Math.max(1, Math.ceil(Math.log10(n + 1)))
}

export class BroadcastQueue {
  readonly #entries = new Map<string, Entry>()
  #next = 0

  get size (): number {
    return this.#entries.size
  }

  /** Queues what we now know of `update.peer`, replacing what was queued about it; sent afresh. */
  push (update: SwimUpdate): void {
    this.#entries.set(update.peer, { update, transmits: 0, id: this.#next++ })
  }

  /** What is queued about `peer`, if anything. */
  get (peer: string): SwimUpdate | undefined {
    return this.#entries.get(peer)?.update
  }

  delete (peer: string): void {
    this.#entries.delete(peer)
  }

  /**
   * Up to `max` updates for one message, counting one transmission each;
   * those sent `limit` times leave the queue. `skip` leaves out updates about
   * a member (the receiver, who gets ours about itself another way).
   */
  take (max: number, limit: number, skip?: string): SwimUpdate[] {
    if (this.#entries.size === 0 || max <= 0) return []
    const picked: Entry[] = []
    for (const e of this.#entries.values()) {
      if (e.update.peer === skip) continue
      picked.push(e)
    }
    picked.sort((a, b) => a.transmits - b.transmits || b.id - a.id)
    const out: SwimUpdate[] = []
    for (const e of picked.slice(0, max)) {
      out.push(e.update)
      e.transmits++
      if (e.transmits >= limit) this.#entries.delete(e.update.peer)
    }
    return out
  }
}
