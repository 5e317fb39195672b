/**
 * The messages of a bounded fan-out (core/fanout.ts), one schema each, checked
 * at the stream edge like every other message:
 * - `/discovery/bye/1.0.0`: "I am closing our connection on purpose" — said
 *   before an idle connection is closed, so that the peer does not take the
 *   closed connection for a sign of death;
 * - `/discovery/view/1.0.0`: a peer's view of the cluster, for an agent that
 *   joins (or may have missed states): it sends what it knows, (incarnation,
 *   seq) per peer, and gets back the states the other holds newer.
 */
import { z } from 'zod'
import { peerIdSchema } from './ids.ts'
import { nodeStateSchema, PROTOCOL_VERSION } from './messages.ts'

/** Most peers one view request or answer may list. */
export const MAX_VIEW_PEERS = 10_000

export const byeRequestSchema = z.object({ v: z.literal(PROTOCOL_VERSION) }).strict()
export const byeResponseSchema = z.object({ v: z.literal(PROTOCOL_VERSION), ok: z.literal(true) }).strict()

/**
 * `known`: [peerId, incarnation, seq] of each state the asking agent holds;
 * `self`: its own state (a newcomer's, that the answering agent may not have
 * yet), which must name the asking peer.
 */
export const viewRequestSchema = z.object({
  v: z.literal(PROTOCOL_VERSION),
  known: z.array(z.tuple([peerIdSchema, z.number().int().min(0), z.number().int().min(0)])).max(MAX_VIEW_PEERS),
  self: nodeStateSchema.optional()
}).strict()
export type ViewRequest = z.infer<typeof viewRequestSchema>

/** The states the answering agent holds newer than the asker (or that it lacks); `more` when some did not fit. */
export const viewResponseSchema = z.object({
  v: z.literal(PROTOCOL_VERSION),
  states: z.array(nodeStateSchema).max(MAX_VIEW_PEERS),
  more: z.boolean().optional()
}).strict()
export type ViewResponse = z.infer<typeof viewResponseSchema>
