/**
 * The identifiers that cross the wire, each with its one schema: a peer id
 * (libp2p's, base58), a VM id, a lease id, a migration id, a partition id.
 * Every message schema and the API's take them from here.
 */
import { z } from 'zod'

/** A libp2p peer id as text (base58btc: an Ed25519 identity is 52 characters). */
export const peerIdSchema = z.string().min(10).max(128).regex(/^[1-9A-HJ-NP-Za-km-z]+$/, 'a base58 peer id')
export type PeerIdString = z.infer<typeof peerIdSchema>

/** `vm-` and 6 to 40 lower-case letters or digits: what `newVmId` makes (12 hex digits), room for others. */
export const vmIdSchema = z.string().regex(/^vm-[a-z0-9]{6,40}$/, 'a VM id like vm-1a2b3c4d5e6f')
export type VmId = z.infer<typeof vmIdSchema>

/** A reservation's id: a UUID the placing agent draws, used once. */
export const leaseIdSchema = z.string().uuid()

/** A migration's id: a UUID drawn by its source. */
export const migrationIdSchema = z.string().uuid()

/** A rebalancing partition's id: its initiator's peer id, `#`, a counter. Compared as strings (the smaller wins a merge). */
export const partitionIdSchema = z.string().min(1).max(200)

/** Whether `s` is a well-formed VM id. */
export function isVmId (s: string): boolean {
  return vmIdSchema.safeParse(s).success
}
