/**
 * The migration service of one agent (agent/migrations.ts), both ends, with
 * in-memory stand-ins for the local node, the driver and the peer it talks
 * to: what it sends, what it does to the VM, how each migration ends.
 */
import { describe, expect, it } from 'vitest'
import { Migrations } from '../../src/agent/migrations.ts'
import type { MigrateRequest, MigrateResponse, MigrationRecord } from '../../src/core/migrate-messages.ts'
import { DEFAULT_MIGRATION } from '../../src/core/migration-fsm.ts'
import type { VmSpec, VmState } from '../../src/core/messages.ts'
import type { HostLoad } from '../../src/core/rebalance-messages.ts'

const spec: VmSpec = { id: 'vm-000000000001', name: 'db', cpu: 2, memMiB: 1024, createdAtMs: 0 }

interface FakeVm { spec: VmSpec, state: VmState, epoch: number }

function harness (opts: { answer?: (req: MigrateRequest) => Promise<MigrateResponse>, transfer?: (signal: AbortSignal) => Promise<{ totalMs: number, downtimeMs: number, bytesMiB: number }>, load?: HostLoad, partition?: string, doubtMs?: number, clock?: { ms: number } } = {}) {
  const vms = new Map<string, FakeVm>([[spec.id, { spec, state: 'running', epoch: 2 }]])
  const sent: MigrateRequest[] = []
  const log: string[] = []
  const released: string[] = []
  const adopted: Array<{ id: string, epoch: number }> = []
  const local = {
    get: (id: string) => vms.get(id),
    setState: (id: string, state: VmState) => { const v = vms.get(id); if (v != null) v.state = state; log.push(`state ${state}`) },
    deleteVm: async (id: string) => { log.push('deleted'); return vms.delete(id) },
    reserveIncoming: (leaseId: string) => { log.push(`reserved ${leaseId.slice(0, 4)}`); return { ok: true as const } },
    adoptIncoming: async (_leaseId: string, s: VmSpec, epoch: number) => { adopted.push({ id: s.id, epoch }); return { ok: true as const, state: 'running' as const } },
    release: (leaseId: string) => { released.push(leaseId) }
  }
  const resumed: string[] = []
  const prepared: string[] = []
  const deleted: string[] = []
  const driver = {
    demand: () => 0.5,
    prepareIncoming: async (s: VmSpec) => { prepared.push(s.id); return { uri: `sim:${s.id}` } },
    resume: async (id: string) => { resumed.push(id) },
    delete: async (id: string) => { deleted.push(id) },
    transferOut: async (_id: string, o: { signal: AbortSignal }) => await (opts.transfer ?? (async () => ({ totalMs: 800, downtimeMs: 9, bytesMiB: 1100 })))(o.signal)
  }
  const ended: MigrationRecord[] = []
  const m = new Migrations({
    self: 'A',
    local: local as any,
    driver: driver as any,
    config: { ...DEFAULT_MIGRATION, doubtMs: opts.doubtMs ?? 50 },
    send: async (_to, req) => {
      sent.push(req)
      return await (opts.answer ?? (async () => ({ v: 1, ok: true })))(req)
    },
    partition: () => opts.partition,
    load: () => opts.load ?? { peerId: 'A', capacity: { cpu: 8, memMiB: 16_384 }, cpuOvercommit: 1, vms: [] },
    onStarted: () => {},
    onEnded: (r) => { ended.push(r) },
    now: () => opts.clock?.ms ?? 1_000
  })
  return { m, vms, sent, log, released, adopted, ended, resumed, prepared, deleted }
}

const MIGRATION_ID = '00000000-0000-4000-8000-0000000000aa'
/** A VM arriving from another node (the harness's own VM is `spec`). */
const incoming: VmSpec = { ...spec, id: 'vm-000000000002', name: 'web' }
const propose = (over: Partial<Extract<MigrateRequest, { op: 'propose' }>> = {}): MigrateRequest =>
  ({ v: 1, op: 'propose', migrationId: MIGRATION_ID, vm: incoming, epoch: 2, demand: 1, ttlMs: 60_000, ...over })

