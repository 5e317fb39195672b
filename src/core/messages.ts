/**
 * The one schema of every message that crosses a trust boundary: gossip, the
 * stream protocols and the HTTP API. Each schema gives both the TypeScript
 * type and the validation; edges call `parse…` once and hand typed values to
 * the core. Zod is pure (no I/O), so it may live in core/.
 */
import { z } from 'zod'
import { leaseIdSchema, peerIdSchema, vmIdSchema } from './ids.ts'
import { chainSchema } from './ownership-messages.ts'

/** Bounds that keep a hostile message from making us allocate or loop without end. */
export const LIMITS = Object.freeze({
  maxCpu: 1024,
  maxMemMiB: 16 * 1024 * 1024,
  maxLabels: 32,
  maxLabelKey: 63,
  maxLabelValue: 63,
  maxName: 63,
  /** A node's gossiped state lists its VMs (≤ 150 bytes each): 4,000 keep it well under maxMessageBytes. */
  maxVmsPerNode: 4_000,
  maxAddrs: 16,
  /** The largest gossip or stream message we accept, in bytes. */
  maxMessageBytes: 1024 * 1024
})

const labelKey = z.string().regex(/^[a-zA-Z0-9]([a-zA-Z0-9._/-]{0,62})$/, 'a label key: letters, digits, . _ / -, at most 63 characters')
const labelValue = z.string().max(LIMITS.maxLabelValue).regex(/^[a-zA-Z0-9._-]*$/, 'a label value: letters, digits, . _ -, at most 63 characters')
export const labelsSchema = z.record(labelKey, labelValue).refine(l => Object.keys(l).length <= LIMITS.maxLabels, { message: `at most ${LIMITS.maxLabels} labels` })

export const resourcesSchema = z.object({
  cpu: z.number().int().min(0).max(LIMITS.maxCpu * 64),
  memMiB: z.number().int().min(0).max(LIMITS.maxMemMiB * 64)
})

const vmName = z.string().min(1).max(LIMITS.maxName).regex(/^[a-zA-Z0-9][a-zA-Z0-9._-]*$/, 'a name: letters, digits, . _ -, starting with a letter or digit')
const groupName = z.string().min(1).max(LIMITS.maxName).regex(/^[a-zA-Z0-9._-]+$/, 'a group name: letters, digits, . _ -')

export const VM_STATES = ['creating', 'running', 'stopped', 'migrating', 'deleted'] as const
export const vmStateSchema = z.enum(VM_STATES)
export type VmState = z.infer<typeof vmStateSchema>

/** Placement constraints: node labels to match, a zone, and an anti-affinity group. */
export const constraintsSchema = z.object({
  labels: labelsSchema.optional(),
  zone: groupName.optional(),
  spread: groupName.optional()
}).strict()
export type Constraints = z.infer<typeof constraintsSchema>

/** What happens to a VM when its node dies: restarted on a live peer (`always`, the default) or reported lost (`never`). */
export const restartPolicySchema = z.enum(['always', 'never'])
export type RestartPolicy = z.infer<typeof restartPolicySchema>

/** What a user asks for: the body of `POST /v1/vms`. */
export const createVmSchema = z.object({
  name: vmName.optional(),
  cpu: z.number().int().min(1).max(LIMITS.maxCpu),
  memMiB: z.number().int().min(1).max(LIMITS.maxMemMiB),
  image: z.string().min(1).max(512).optional(),
  labels: labelsSchema.optional(),
  constraints: constraintsSchema.optional(),
  restartPolicy: restartPolicySchema.optional()
}).strict()
export type CreateVmRequest = z.infer<typeof createVmSchema>

/** The body of `POST /v1/vms/:id/migrate` (optional: no body is `{}`). */
export const migrateVmSchema = z.object({ to: peerIdSchema.optional() }).strict()
export type MigrateVmRequest = z.infer<typeof migrateVmSchema>

/** The body of `PUT /v1/vms/:id/demand` (sim driver): a fraction of the VM's vCPUs. */
export const setDemandSchema = z.object({ demand: z.number().min(0).max(1) }).strict()
export type SetDemandRequest = z.infer<typeof setDemandSchema>

/** A VM as its owner stores it and as it is gossiped. */
export const vmSpecSchema = z.object({
  id: vmIdSchema,
  name: vmName,
  cpu: z.number().int().min(1).max(LIMITS.maxCpu),
  memMiB: z.number().int().min(1).max(LIMITS.maxMemMiB),
  image: z.string().max(512).optional(),
  labels: labelsSchema.optional(),
  constraints: constraintsSchema.optional(),
  /** Absent in records of earlier versions: `always`. */
  restartPolicy: restartPolicySchema.optional(),
  createdAtMs: z.number().int().min(0)
}).strict()
export type VmSpec = z.infer<typeof vmSpecSchema>

/** The part of a VM every peer needs: enough for `scope=cluster`, spread groups and accounting. */
export const vmSummarySchema = z.object({
  id: vmIdSchema,
  name: vmName,
  cpu: z.number().int().min(1).max(LIMITS.maxCpu),
  memMiB: z.number().int().min(1).max(LIMITS.maxMemMiB),
  state: vmStateSchema,
  epoch: z.number().int().min(0),
  spread: groupName.optional()
}).strict()
export type VmSummary = z.infer<typeof vmSummarySchema>

