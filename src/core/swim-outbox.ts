/**
 * How the failure detector composes a message: its own incarnation in the
 * header, first the accusation the receiver must hear about itself (so that
 * it refutes, whatever the retransmit budget), then the updates waiting to be
 * piggy-backed, the least sent first.
 */
import type { BroadcastQueue } from './broadcast-queue.ts'
import { PROTOCOL_VERSION } from './messages.ts'
import type { SwimMessage, SwimUpdate } from './swim-messages.ts'
import type { Incarnation, SwimMembers } from './swim-members.ts'

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
