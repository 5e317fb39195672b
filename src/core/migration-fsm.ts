/**
 * A live migration, both ends, as pure state machines: events in, the next
 * phase and the actions to carry out out. The agent runs them over
 * `/discovery/migrate/1.0.0` with its driver; the simulator runs the same
 * over its simulated network with the pre-copy model.
 *
 * Source: propose → (the destination admits, reserves and accepts) →
 * transfer → commit, or abort. Every path ends with the VM running in
 * exactly one place and no reservation held for long:
 * - refused, unreachable, transfer refused or failed, commit refused or
 *   never confirmed → `aborted`: the source resumes its copy and tells the
 *   destination to release its reservation (an abort the runtime retries;
 *   the lease, no longer than the migration can take, expires anyway) — on
 *   every path but a refusal, since a destination that refused holds nothing;
 * - committed → the destination runs the VM at epoch + 1, the source stops its copy;
 * - commit sent but no answer → `in-doubt`: the VM stays paused at the source
 *   until the destination answers the commit asked again (it is idempotent:
 *   `committed` if it adopted the VM, refused if its reservation is gone —
 *   then it never will), or is seen running it at the higher epoch
 *   (fencing: stop our copy), or `doubt` expires (resume; should the
 *   destination have committed after all, the higher epoch wins later).
 *
 * Destination: a proposal is admitted (`admitIncoming`: the one rule, also
 * the planner's viability) and reserved with a lease; a commit adopts the VM
 * at its new epoch, an abort or the lease's expiry releases the room.
 */
import type { MigrationPhase, MigrationRecord } from './migrate-messages.ts'
import type { HostLoad, VmLoad } from './rebalance-messages.ts'
import { allocatable } from './resources.ts'

export type { MigrationPhase, MigrationRecord }

export interface MigrationConfig {
  /** Live-migration bandwidth the sim driver's model assumes, MiB/s. Default 1,250 (10 Gbit/s; wan 125). */
  bandwidthMiBps: number
  /** Longest pause at the switch-over. Default 30 ms (pre-copy stops when the rest fits). */
  maxDowntimeMs: number
  /**
   * A transfer not done after this long is given up, with the reason, and the
   * VM runs on at its source. Default 5 min: a 16 GiB VM at 125 MiB/s takes
   * about 2.5 min when it converges at all; past that it is not converging.
   */
  deadlineMs: number
  /** How long a source waits for evidence after a lost commit answer before it resumes. Default 30 s. */
  doubtMs: number
  /** Migrations kept in the list once ended. Default 200. */
  keepEnded: number
}

export const DEFAULT_MIGRATION: MigrationConfig = Object.freeze({ bandwidthMiBps: 1250, maxDowntimeMs: 30, deadlineMs: 300_000, doubtMs: 30_000, keepEnded: 200 })

/** Room for the commit's round trips after the transfer, and for clocks read at different moments. */
const LEASE_MARGIN_MS = 60_000

/**
 * The destination's reservation lasts as long as the migration can take —
 * its transfer deadline, the commit, the doubt after a lost answer — and no
 * longer: a source that vanished leaves nothing held past that.
 */
export function migrationLeaseMs (c: Pick<MigrationConfig, 'deadlineMs' | 'doubtMs'>): number {
  return c.deadlineMs + c.doubtMs + LEASE_MARGIN_MS
}

// ---------------------------------------------------------------------------
// Source

export type MigrationEvent =
  /** The destination reserved room; `uri` is where it waits for the VM (a real hypervisor's incoming migration). */
  | { type: 'accepted', uri?: string }
  | { type: 'refused', reason: string }
  | { type: 'unreachable', reason: string }
  /** `runsAtDestination`: the destination ran the VM as soon as it had it all (QEMU), not at the commit. */
  | { type: 'transferred', totalMs: number, downtimeMs: number, bytesMiB: number, rounds?: number, throttled?: boolean, runsAtDestination?: boolean }
  | { type: 'transfer-failed', reason: string }
  | { type: 'committed' }
  | { type: 'commit-refused', reason: string }
  | { type: 'commit-lost' }
  /** Gossip shows the destination running the VM at a higher epoch than ours. */
  | { type: 'fenced' }
  | { type: 'doubt-expired' }