export const PROTOCOL_VERSION = 1

/**
 * Where an agent's process runs, for peers on the same host
 * (agent/process-watch.ts): the host's boot id and pid namespace (`boot/ns`),
 * its pid and start time (clock ticks after boot, so a reused pid is told
 * apart).
 */
export const processIdentitySchema = z.object({
  host: z.string().min(1).max(128),
  pid: z.number().int().min(1).max(2 ** 32),
  start: z.number().int().min(0)
}).strict()
export type ProcessIdentity = z.infer<typeof processIdentitySchema>

/** What an agent gossips on `/discovery/state/1`. */
export const nodeStateSchema = z.object({
  v: z.literal(PROTOCOL_VERSION),
  peerId: peerIdSchema,
  /** Start time of this run of the agent: a restarted agent's sequence starts again above the old one. */
  incarnation: z.number().int().min(0),
  seq: z.number().int().min(0),
  addrs: z.array(z.string().max(256)).max(LIMITS.maxAddrs),
  api: z.string().max(256).optional(),
  capacity: resourcesSchema,
  cpuOvercommit: z.number().min(1).max(64),
  used: resourcesSchema,
  reserved: resourcesSchema,
  labels: labelsSchema,
  vms: z.array(vmSummarySchema).max(LIMITS.maxVmsPerNode),
  /** Load summary: the CPU its VMs ask for now, in vCPUs (what overloads a node, unlike allocation). */
  demand: z.number().min(0).max(LIMITS.maxCpu * 64).optional(),
  /** Consolidation emptied this node: it takes VMs only when no active node can. */
  idle: z.boolean().optional(),
  /** Where its process runs: co-hosted peers ask the kernel whether it is stopped. */
  process: processIdentitySchema.optional()
}).strict()
export type NodeState = z.infer<typeof nodeStateSchema>

/**
 * What goes on `/discovery/state/1`: a NodeState, or a change since an earlier
 * one. With `delta`, `vms` lists only the VMs added or changed since this
 * peer's state number `delta.base` (same incarnation), `delta.removed` the ids
 * gone since, and `delta.count` how many VMs there are once it is applied.
 * The receiving edge rebuilds the whole NodeState: past it, only whole states.
 */
export const stateDeltaSchema = z.object({
  base: z.number().int().min(0),
  removed: z.array(vmIdSchema).max(LIMITS.maxVmsPerNode),
  count: z.number().int().min(0).max(LIMITS.maxVmsPerNode)
}).strict()
export type StateDelta = z.infer<typeof stateDeltaSchema>

export const stateMessageSchema = nodeStateSchema.extend({ delta: stateDeltaSchema.optional() })
export type StateMessage = z.infer<typeof stateMessageSchema>

/** `/discovery/place/1.0.0`: one request, one response. */
export const placeRequestSchema = z.discriminatedUnion('op', [
  z.object({ v: z.literal(PROTOCOL_VERSION), op: z.literal('reserve'), leaseId: leaseIdSchema, resources: resourcesSchema, constraints: constraintsSchema.optional(), ttlMs: z.number().int().min(100).max(120_000) }).strict(),
  // `chain`: a restart's, ending with the restart link that names the node committed to (core/ownership.ts); a new VM has none.
  z.object({ v: z.literal(PROTOCOL_VERSION), op: z.literal('commit'), leaseId: leaseIdSchema, vm: vmSpecSchema, chain: chainSchema.optional() }).strict(),
  z.object({ v: z.literal(PROTOCOL_VERSION), op: z.literal('release'), leaseId: leaseIdSchema }).strict(),
  // An extension of DESIGN.md's reserve/commit/release: a VM is deleted by the node that owns its capacity.
  z.object({ v: z.literal(PROTOCOL_VERSION), op: z.literal('delete'), vmId: vmIdSchema }).strict()
])
export type PlaceRequest = z.infer<typeof placeRequestSchema>

export const placeResponseSchema = z.union([
  z.object({ v: z.literal(PROTOCOL_VERSION), ok: z.literal(true), state: vmStateSchema.optional() }).strict(),
  z.object({ v: z.literal(PROTOCOL_VERSION), ok: z.literal(false), reason: z.string().max(500) }).strict()
])
export type PlaceResponse = z.infer<typeof placeResponseSchema>

/** Turns a zod error into one line that names the field and what was expected. */
export function describeIssues (error: z.ZodError): string {
  return error.issues.slice(0, 3).map(i => {
    const path = i.path.length > 0 ? i.path.join('.') : '(body)'
    // A bad record key (zod's invalid_key) carries the key schema's own message one level down.
    const inner = i.code === 'invalid_key' ? (i as { issues?: Array<{ message: string }> }).issues?.[0]?.message : undefined
    return `${path}: ${inner ?? i.message}`
  }).join('; ')
}
export { vmIdSchema } from './ids.ts'
