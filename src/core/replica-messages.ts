/**
 * The schemas of `/discovery/replica/1.0.0`, one request and one answer per
 * stream: an owner's VM records pushed to its holders (`put`), taken back
 * (`drop`) and deleted (`delete`, with tombstones); a restarter's question to
 * the other holders (`confirm-dead`, the quorum mode); a waiting holder's
 * record handed to the restarter its designation names (`handoff`: an owner
 * that died while moving its records may have left that one without); a verifier's request
 * for the chain behind a claimed epoch (`chain`), and an owner's proof sent
 * unasked to a peer that runs an older copy (`claim`); a holder's question to an
 * owner about replicas it was not sent again (`held`), and a restarter's to
 * the other holders about the VMs it is about to restart (`tombstones`).
 */
import { z } from 'zod'
import { peerIdSchema, vmIdSchema } from './ids.ts'
import { LIMITS, PROTOCOL_VERSION, vmSpecSchema } from './messages.ts'
import { chainSchema, designationSchema, epochSchema, tombstoneSchema } from './ownership-messages.ts'

/**
 * Records or tombstones per message: one with a full chain of restart links
 * is about 15 kB, so 48 stay under the 1 MiB bound of a message.
 */
export const MAX_RECORDS_PER_MESSAGE = 48
/** Later heads in a `delete`'s answer: a few for each of its tombstones (those beyond are left out; gossip finds their copies later). */
export const MAX_LATER_HEADS = 4 * MAX_RECORDS_PER_MESSAGE
/** VM ids per `chain` request: one claim at a time, a few at once. */
export const MAX_CHAINS_PER_MESSAGE = 48

/** What a holder keeps of an owner's VM: enough to restart it, and the proof that it may. */
export const replicaRecordSchema = z.object({
  spec: vmSpecSchema,
  chain: chainSchema,
  designation: designationSchema
}).strict()
export type ReplicaRecord = z.infer<typeof replicaRecordSchema>

const vmIds = (max: number): z.ZodArray<typeof vmIdSchema> => z.array(vmIdSchema).min(1).max(max)

export const replicaRequestSchema = z.discriminatedUnion('op', [
  z.object({ v: z.literal(PROTOCOL_VERSION), op: z.literal('put'), records: z.array(replicaRecordSchema).min(1).max(MAX_RECORDS_PER_MESSAGE) }).strict(),
  z.object({ v: z.literal(PROTOCOL_VERSION), op: z.literal('drop'), vmIds: vmIds(LIMITS.maxVmsPerNode) }).strict(),
  z.object({ v: z.literal(PROTOCOL_VERSION), op: z.literal('delete'), tombstones: z.array(tombstoneSchema).min(1).max(MAX_RECORDS_PER_MESSAGE) }).strict(),
  z.object({ v: z.literal(PROTOCOL_VERSION), op: z.literal('confirm-dead'), peerId: peerIdSchema }).strict(),
  z.object({ v: z.literal(PROTOCOL_VERSION), op: z.literal('chain'), vmIds: vmIds(MAX_CHAINS_PER_MESSAGE) }).strict(),
  /** The owner of a VM tells a peer still running an older copy of it: here is the proof, stop yours. */
  z.object({ v: z.literal(PROTOCOL_VERSION), op: z.literal('claim'), chains: z.array(z.object({ vmId: vmIdSchema, chain: chainSchema }).strict()).min(1).max(MAX_CHAINS_PER_MESSAGE) }).strict(),
  z.object({ v: z.literal(PROTOCOL_VERSION), op: z.literal('held'), vmIds: vmIds(LIMITS.maxVmsPerNode) }).strict(),
  /** A restarter to the other holders of the VMs it is about to restart: the tombstones of those deleted, which it may have missed. */
  z.object({ v: z.literal(PROTOCOL_VERSION), op: z.literal('tombstones'), vmIds: vmIds(MAX_RECORDS_PER_MESSAGE) }).strict(),
  /** A holder of a dead owner's VMs to the restarter their designation names, which may not have been sent them. */
  z.object({ v: z.literal(PROTOCOL_VERSION), op: z.literal('handoff'), records: z.array(replicaRecordSchema).min(1).max(MAX_RECORDS_PER_MESSAGE) }).strict(),
  /** An owner back from a restart to a peer: what it knows above these heads of the owner's VMs (later copies to be proved, tombstones). */
  z.object({ v: z.literal(PROTOCOL_VERSION), op: z.literal('heads'), heads: z.array(z.object({ vmId: vmIdSchema, epoch: epochSchema, owner: peerIdSchema }).strict()).min(1).max(MAX_RECORDS_PER_MESSAGE) }).strict()
])
export type ReplicaRequest = z.infer<typeof replicaRequestSchema>

const refusalSchema = z.object({ vmId: vmIdSchema, reason: z.string().max(500) }).strict()

/** One answer shape for every op; each op fills its own fields. */
export const replicaResponseSchema = z.union([
  z.object({
    v: z.literal(PROTOCOL_VERSION),
    ok: z.literal(true),
    /** put, delete, handoff: the records or tombstones not taken, and why. */
    refused: z.array(refusalSchema).max(MAX_RECORDS_PER_MESSAGE).optional(),
    /** confirm-dead: whether the answering node has declared the peer dead. */
    dead: z.boolean().optional(),
    /** chain: the chain of each asked VM the answering node runs. */
    chains: z.array(z.object({ vmId: vmIdSchema, chain: chainSchema }).strict()).max(MAX_CHAINS_PER_MESSAGE).optional(),
    /** handoff: the VMs the answering node restarted already or runs: the sender's records of them are not needed any more. */
    settled: z.array(vmIdSchema).max(MAX_RECORDS_PER_MESSAGE).optional(),
    /** held: the replicas the owner no longer wants held, and the tombstones of those deleted (handoff, tombstones, heads: of those deleted; put: of the records refused as deleted). */
    drop: z.array(vmIdSchema).max(LIMITS.maxVmsPerNode).optional(),
    tombstones: z.array(tombstoneSchema).max(MAX_RECORDS_PER_MESSAGE).optional(),
    /** tombstones: the designation of each asked VM the answering node holds a record of (a restarter that holds an older one defers to the later). */
    designations: z.array(designationSchema).max(MAX_RECORDS_PER_MESSAGE).optional(),
    /**
     * delete: the later heads the answering node knows of a deleted VM — a
     * restart it made, a record it holds, a copy it sees gossiped — whose
     * owners the deleter sends the tombstone too (a delete that met a copy
     * its chain has moved on from, restarted meanwhile). heads: the same
     * for the heads asked, the answering node's own copies included.
     * tombstones: every head the answering node knows of the VMs asked (a
     * restarter proves those above its record, and does not restart a VM
     * restarted already).
     */
    later: z.array(z.object({ vmId: vmIdSchema, epoch: epochSchema, owner: peerIdSchema }).strict()).max(MAX_LATER_HEADS).optional()
  }).strict(),
  z.object({ v: z.literal(PROTOCOL_VERSION), ok: z.literal(false), reason: z.string().max(500) }).strict()
])
export type ReplicaResponse = z.infer<typeof replicaResponseSchema>
/** A later head of a deleted VM (`delete`'s `later`). */
export type LaterHead = NonNullable<Extract<ReplicaResponse, { ok: true }>['later']>[number]
