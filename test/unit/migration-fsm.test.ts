/**
 * The migration state machine, every path: each must end with the VM running
 * in exactly one place — the source resumes on every abort, drops its copy
 * only once the destination has committed (or is seen running a higher epoch).
 */
import { describe, expect, it } from 'vitest'
import { admitIncoming, type IncomingEvent, type IncomingRecord, isFinal, type MigrationAction, type MigrationEvent, type MigrationPhase, startIncoming, startMigration, stepIncoming, stepMigration } from '../../src/core/migration-fsm.ts'
import { isViable } from '../../src/core/planner.ts'
import { seededRng } from '../../src/core/rng.ts'

const base = startMigration({ id: '00000000-0000-4000-8000-000000000001', vmId: 'vm-abcdef', from: 'A', to: 'B', memMiB: 1024, epoch: 3, startedAtMs: 100 })

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
    ['destination unreachable at propose (it may have reserved: told to release)', [{ type: 'unreachable', reason: 'timeout' }], 'aborted', ['send-abort', 'resume-local'], 'source'],
    ['transfer fails (destination lost, cannot converge)', [accepted, { type: 'transfer-failed', reason: 'lost' }], 'aborted', ['start-transfer', 'send-abort', 'resume-local'], 'source'],
    ['commit refused (lease expired)', [accepted, transferred, { type: 'commit-refused', reason: 'expired' }], 'aborted', ['start-transfer', 'send-commit', 'send-abort', 'resume-local'], 'source'],
    ['commit answer lost, then the destination is seen at the higher epoch', [accepted, transferred, { type: 'commit-lost' }, { type: 'fenced' }], 'committed', ['start-transfer', 'send-commit', 'wait-for-evidence', 'drop-local'], 'destination'],
    ['commit answer lost, no evidence in time (the destination told to release)', [accepted, transferred, { type: 'commit-lost' }, { type: 'doubt-expired' }], 'aborted', ['start-transfer', 'send-commit', 'wait-for-evidence', 'send-abort', 'resume-local'], 'source'],
    ['gossip shows the commit before its answer', [accepted, transferred, { type: 'fenced' }], 'committed', ['start-transfer', 'send-commit', 'drop-local'], 'destination'],
    ['commit lost, stays in doubt', [accepted, transferred, { type: 'commit-lost' }], 'in-doubt', ['start-transfer', 'send-commit', 'wait-for-evidence'], null],
    ['commit lost, asked again: the destination adopted it', [accepted, transferred, { type: 'commit-lost' }, { type: 'committed' }], 'committed', ['start-transfer', 'send-commit', 'wait-for-evidence', 'drop-local'], 'destination'],
    ['commit lost, asked again: refused, its reservation gone (it never will)', [accepted, transferred, { type: 'commit-lost' }, { type: 'commit-refused', reason: 'no such reservation' }], 'aborted', ['start-transfer', 'send-commit', 'wait-for-evidence', 'send-abort', 'resume-local'], 'source']
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
    // The VM was paused from the end of the transfer (t = 2) until the commit (t = 3), besides the switch-over itself.
    expect(record).toMatchObject({ totalMs: 900, downtimeMs: 13, bytesMiB: 1300, epoch: 3, phase: 'committed', endedAtMs: 3 })
  })

  it('counts only the switch-over when the destination ran the VM as soon as it had it all (QEMU), before the commit', () => {
    let record = stepMigration(base, accepted, 1).record
    record = stepMigration(record, { ...transferred, runsAtDestination: true }, 2).record
    record = stepMigration(record, { type: 'committed' }, 40).record
    expect(record).toMatchObject({ downtimeMs: 12, runsAtDestination: true, phase: 'committed' })
    // Aborted after all: the copy that survives, the source's, was paused until it was resumed.
    record = stepMigration(stepMigration(base, accepted, 1).record, { ...transferred, runsAtDestination: true }, 2).record
    expect(stepMigration(record, { type: 'commit-refused', reason: 'full' }, 40).record).toMatchObject({ downtimeMs: 50, phase: 'aborted' })
  })

  it('reports as downtime the time the VM really did not run: a destination silent for 40 s costs 40 s, not the switch-over', () => {
    let record = stepMigration(base, { type: 'accepted', uri: 'tcp:10.0.0.7:49152' }, 1_000).record
    expect(record.uri).toBe('tcp:10.0.0.7:49152')
    record = stepMigration(record, { ...transferred, rounds: 3, throttled: true }, 2_000).record
    record = stepMigration(record, { type: 'commit-lost' }, 12_000).record
    const end = stepMigration(record, { type: 'doubt-expired' }, 42_000)
    expect(end.actions).toEqual(['send-abort', 'resume-local'])
    expect(end.record).toMatchObject({ phase: 'aborted', downtimeMs: 40_012, rounds: 3, throttled: true })
  })

  it('tells nothing to a destination that refused: it holds nothing', () => {
    expect(stepMigration(base, { type: 'refused', reason: 'full' }, 5).actions).toEqual(['resume-local'])
  })
})