describe('Migrations as source', () => {
  it('proposes, transfers, commits at epoch + 1 and drops its copy', async () => {
    const h = harness()
    const r = await h.m.migrate(spec.id, 'B')
    expect(r).toMatchObject({ phase: 'committed', from: 'A', to: 'B', epoch: 2, totalMs: 800, downtimeMs: 9, bytesMiB: 1100 })
    expect(h.sent.map(s => s.op)).toEqual(['propose', 'commit'])
    expect(h.sent[1]).toMatchObject({ op: 'commit', epoch: 3 })
    expect(h.log).toEqual(['state migrating', 'deleted'])
    expect(h.ended).toHaveLength(1)
  })

  it('resumes its copy when the destination refuses', async () => {
    const h = harness({ answer: async () => ({ v: 1, ok: false, reason: 'no room' }) })
    const r = await h.m.migrate(spec.id, 'B')
    expect(r).toMatchObject({ phase: 'aborted', reason: 'no room' })
    expect(h.log).toEqual(['state migrating', 'state running'])
    expect(h.vms.get(spec.id)?.state).toBe('running')
  })

  it('aborts the transfer when the destination is lost, tells it, and resumes', async () => {
    const h = harness({ transfer: async (signal) => await new Promise((_resolve, reject) => { signal.addEventListener('abort', () => { reject(signal.reason) }) }) })
    const done = h.m.migrate(spec.id, 'B')
    await new Promise(resolve => setImmediate(resolve))
    h.m.peerLost('B')
    const r = await done
    expect(r).toMatchObject({ phase: 'aborted', reason: expect.stringMatching(/destination B was lost/) })
    expect(h.sent.map(s => s.op)).toEqual(['propose', 'abort'])
    expect(h.vms.get(spec.id)?.state).toBe('running')
  })

  it('waits in doubt after a lost commit answer, then resumes the paused VM and tells the destination to release', async () => {
    const h = harness({ answer: async (req) => { if (req.op === 'commit') throw new Error('stream reset'); return { v: 1, ok: true } } })
    const r = await h.m.migrate(spec.id, 'B')
    expect(r).toMatchObject({ phase: 'aborted', reason: 'the destination never confirmed the commit' })
    await new Promise(resolve => setImmediate(resolve))
    expect(h.resumed).toEqual([spec.id])
    expect(h.vms.get(spec.id)?.state).toBe('running')
    expect(h.sent.map(s => s.op)).toEqual(['propose', 'commit', 'abort'])
  })

  it('asks the destination again to release until it answers, when it was unreachable', async () => {
    let aborts = 0
    const h = harness({ answer: async (req) => {
      if (req.op === 'propose') throw new Error('stream reset')
      if (req.op === 'abort' && ++aborts < 2) throw new Error('no answer')
      return { v: 1, ok: true }
    } })
    const r = await h.m.migrate(spec.id, 'B')
    expect(r).toMatchObject({ phase: 'aborted' })
    const deadline = Date.now() + 5_000
    while (aborts < 2 && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 50))
    expect(h.sent.map(s => s.op)).toEqual(['propose', 'abort', 'abort'])
    // Nothing was transferred: the VM never paused, nothing to resume.
    expect(h.resumed).toEqual([])
  })

  it('drops its copy when gossip shows the destination running the VM while in doubt', async () => {
    const h = harness({ answer: async (req) => { if (req.op === 'commit') throw new Error('stream reset'); return { v: 1, ok: true } }, doubtMs: 60_000 })
    const done = h.m.migrate(spec.id, 'B')
    await new Promise(resolve => setTimeout(resolve, 20))
    expect(h.m.list()[0].phase).toBe('in-doubt')
    h.m.fenced(spec.id)
    expect(await done).toMatchObject({ phase: 'committed' })
    expect(h.log).toContain('deleted')
  })

  it('in doubt, asks the commit again: adopted there, it is committed without waiting out the doubt', async () => {
    let commits = 0
    const h = harness({ answer: async (req) => { if (req.op === 'commit' && ++commits === 1) throw new Error('stream reset'); return { v: 1, ok: true } }, doubtMs: 60_000 })
    const r = await h.m.migrate(spec.id, 'B')
    expect(r).toMatchObject({ phase: 'committed' })
    expect(commits).toBe(2)
    expect(h.log).toContain('deleted')
  })

  it('in doubt, asks the commit again: refused (the reservation is gone), it resumes its copy at once', async () => {
    let commits = 0
    const h = harness({ answer: async (req) => {
      if (req.op === 'commit' && ++commits === 1) throw new Error('stream reset')
      return req.op === 'commit' ? { v: 1, ok: false, reason: 'no such reservation' } : { v: 1, ok: true }
    }, doubtMs: 60_000 })
    const r = await h.m.migrate(spec.id, 'B')
    expect(r).toMatchObject({ phase: 'aborted', reason: 'the destination refused the commit asked again: no such reservation' })
    expect(h.resumed).toEqual([spec.id])
    expect(h.vms.get(spec.id)?.state).toBe('running')
  })

  it('refuses to start a second migration of a VM already migrating', async () => {
    const h = harness({ transfer: async (signal) => await new Promise((_resolve, reject) => { signal.addEventListener('abort', () => { reject(signal.reason) }) }) })
    const first = h.m.migrate(spec.id, 'B')
    await expect(h.m.migrate(spec.id, 'C')).rejects.toMatchObject({ name: 'MigrationBusyError' })
    h.m.stop()
    expect(await first).toMatchObject({ phase: 'aborted' })
  })
})

