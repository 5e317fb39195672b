/**
 * The schemas of `/discovery/swim/1.0.0`, the failure detector's protocol
 * (core/failure-detector.ts): ping, ack, ping-req, nack, gossip and sync, each one
 * datagram on the sender's long-lived stream to the receiver, each carrying
 * the sender's incarnation and a few membership updates (piggy-backed).
 *
 * An incarnation is a pair: `run`, the start time of the member's process
 * (a restarted agent starts above every incarnation of its previous run),
 * and `inc`, raised by one each time the member refutes an accusation within
 * that run. Comparing the pair tells a refutation (same run) from a restart.
 */
import { z } from 'zod'
import { peerIdSchema } from './ids.ts'
import { PROTOCOL_VERSION } from './messages.ts'
import { signatureSchema } from './ownership-messages.ts'

export const SWIM_LIMITS = Object.freeze({
  /** Updates carried by one message: enough for the few changes in flight at once, small enough to stay one frame. */
  maxUpdates: 32,
  /** Accusers named in one update: more than any quorum needs. */
  maxAccusers: 16,
  /** One message, encoded. */
  maxMessageBytes: 64 * 1024
})

const incarnation = { run: z.number().int().min(0), inc: z.number().int().min(0) }
const seq = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)

export const MEMBER_STATUSES = ['alive', 'suspect', 'dead'] as const
export type MemberStatus = typeof MEMBER_STATUSES[number]

/**
 * What the sender knows of one member: its status at an incarnation, and who
 * accused it (suspect, dead). On the wire each claim carries its signature
 * (agent/swim-proofs.ts checks them at the edge, the detector never sees
 * them): an accusation, each accuser's (`sigs`, in the order of `accusers`);
 * an incarnation said alive, the member's own (`sig`). A relaying peer
 * passes the signatures on, so it cannot name accusers that never accused,
 * nor raise a member's incarnation on its behalf.
 */
export const swimUpdateSchema = z.object({
  peer: peerIdSchema,
  ...incarnation,
  status: z.enum(MEMBER_STATUSES),
  accusers: z.array(peerIdSchema).max(SWIM_LIMITS.maxAccusers).optional(),
  sigs: z.array(signatureSchema).max(SWIM_LIMITS.maxAccusers).optional(),
  sig: signatureSchema.optional()
}).strict()
export type SwimUpdate = z.infer<typeof swimUpdateSchema>

/** What an accuser signs: that `peer` did not answer it at this incarnation. */
export function accusationBytes (u: Pick<SwimUpdate, 'peer' | 'run' | 'inc'>): Uint8Array {
  return new TextEncoder().encode(`discovery/swim-accusation/1\n${u.peer}\n${u.run}\n${u.inc}`)
}

/** What a member signs of itself: that it is alive at this incarnation (its start, or a refutation). */
export function incarnationBytes (u: Pick<SwimUpdate, 'peer' | 'run' | 'inc'>): Uint8Array {
  return new TextEncoder().encode(`discovery/swim-incarnation/1\n${u.peer}\n${u.run}\n${u.inc}`)
}

const common = {
  v: z.literal(PROTOCOL_VERSION),
  /** The sender's incarnation; for an ack relayed by a helper (`of` set), the target's. */
  ...incarnation,
  updates: z.array(swimUpdateSchema).max(SWIM_LIMITS.maxUpdates)
}

export const swimMessageSchema = z.discriminatedUnion('type', [
  /** Are you there? Answered by an ack with the same `seq`. */
  z.object({ type: z.literal('ping'), seq, ...common }).strict(),
  /** I am; or, with `of`, a helper passing on `of`'s answer to an indirect probe. */
  z.object({ type: z.literal('ack'), seq, of: peerIdSchema.optional(), ...common }).strict(),
  /** Please probe `target` for me and pass its ack on (or a nack when it does not answer in time). */
  z.object({ type: z.literal('ping-req'), seq, target: peerIdSchema, ...common }).strict(),
  /**
   * The helper asked by ping-req `seq` got no answer from the target in time
   * (Lifeguard: so the asker knows its own path works); `unreachable` when
   * its ping could not even be sent (a refused dial: the target is gone).
   */
  z.object({ type: z.literal('nack'), seq, unreachable: z.literal(true).optional(), ...common }).strict(),
  /** Updates that could not wait for the next probe. */
  z.object({ type: z.literal('gossip'), ...common }).strict(),
  /**
   * Anti-entropy (memberlist's push/pull, for what is not alive only): the
   * sender's members it shows suspect or dead. Answered by a gossip with
   * what the receiver knows that the sender lacks or holds in an older form,
   * when there is any.
   */
  z.object({ type: z.literal('sync'), ...common }).strict()
])
export type SwimMessage = z.infer<typeof swimMessageSchema>
export type SwimMessageType = SwimMessage['type']

/**
 * Whether `msg` names a peer that `self`'s detector does not watch (`known`
 * says undefined): its sender, or a member an update says is alive. The
 * sender watches that peer, so it holds the peer's state, which we lack —
 * members are added from gossiped states, so a state missed while joining
 * shows here first (agent/peer-exchange.ts then asks the sender for it).
 */
export function namesUnknown (self: string, from: string, msg: SwimMessage, known: (peer: string) => unknown): boolean {
  if (from !== self && known(from) == null) return true
  return msg.updates.some(u => u.status === 'alive' && u.peer !== self && known(u.peer) == null)
}
