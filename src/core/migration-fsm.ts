/**
 * A live migration as its source sees it: propose → (the destination
 * reserves and accepts) → transfer → commit, or abort. Pure: events in,
 * the next phase and the actions to carry out out. Every path ends with the
 * VM running in exactly one place and no reservation held for long:
 * - refused, unreachable, transfer refused or failed, commit refused →
 *   `aborted`: the source resumes its copy, the destination releases (or its
 *   lease expires on its own);
 * - committed → the destination runs the VM at epoch + 1, the source stops its copy;
 * - commit sent but no answer → `in-doubt`: the VM stays paused at the source
 *   until either the destination is seen running it at the higher epoch
 *   (fencing: stop our copy) or `doubt` expires (resume; should the
 *   destination have committed after all, the higher epoch wins later).
 */
export type MigrationPhase = 'proposing' | 'transferring' | 'committing' | 'in-doubt' | 'committed' | 'aborted'

export interface MigrationRecord {
  id: string
  vmId: string
  from: string
  to: string
  memMiB: number
  /** The VM's epoch before the migration; the destination runs it at epoch + 1. */
  epoch: number
  phase: MigrationPhase
  reason?: string
  startedAtMs: number
  endedAtMs?: number
  /** Figures of the transfer (model or real). */
  totalMs?: number
  downtimeMs?: number
  bytesMiB?: number
  partitionId?: string
}

export type MigrationEvent =
  | { type: 'accepted' }
  | { type: 'refused', reason: string }
  | { type: 'unreachable', reason: string }
  | { type: 'transferred', totalMs: number, downtimeMs: number, bytesMiB: number }
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
  const to = (phase: MigrationPhase, actions: MigrationAction[], extra: Partial<MigrationRecord> = {}): Step => ({
    record: { ...record, ...extra, phase, ...(isFinal(phase) ? { endedAtMs: nowMs } : {}) },
    actions
  })
  const unchanged: Step = { record, actions: [] }
  switch (record.phase) {
    case 'proposing':
      if (event.type === 'accepted') return to('transferring', ['start-transfer'])
      if (event.type === 'refused' || event.type === 'unreachable') return to('aborted', ['resume-local'], { reason: event.reason })
      return unchanged
    case 'transferring':
      if (event.type === 'transferred') return to('committing', ['send-commit'], { totalMs: event.totalMs, downtimeMs: event.downtimeMs, bytesMiB: event.bytesMiB })
      if (event.type === 'transfer-failed') return to('aborted', ['send-abort', 'resume-local'], { reason: event.reason })
      return unchanged
    case 'committing':
      if (event.type === 'committed') return to('committed', ['drop-local'])
      if (event.type === 'commit-refused') return to('aborted', ['resume-local'], { reason: event.reason })
      if (event.type === 'commit-lost') return to('in-doubt', ['wait-for-evidence'])
      if (event.type === 'fenced') return to('committed', ['drop-local'])
      return unchanged
    case 'in-doubt':
      if (event.type === 'fenced' || event.type === 'committed') return to('committed', ['drop-local'])
      if (event.type === 'doubt-expired') return to('aborted', ['resume-local'], { reason: 'the destination never confirmed the commit' })
      return unchanged
    default:
      return unchanged
  }
}