describe('migration admission (the destination\'s one rule)', () => {
  const host = (vms: Array<{ id: string, cpu: number, memMiB: number, demand: number, spread?: string, pinned?: boolean }>, cores = 8, memMiB = 16_384, cpuOvercommit = 1) =>
    ({ peerId: 'B', capacity: { cpu: cores, memMiB }, cpuOvercommit, vms })
  const vm = { id: 'vm-incoming', cpu: 2, memMiB: 2048, demand: 1.5 }

  it.each<{ name: string, dest: ReturnType<typeof host>, incoming?: typeof vm & { spread?: string }, ctx?: { partitionId?: string, proposalPartitionId?: string }, refusal: RegExp | undefined }>([
    { name: 'an empty node takes it', dest: host([]), refusal: undefined },
    { name: 'demand up to the cores exactly is fine', dest: host([{ id: 'vm-a', cpu: 4, memMiB: 1024, demand: 6.5 }]), refusal: undefined },
    { name: 'demand past the cores overloads it', dest: host([{ id: 'vm-a', cpu: 4, memMiB: 1024, demand: 6.6 }]), refusal: /would overload this node \(demand 6\.60 of 8 cores\)/ },
    { name: 'reservations count, with the demand their runtime gives them', dest: host([{ id: 'reserved', cpu: 7, memMiB: 0, demand: 7, pinned: true }]), refusal: /would overload/ },
    { name: 'memory is never over-committed', dest: host([{ id: 'vm-a', cpu: 1, memMiB: 15_000, demand: 0 }]), refusal: /not enough free memory.*need 2048 MiB, free 1384 MiB/ },
    { name: 'allocation within cores × over-commit, rounded down', dest: host([{ id: 'vm-a', cpu: 11, memMiB: 0, demand: 0 }], 8, 16_384, 1.5), refusal: /no vCPU left to allocate.*need 2, 1 of 12 left/ },
    { name: 'a node that runs the VM already', dest: host([{ id: 'vm-incoming', cpu: 2, memMiB: 2048, demand: 1 }]), refusal: /already runs vm-incoming/ },
    { name: 'a second VM of a spread group', dest: host([{ id: 'vm-a', cpu: 1, memMiB: 1, demand: 0, spread: 'db' }]), incoming: { ...vm, spread: 'db' }, refusal: /spread group db/ },
    { name: 'a node in another rebalancing partition', dest: host([]), ctx: { partitionId: 'X#1', proposalPartitionId: 'Y#2' }, refusal: /another rebalancing partition/ },
    { name: 'a node in the proposal\'s own partition', dest: host([]), ctx: { partitionId: 'X#1', proposalPartitionId: 'X#1' }, refusal: undefined },
    { name: 'a free node takes a proposal of any partition', dest: host([]), ctx: { proposalPartitionId: 'X#1' }, refusal: undefined }
  ])('$name', ({ dest, incoming, ctx, refusal }) => {
    const got = admitIncoming(dest, incoming ?? vm, ctx)
    if (refusal == null) expect(got).toBeUndefined()
    else expect(got).toMatch(refusal)
  })

  it('agrees with the planner: a destination it admits stays viable with the VM on it', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const rng = seededRng(seed)
      const vms = Array.from({ length: Math.floor(rng.next() * 8) }, (_, i) => ({ id: `vm-${i}`, cpu: 1 + Math.floor(rng.next() * 3), memMiB: 512 * (1 + Math.floor(rng.next() * 4)), demand: Math.round(rng.next() * 200) / 100 }))
      const dest = host(vms, 8, 8192, 1 + Math.floor(rng.next() * 3))
      const incoming = { id: 'vm-in', cpu: 1 + Math.floor(rng.next() * 3), memMiB: 512 * (1 + Math.floor(rng.next() * 4)), demand: Math.round(rng.next() * 200) / 100 }
      const admitted = admitIncoming(dest, incoming) == null
      const viable = isViable({ ...dest, vms: [...dest.vms, incoming] })
      expect(admitted, `seed ${seed}`).toBe(viable)
    }
  })
})

describe('incoming migration (destination)', () => {
  const rec = startIncoming({ migrationId: 'm1', vmId: 'vm-abcdef', from: 'A', epoch: 3, expiresAtMs: 1_000 })

  it.each<{ name: string, events: IncomingEvent[], at?: number, phase: IncomingRecord['phase'], actions: string[], refusal?: RegExp }>([
    { name: 'a commit at epoch + 1 adopts the VM', events: [{ type: 'commit', epoch: 4 }], phase: 'adopted', actions: ['adopt'] },
    { name: 'a commit asked again after adoption is answered, adopted once', events: [{ type: 'commit', epoch: 4 }, { type: 'commit', epoch: 4 }], phase: 'adopted', actions: ['adopt'] },
    { name: 'a commit at another epoch is refused and changes nothing', events: [{ type: 'commit', epoch: 9 }], phase: 'reserved', actions: [], refusal: /epoch 9, expected 4/ },
    { name: 'an abort releases the room', events: [{ type: 'abort' }], phase: 'released', actions: ['release'] },
    { name: 'the lease running out releases the room', events: [{ type: 'expired' }], phase: 'released', actions: ['release'] },
    { name: 'a commit after the lease ran out is refused and releases', events: [{ type: 'commit', epoch: 4 }], at: 1_000, phase: 'released', actions: ['release'], refusal: /expired/ },
    { name: 'a commit after an abort is refused', events: [{ type: 'abort' }, { type: 'commit', epoch: 4 }], phase: 'released', actions: ['release'], refusal: /aborted/ },
    { name: 'an abort after adoption changes nothing', events: [{ type: 'commit', epoch: 4 }, { type: 'abort' }], phase: 'adopted', actions: ['adopt'] }
  ])('$name', ({ events, at, phase, actions, refusal }) => {
    let r = rec
    const all: string[] = []
    let last: string | undefined
    for (const e of events) {
      const step = stepIncoming(r, e, at ?? 10)
      r = step.record
      all.push(...step.actions)
      last = step.refusal
    }
    expect(r.phase).toBe(phase)
    expect(all).toEqual(actions)
    if (refusal != null) expect(last).toMatch(refusal)
    else expect(last).toBeUndefined()
  })
})
