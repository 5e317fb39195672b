/**
 * The schemas of `/discovery/migrate/1.0.0` and of a migration's record (what
 * `GET /v1/migrations` lists): each gives the type and the validation at the edge.
 */
import { z } from 'zod'
import { migrationIdSchema, partitionIdSchema, peerIdSchema, vmIdSchema } from './ids.ts'
import { PROTOCOL_VERSION, vmSpecSchema } from './messages.ts'
import { chainSchema } from './ownership-messages.ts'

/**
 * Where a destination waits for an incoming VM: `tcp:HOST:PORT` (QEMU), or
 * `sim:VMID` (the sim driver, where nothing travels). The source hands it to
 * its hypervisor (QEMU's `migrate`), which would run an `exec:` URI as a
 * shell command: nothing else may pass.
 */
export const incomingUriSchema = z.string().max(300).regex(/^(tcp:(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):[1-9]\d{0,4}|sim:vm-[a-z0-9]{6,40})$/, 'an incoming migration address like tcp:10.0.0.7:49152')

export const MIGRATION_PHASES = ['proposing', 'transferring', 'committing', 'in-doubt', 'committed', 'aborted'] as const
export const migrationPhaseSchema = z.enum(MIGRATION_PHASES)
export type MigrationPhase = z.infer<typeof migrationPhaseSchema>

/** A live migration as its source records it, with the figures of its transfer once done. */
export const migrationRecordSchema = z.object({
  id: migrationIdSchema,
  vmId: vmIdSchema,
  from: peerIdSchema,
  to: peerIdSchema,
  memMiB: z.number().int().min(1),
  /** The VM's epoch before the migration; the destination runs it at epoch + 1. */
  epoch: z.number().int().min(0),
  phase: migrationPhaseSchema,
  reason: z.string().max(500).optional(),
  startedAtMs: z.number().min(0),
  endedAtMs: z.number().min(0).optional(),
  totalMs: z.number().min(0).optional(),
  /** The time the VM did not run: the switch-over, and after a completed transfer, until it ran again here or there. */
  downtimeMs: z.number().min(0).optional(),
  bytesMiB: z.number().min(0).optional(),
  /** Dirty-memory synchronisations of the transfer (the first full pass counts as one). */
  rounds: z.number().int().min(0).optional(),
  /** Whether the guest was slowed down (auto-converge) for the transfer to converge. */
  throttled: z.boolean().optional(),
  /** The destination ran the VM as soon as the transfer ended (QEMU), before the commit: the downtime is the switch-over's. */
  runsAtDestination: z.boolean().optional(),
  /** The source's and the destination's zones (their `zone` labels) differ. */
  interSite: z.boolean().optional(),
  partitionId: partitionIdSchema.optional(),
  /** Where the destination waits for the VM (a real hypervisor's incoming migration). */
  uri: incomingUriSchema.optional(),
  /** When the transfer ended (the VM paused at the source), and the switch-over it reported: the downtime runs from there. */
  transferredAtMs: z.number().min(0).optional(),
  transferDowntimeMs: z.number().min(0).optional()
}).strict()
export type MigrationRecord = z.infer<typeof migrationRecordSchema>

export const migrateRequestSchema = z.discriminatedUnion('op', [
  z.object({ v: z.literal(PROTOCOL_VERSION), op: z.literal('propose'), migrationId: migrationIdSchema, vm: vmSpecSchema, epoch: z.number().int().min(0), demand: z.number().min(0).max(1024), partitionId: partitionIdSchema.optional(), ttlMs: z.number().int().min(1000).max(3_600_000) }).strict(),
  // `chain`: the VM's, ending with the source's migrate link to the destination (core/ownership.ts); absent from agents of earlier versions.
  z.object({ v: z.literal(PROTOCOL_VERSION), op: z.literal('commit'), migrationId: migrationIdSchema, vm: vmSpecSchema, epoch: z.number().int().min(1), chain: chainSchema.optional() }).strict(),
  z.object({ v: z.literal(PROTOCOL_VERSION), op: z.literal('abort'), migrationId: migrationIdSchema }).strict(),
  /** Asks the owner of a VM to migrate it (a user's request that reached another agent). */
  z.object({ v: z.literal(PROTOCOL_VERSION), op: z.literal('request'), vmId: vmIdSchema, to: peerIdSchema.optional() }).strict()
])
export type MigrateRequest = z.infer<typeof migrateRequestSchema>

export const migrateResponseSchema = z.union([
  z.object({ v: z.literal(PROTOCOL_VERSION), ok: z.literal(true), migration: migrationRecordSchema.optional(), uri: incomingUriSchema.optional() }).strict(),
  z.object({ v: z.literal(PROTOCOL_VERSION), ok: z.literal(false), reason: z.string().max(500), migration: migrationRecordSchema.optional() }).strict()
])
export type MigrateResponse = z.infer<typeof migrateResponseSchema>
