/**
 * The schemas of a VM's ownership proofs (core/ownership.ts says what they
 * mean and how they are checked): the links of its chain, the designation of
 * its replica holders, the tombstone of a deleted VM. Each gives the type and
 * the validation at the edge; the signatures are checked by ownership.ts.
 */
import { z } from 'zod'
import { peerIdSchema, vmIdSchema } from './ids.ts'

/** Links a chain keeps: older ones are dropped (a verifier needs the links since its own head, rarely more than two). */
export const MAX_CHAIN = 16
/** Replica holders one designation may name (`replicas` in config.ts is at most this). */
export const MAX_REPLICAS = 7

/** An Ed25519 signature (64 bytes) as base64. */
export const signatureSchema = z.string().regex(/^[A-Za-z0-9+/]{86}==$/, 'an Ed25519 signature in base64')

export const epochSchema = z.number().int().min(0).max(1_000_000_000)

/** Where a chain stands: an epoch and the peer that owns the VM at it. */
export const headSchema = z.object({ epoch: epochSchema, owner: peerIdSchema }).strict()
export type Head = z.infer<typeof headSchema>

/** The owner's word on who holds its VM's replicas, in ring order after it: signed by the owner. */
export const designationSchema = z.object({
  vmId: vmIdSchema,
  epoch: epochSchema,
  owner: peerIdSchema,
  replicas: z.array(peerIdSchema).min(1).max(MAX_REPLICAS),
  /** The owner's time when it signed it: of two designations at one epoch, the later one stands. */
  issuedAtMs: z.number().int().min(0),
  sig: signatureSchema
}).strict()
export type Designation = z.infer<typeof designationSchema>

export const createLinkSchema = z.object({
  kind: z.literal('create'),
  vmId: vmIdSchema,
  epoch: epochSchema,
  owner: peerIdSchema,
  sig: signatureSchema
}).strict()

export const migrateLinkSchema = z.object({
  kind: z.literal('migrate'),
  vmId: vmIdSchema,
  epoch: epochSchema.min(1),
  owner: peerIdSchema,
  prev: headSchema,
  sig: signatureSchema
}).strict()

export const restartLinkSchema = z.object({
  kind: z.literal('restart'),
  vmId: vmIdSchema,
  epoch: epochSchema.min(1),
  owner: peerIdSchema,
  /** The head it follows: `prev.owner` is the peer whose death it follows. */
  prev: headSchema,
  /** The replica holder that signed it, named in `designation`. */
  by: peerIdSchema,
  designation: designationSchema,
  sig: signatureSchema
}).strict()

export const linkSchema = z.discriminatedUnion('kind', [createLinkSchema, migrateLinkSchema, restartLinkSchema])
export type Link = z.infer<typeof linkSchema>
export type CreateLink = z.infer<typeof createLinkSchema>
export type MigrateLink = z.infer<typeof migrateLinkSchema>
export type RestartLink = z.infer<typeof restartLinkSchema>

/** A VM's ownership, oldest link first, its head last. */
export const chainSchema = z.array(linkSchema).min(1).max(MAX_CHAIN)
export type Chain = Link[]

/** A deleted VM: signed by its owner at deletion, with its chain (what a stale copy anchors it to). */
export const tombstoneSchema = z.object({
  vmId: vmIdSchema,
  epoch: epochSchema,
  owner: peerIdSchema,
  deletedAtMs: z.number().int().min(0),
  chain: chainSchema,
  sig: signatureSchema
}).strict()
export type Tombstone = z.infer<typeof tombstoneSchema>
