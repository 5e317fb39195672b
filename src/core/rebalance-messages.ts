/**
 * The schemas of `/discovery/rebalance/1.0.0` and of what its messages carry:
 * a host's load as the planner sees it, a problem, a migration of a plan. Each
 * gives the type (the planner's and the partition state machine's) and the
 * validation at the edge.
 */
import { z } from 'zod'
import { partitionIdSchema, peerIdSchema } from './ids.ts'
import { PROTOCOL_VERSION } from './messages.ts'

/** A VM as the planner sees it. Its id is a VM id, or `reserved` for a host's reservations. */
export const vmLoadSchema = z.object({
  id: z.string().min(1).max(64),
  /** Allocated vCPUs, an integer. */
  cpu: z.number().int().min(0).max(1024),
  memMiB: z.number().int().min(0),
  /** Current CPU demand in vCPUs, from 0 to `cpu`. */
  demand: z.number().min(0).max(1024),
  /** Anti-affinity group: no two VMs of one group on a host. */
  spread: z.string().max(63).optional(),
  /** Counts on its host but never moves: the host's reservations, for VMs not yet there. */
  pinned: z.boolean().optional()
}).strict()
export type VmLoad = z.infer<typeof vmLoadSchema>

export const hostLoadSchema = z.object({
  peerId: peerIdSchema,
  /** `cpu` is physical cores: demand beyond it is an overload. */
  capacity: z.object({ cpu: z.number().min(0), memMiB: z.number().min(0) }).strict(),
  /** Allocation may reach floor(capacity.cpu × cpuOvercommit) (`allocatable` in resources.ts). */
  cpuOvercommit: z.number().min(0.01).max(1000),
  vms: z.array(vmLoadSchema).max(1000),
  /** Carried for the caller; the planner does not read it. */
  labels: z.record(z.string().max(63), z.string().max(63)).optional(),
  /** Consolidated or powered down: receives no VM unless the planner is allowed idle hosts. */
  idle: z.boolean().optional()
}).strict()
export type HostLoad = z.infer<typeof hostLoadSchema>

export const problemSchema = z.object({ kind: z.enum(['overload', 'underload']), peerId: peerIdSchema }).strict()
export type Problem = z.infer<typeof problemSchema>

export const migrationSchema = z.object({ vmId: z.string().min(1).max(64), from: peerIdSchema, to: peerIdSchema, memMiB: z.number().int().min(0) }).strict()
export type Migration = z.infer<typeof migrationSchema>

export const OUTCOMES = ['solved', 'failed', 'unsolvable', 'timeout'] as const
export type Outcome = typeof OUTCOMES[number]

export const eventTokenSchema = z.object({
  type: z.literal('event'),
  partitionId: partitionIdSchema,
  initiator: peerIdSchema,
  problem: problemSchema,
  /** The states of the nodes the partition has gathered. */
  members: z.array(hostLoadSchema).min(1).max(128),
  turns: z.number().int().min(0).max(16),
  blocked: z.boolean(),
  hops: z.number().int().min(0),
  startedAtMs: z.number(),
  /**
   * With locality: the nodes this turn has visited nearest-first, from the
   * initiator (rebalance.ts). Absent on a ring walk.
   */
  near: z.object({
    visited: z.array(peerIdSchema).max(64),
    /** Past the nearest-first part of the turn: walking the ring past `visited`. */
    walk: z.boolean()
  }).strict().optional()
}).strict()
export type EventToken = z.infer<typeof eventTokenSchema>

export const rebalanceMessageSchema = z.discriminatedUnion('type', [
  eventTokenSchema,
  z.object({ type: z.literal('blocked'), partitionId: partitionIdSchema }).strict(),
  z.object({ type: z.literal('order'), partitionId: partitionIdSchema, leader: peerIdSchema, migrations: z.array(migrationSchema).max(64) }).strict(),
  z.object({ type: z.literal('report'), partitionId: partitionIdSchema, vmId: z.string().min(1).max(64), ok: z.boolean(), reason: z.string().max(500).optional() }).strict(),
  z.object({ type: z.literal('dissolve'), partitionId: partitionIdSchema, outcome: z.enum(OUTCOMES) }).strict()
])
export type RebalanceMessage = z.infer<typeof rebalanceMessageSchema>

export const rebalanceEnvelopeSchema = z.object({ v: z.literal(PROTOCOL_VERSION), msg: rebalanceMessageSchema }).strict()
export type RebalanceEnvelope = z.infer<typeof rebalanceEnvelopeSchema>
