/**
 * The schemas of `/discovery/migrate/1.0.0` and `/discovery/rebalance/1.0.0`:
 * one schema per message gives its type and its validation at the edge.
 */
import { z } from 'zod'
import { PROTOCOL_VERSION, vmSpecSchema } from './messages.ts'

const peerId = z.string().min(10).max(128).regex(/^[1-9A-HJ-NP-Za-km-z]+$/, 'a base58 peer id')
const partitionId = z.string().min(1).max(200)
const migrationId = z.string().uuid()
const vmId = z.string().regex(/^vm-[a-z0-9]{6,40}$/, 'a VM id like vm-1a2b3c4d')

export const MIGRATION_PHASES = ['proposing', 'transferring', 'committing', 'in-doubt', 'committed', 'aborted'] as const

export const migrationRecordSchema = z.object({
  id: migrationId,
  vmId,
  from: peerId,
  to: peerId,
  memMiB: z.number().int().min(1),
  epoch: z.number().int().min(0),
  phase: z.enum(MIGRATION_PHASES),
  reason: z.string().max(500).optional(),
  startedAtMs: z.number().int().min(0),
  endedAtMs: z.number().int().min(0).optional(),
  totalMs: z.number().min(0).optional(),
  downtimeMs: z.number().min(0).optional(),
  bytesMiB: z.number().min(0).optional(),
  partitionId: partitionId.optional()
}).strict()

export const migrateRequestSchema = z.discriminatedUnion('op', [
  z.object({ v: z.literal(PROTOCOL_VERSION), op: z.literal('propose'), migrationId, vm: vmSpecSchema, epoch: z.number().int().min(0), demand: z.number().min(0).max(1024), partitionId: partitionId.optional(), ttlMs: z.number().int().min(1000).max(3_600_000) }).strict(),
  z.object({ v: z.literal(PROTOCOL_VERSION), op: z.literal('commit'), migrationId, vm: vmSpecSchema, epoch: z.number().int().min(1) }).strict(),
  z.object({ v: z.literal(PROTOCOL_VERSION), op: z.literal('abort'), migrationId }).strict(),
  /** Asks the owner of a VM to migrate it (a user's request that reached another agent). */
  z.object({ v: z.literal(PROTOCOL_VERSION), op: z.literal('request'), vmId, to: peerId.optional() }).strict()
])
export type MigrateRequest = z.infer<typeof migrateRequestSchema>

export const migrateResponseSchema = z.union([
  z.object({ v: z.literal(PROTOCOL_VERSION), ok: z.literal(true), migration: migrationRecordSchema.optional() }).strict(),
  z.object({ v: z.literal(PROTOCOL_VERSION), ok: z.literal(false), reason: z.string().max(500), migration: migrationRecordSchema.optional() }).strict()
])
export type MigrateResponse = z.infer<typeof migrateResponseSchema>

const vmLoadSchema = z.object({
  id: z.string().min(1).max(64),
  cpu: z.number().int().min(0).max(1024),
  memMiB: z.number().int().min(0),
  demand: z.number().min(0).max(1024),
  spread: z.string().max(63).optional(),
  pinned: z.boolean().optional()
}).strict()

const hostLoadSchema = z.object({
  peerId,
  capacity: z.object({ cpu: z.number().min(0), memMiB: z.number().min(0) }).strict(),
  cpuOvercommit: z.number().min(0.01).max(1000),
  vms: z.array(vmLoadSchema).max(1000),
  labels: z.record(z.string().max(63), z.string().max(63)).optional(),
  idle: z.boolean().optional()
}).strict()

const problemSchema = z.object({ kind: z.enum(['overload', 'underload']), peerId }).strict()
const migrationSchema = z.object({ vmId: z.string().min(1).max(64), from: peerId, to: peerId, memMiB: z.number().int().min(0) }).strict()

export const rebalanceMessageSchema = z.object({
  v: z.literal(PROTOCOL_VERSION),
  msg: z.discriminatedUnion('type', [
    z.object({ type: z.literal('event'), partitionId, initiator: peerId, problem: problemSchema, members: z.array(hostLoadSchema).min(1).max(128), turns: z.number().int().min(0).max(16), blocked: z.boolean(), hops: z.number().int().min(0), startedAtMs: z.number() }).strict(),
    z.object({ type: z.literal('blocked'), partitionId }).strict(),
    z.object({ type: z.literal('order'), partitionId, leader: peerId, migrations: z.array(migrationSchema).max(64) }).strict(),
    z.object({ type: z.literal('report'), partitionId, vmId: z.string().min(1).max(64), ok: z.boolean(), reason: z.string().max(500).optional() }).strict(),
    z.object({ type: z.literal('dissolve'), partitionId, outcome: z.enum(['solved', 'failed', 'unsolvable', 'timeout']) }).strict()
  ])
}).strict()
export type RebalanceEnvelope = z.infer<typeof rebalanceMessageSchema>
