/**
 * The bodies of the admin routes (`--admin` only): partitions for tests and
 * chaos. One schema each, checked at the API edge like every other body.
 */
import { z } from 'zod'
import { peerIdSchema } from './ids.ts'

/** Most peers one partition request may name: a whole large cluster, not an unbounded list. */
export const MAX_PARTITION_PEERS = 1000

/**
 * `both`: no connection with the peer either way. `inbound` (one way): the
 * peer cannot start anything with this agent (connections, streams, gossip),
 * while this agent still reaches it (net/partition-gater.ts).
 */
export const partitionDirectionSchema = z.enum(['both', 'inbound'])
export type PartitionDirectionName = z.infer<typeof partitionDirectionSchema>

/** `POST /v1/admin/partition`: block these peers, both ways unless said otherwise. */
export const partitionRequestSchema = z.object({
  peers: z.array(peerIdSchema).min(1).max(MAX_PARTITION_PEERS),
  direction: partitionDirectionSchema.default('both')
}).strict()
export type PartitionRequest = z.infer<typeof partitionRequestSchema>

/** `POST /v1/admin/heal`: lift the blocks of these peers, or of every peer when none are named. */
export const healRequestSchema = z.object({
  peers: z.array(peerIdSchema).min(1).max(MAX_PARTITION_PEERS).optional()
}).strict()
export type HealRequest = z.infer<typeof healRequestSchema>