export type MigrationAction =
  | 'start-transfer'
  | 'send-commit'
  | 'send-abort'
  /** Stop our copy: the destination owns the VM now. */
  | 'drop-local'
  /** Resume our copy: the migration did not happen. */
  | 'resume-local'
  /** Wait `doubtMs` for evidence, then feed `doubt-expired`. */
  | 'wait-for-evidence'

export interface Step {
  record: MigrationRecord
  actions: MigrationAction[]
}

export function startMigration (init: Omit<MigrationRecord, 'phase'>): MigrationRecord {
  return { ...init, phase: 'proposing' }
}

export function isFinal (phase: MigrationPhase): boolean {
  return phase === 'committed' || phase === 'aborted'
}

/** The next phase of `record` on `event` at `nowMs`. An event that does not fit the phase changes nothing. */
export function stepMigration (record: MigrationRecord, event: MigrationEvent, nowMs: number): Step {
  const to = (phase: MigrationPhase, actions: MigrationAction[], extra: Partial<MigrationRecord> = {}): Step => {
    const next: MigrationRecord = { ...record, ...extra, phase }
    if (isFinal(phase)) {
      next.endedAtMs = nowMs
      // Once the transfer ended, the VM was paused at the source until it ran again, here or there — at the
      // destination as soon as the transfer ended when its hypervisor starts it then (QEMU), at the commit otherwise.
      const ranThere = phase === 'committed' && next.runsAtDestination === true
      if (next.transferredAtMs != null) next.downtimeMs = (next.transferDowntimeMs ?? 0) + (ranThere ? 0 : Math.max(0, nowMs - next.transferredAtMs))
    }
    return { record: next, actions }
  }
  const unchanged: Step = { record, actions: [] }
  switch (record.phase) {
    case 'proposing':
      if (event.type === 'accepted') return to('transferring', ['start-transfer'], event.uri != null ? { uri: event.uri } : {})
      if (event.type === 'refused') return to('aborted', ['resume-local'], { reason: event.reason })
      // The destination may have reserved before its answer was lost.
      if (event.type === 'unreachable') return to('aborted', ['send-abort', 'resume-local'], { reason: event.reason })
      return unchanged
    case 'transferring':
      if (event.type === 'transferred') {
        const figures: Partial<MigrationRecord> = { totalMs: event.totalMs, downtimeMs: event.downtimeMs, transferDowntimeMs: event.downtimeMs, transferredAtMs: nowMs, bytesMiB: event.bytesMiB }
        if (event.rounds != null) figures.rounds = event.rounds
        if (event.throttled != null) figures.throttled = event.throttled
        if (event.runsAtDestination === true) figures.runsAtDestination = true
        return to('committing', ['send-commit'], figures)
      }
      if (event.type === 'transfer-failed') return to('aborted', ['send-abort', 'resume-local'], { reason: event.reason })
      return unchanged
    case 'committing':
      if (event.type === 'committed') return to('committed', ['drop-local'])
      if (event.type === 'commit-refused') return to('aborted', ['send-abort', 'resume-local'], { reason: event.reason })
      if (event.type === 'commit-lost') return to('in-doubt', ['wait-for-evidence'])
      if (event.type === 'fenced') return to('committed', ['drop-local'])
      return unchanged
    case 'in-doubt':
      if (event.type === 'fenced' || event.type === 'committed') return to('committed', ['drop-local'])
      if (event.type === 'commit-refused') return to('aborted', ['send-abort', 'resume-local'], { reason: `the destination refused the commit asked again: ${event.reason}` })
      if (event.type === 'doubt-expired') return to('aborted', ['send-abort', 'resume-local'], { reason: 'the destination never confirmed the commit' })
      return unchanged
    default:
      return unchanged
  }
}

// ---------------------------------------------------------------------------
// Destination

/**
 * Demand is a float summed in whatever order: the admission forgives this
 * much rounding, as the planner does (planner.ts), so that a destination the
 * planner chose is never refused for a rounding difference.
 */
const EPSILON = 1e-9

export interface AdmissionContext {
  /** The rebalancing partition this node belongs to, if any. */
  partitionId?: string
  /** The partition the proposal comes from, if any. */
  proposalPartitionId?: string
}

