/**
 * The migration state machine, every path: each must end with the VM running
 * in exactly one place — the source resumes on every abort, drops its copy
 * only once the destination has committed (or is seen running a higher epoch).
 */
import { describe, expect, it } from 'vitest'
import { isFinal, type MigrationAction, type MigrationEvent, type MigrationPhase, startMigration, stepMigration } from '../../src/core/migration-fsm.ts'

const base = startMigration({ id: 'm1', vmId: 'vm-abcdef', from: 'A', to: 'B', memMiB: 1024, epoch: 3, startedAtMs: 100 })

const accepted: MigrationEvent = { type: 'accepted' }
const transferred: MigrationEvent = { type: 'transferred', totalMs: 900, downtimeMs: 12, bytesMiB: 1300 }

function run (events: MigrationEvent[]): { phase: MigrationPhase, actions: MigrationAction[], reason?: string, endedAtMs?: number } {
  let record = base
  const actions: MigrationAction[] = []
  events.forEach((e, i) => {
    const step = stepMigration(record, e, 200 + i)
    record = step.record
    actions.push(...step.actions)
  })
  return { phase: record.phase, actions, reason: record.reason, endedAtMs: record.endedAtMs }
}

/** Where the VM runs at the end: the source unless it dropped its copy. */
function runsAt (actions: MigrationAction[]): 'source' | 'destination' {
  return actions.includes('drop-local') ? 'destination' : 'source'
}

describe('migration state machine', () => {
  it.each<[string, MigrationEvent[], MigrationPhase, MigrationAction[], 'source' | 'destination' | null]>([
    ['the happy path', [accepted, transferred, { type: 'committed' }], 'committed', ['start-transfer', 'send-commit', 'drop-local'], 'destination'],
    ['refused by the destination', [{ type: 'refused', reason: 'no room' }], 'aborted', ['resume-local'], 'source'],
    ['destination unreachable at propose', [{ type: 'unreachable', reason: 'timeout' }], 'aborted', ['resume-local'], 'source'],
    ['transfer fails (destination lost, cannot converge)', [accepted, { type: 'transfer-failed', reason: 'lost' }], 'aborted', ['start-transfer', 'send-abort', 'resume-local'], 'source'],
    ['commit refused (lease expired)', [accepted, transferred, { type: 'commit-refused', reason: 'expired' }], 'aborted', ['start-transfer', 'send-commit', 'resume-local'], 'source'],
    ['commit answer lost, then the destination is seen at the higher epoch', [accepted, transferred, { type: 'commit-lost' }, { type: 'fenced' }], 'committed', ['start-transfer', 'send-commit', 'wait-for-evidence', 'drop-local'], 'destination'],
    ['commit answer lost, no evidence in time', [accepted, transferred, { type: 'commit-lost' }, { type: 'doubt-expired' }], 'aborted', ['start-transfer', 'send-commit', 'wait-for-evidence', 'resume-local'], 'source'],
    ['gossip shows the commit before its answer', [accepted, transferred, { type: 'fenced' }], 'committed', ['start-transfer', 'send-commit', 'drop-local'], 'destination'],
    ['commit lost, stays in doubt', [accepted, transferred, { type: 'commit-lost' }], 'in-doubt', ['start-transfer', 'send-commit', 'wait-for-evidence'], null]
  ])('%s', (_, events, phase, actions, where) => {
    const r = run(events)
    expect(r.phase).toBe(phase)
    expect(r.actions).toEqual(actions)
    if (where != null) expect(runsAt(r.actions)).toBe(where)
    if (isFinal(phase)) expect(r.endedAtMs).toBe(200 + events.length - 1)
    else expect(r.endedAtMs).toBeUndefined()
    if (phase === 'aborted') expect(r.reason).toBeTruthy()
    // Never both: a VM is resumed at the source or dropped there, not both.
    expect(r.actions.includes('drop-local') && r.actions.includes('resume-local')).toBe(false)
  })

  it.each<[MigrationPhase, MigrationEvent]>([
    ['proposing', transferred],
    ['proposing', { type: 'committed' }],
    ['transferring', accepted],
    ['transferring', { type: 'committed' }],
    ['committing', accepted],
    ['committed', { type: 'transfer-failed', reason: 'late' }],
    ['aborted', { type: 'committed' }],
    ['aborted', { type: 'fenced' }],
    ['in-doubt', transferred]
  ])('ignores an event that does not fit: %s + %j', (phase, event) => {
    const record = { ...base, phase }
    const step = stepMigration(record, event, 999)
    expect(step.record).toBe(record)
    expect(step.actions).toEqual([])
  })

  it('keeps the transfer figures on the record', () => {
    let record = stepMigration(base, accepted, 1).record
    record = stepMigration(record, transferred, 2).record
    record = stepMigration(record, { type: 'committed' }, 3).record
    expect(record).toMatchObject({ totalMs: 900, downtimeMs: 12, bytesMiB: 1300, epoch: 3, phase: 'committed', endedAtMs: 3 })
  })
})