describe('Migrations as destination', () => {
  it('admits and reserves a proposal, readies the hypervisor, adopts the VM on commit at epoch + 1', async () => {
    const h = harness()
    expect(await h.m.handle(propose(), 'A')).toEqual({ v: 1, ok: true, uri: `sim:${incoming.id}` })
    expect(h.prepared).toEqual([incoming.id])
    expect(h.log).toEqual(['reserved 0000'])
    expect(await h.m.handle({ v: 1, op: 'commit', migrationId: MIGRATION_ID, vm: incoming, epoch: 3 }, 'A')).toEqual({ v: 1, ok: true })
    expect(h.adopted).toEqual([{ id: incoming.id, epoch: 3 }])
  })

  it('refuses a proposal that would overload it, reserving nothing', async () => {
    const h = harness({ load: { peerId: 'B', capacity: { cpu: 4, memMiB: 16_384 }, cpuOvercommit: 2, vms: [{ id: 'vm-x', cpu: 4, memMiB: 1024, demand: 3.5 }] } })
    const res = await h.m.handle(propose(), 'A')
    expect(res).toMatchObject({ ok: false, reason: expect.stringMatching(/would overload/) })
    expect(h.log).toEqual([])
  })

  it('refuses a proposal from another rebalancing partition', async () => {
    const h = harness({ partition: 'X#1' })
    expect(await h.m.handle(propose({ partitionId: 'Y#1' }), 'A')).toMatchObject({ ok: false, reason: expect.stringMatching(/another rebalancing partition/) })
  })

  it('releases the room on abort, and then refuses the commit', async () => {
    const h = harness()
    await h.m.handle(propose(), 'A')
    const id = MIGRATION_ID
    expect(await h.m.handle({ v: 1, op: 'abort', migrationId: id }, 'A')).toEqual({ v: 1, ok: true })
    expect(h.released).toEqual([id])
    // The hypervisor stops waiting for the VM.
    expect(h.deleted).toEqual([incoming.id])
  })

  it('lets go of an incoming migration whose source vanished when its lease runs out, on its own tick', async () => {
    const clock = { ms: 1_000 }
    const h = harness({ clock })
    await h.m.handle(propose({ ttlMs: 60_000 }), 'A')
    clock.ms += 59_000
    h.m.tick()
    expect(h.deleted).toEqual([])
    clock.ms += 2_000
    h.m.tick()
    // No other request came: the tick alone releases the room and ends the QEMU waiting with -incoming.
    expect(h.released).toEqual([MIGRATION_ID])
    expect(h.deleted).toEqual([incoming.id])
  })
})