/**
 * Why `dest` cannot take `vm` by migration; undefined when it can. The one
 * rule of the destination: it is in no other rebalancing partition, does not
 * run the VM already, and stays viable once the VM has arrived — demand
 * within its cores, memory within its memory, allocation within
 * `allocatable`, no second VM of a spread group. `dest` counts its
 * reservations (as pinned VMs) with the demand its runtime gives them.
 */
export function admitIncoming (dest: HostLoad, vm: VmLoad, ctx: AdmissionContext = {}): string | undefined {
  if (ctx.partitionId != null && ctx.partitionId !== ctx.proposalPartitionId) return 'this node is in another rebalancing partition'
  let demand = 0
  let memMiB = 0
  let alloc = 0
  for (const v of dest.vms) {
    if (v.id === vm.id) return `this node already runs ${vm.id}`
    if (vm.spread != null && v.spread === vm.spread) return `this node already hosts spread group ${vm.spread}`
    demand += v.demand
    memMiB += v.memMiB
    alloc += v.cpu
  }
  const cores = dest.capacity.cpu
  if (demand + vm.demand > cores + EPSILON) return `taking ${vm.id} (demand ${vm.demand.toFixed(2)} vCPU) would overload this node (demand ${demand.toFixed(2)} of ${cores} cores)`
  if (memMiB + vm.memMiB > dest.capacity.memMiB) return `not enough free memory for ${vm.id}: need ${vm.memMiB} MiB, free ${dest.capacity.memMiB - memMiB} MiB`
  const limit = allocatable(dest.capacity, dest.cpuOvercommit).cpu
  if (alloc + vm.cpu > limit) return `no vCPU left to allocate for ${vm.id}: need ${vm.cpu}, ${limit - alloc} of ${limit} left`
  return undefined
}

export type IncomingPhase = 'reserved' | 'adopted' | 'released'

/** A migration as its destination records it, from the admitted proposal on. */
export interface IncomingRecord {
  migrationId: string
  vmId: string
  from: string
  /** The VM's epoch at the source; it runs here at epoch + 1. */
  epoch: number
  phase: IncomingPhase
  expiresAtMs: number
  reason?: string
}

export type IncomingEvent =
  | { type: 'commit', epoch: number }
  | { type: 'abort' }
  /** The lease's time is up with no commit. */
  | { type: 'expired' }

export type IncomingAction =
  /** Take the VM over at the new epoch (durable before the answer). */
  | 'adopt'
  /** Give the reserved room back. */
  | 'release'

export interface IncomingStep {
  record: IncomingRecord
  actions: IncomingAction[]
  /** For `commit`: what to answer the source; undefined when nothing is to be answered. */
  refusal?: string
}

export function startIncoming (init: Omit<IncomingRecord, 'phase'>): IncomingRecord {
  return { ...init, phase: 'reserved' }
}

/** The next phase of an incoming migration. A commit of an adopted VM is answered again (the source may ask twice). */
export function stepIncoming (record: IncomingRecord, event: IncomingEvent, nowMs: number): IncomingStep {
  const unchanged: IncomingStep = { record, actions: [] }
  switch (record.phase) {
    case 'reserved':
      if (event.type === 'commit') {
        if (event.epoch !== record.epoch + 1) return { record, actions: [], refusal: `commit at epoch ${event.epoch}, expected ${record.epoch + 1}` }
        if (nowMs >= record.expiresAtMs) return { record: { ...record, phase: 'released', reason: 'the reservation expired' }, actions: ['release'], refusal: 'the reservation expired' }
        return { record: { ...record, phase: 'adopted' }, actions: ['adopt'] }
      }
      if (event.type === 'abort') return { record: { ...record, phase: 'released', reason: 'aborted by the source' }, actions: ['release'] }
      if (event.type === 'expired') return { record: { ...record, phase: 'released', reason: 'the reservation expired' }, actions: ['release'] }
      return unchanged
    case 'adopted':
      if (event.type === 'commit') return { record, actions: [] }
      return unchanged
    case 'released':
      if (event.type === 'commit') return { record, actions: [], refusal: record.reason ?? 'no such migration' }
      return unchanged
  }
}
