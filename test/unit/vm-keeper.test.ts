/**
 * The VM keeper (agent/vm-keeper.ts) with in-memory stand-ins for the local
 * node and the driver: what it does at start with each stored VM (adopted,
 * started again, lost, left alone when its hypervisor cannot be asked), and
 * with a VM whose process dies later.
 */
import pino from 'pino'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { EventLog } from '../../src/agent/event-log.ts'
import type { AgentEvent } from '../../src/agent/events.ts'
import { createMetrics } from '../../src/agent/metrics.ts'
import { VmKeeper } from '../../src/agent/vm-keeper.ts'
import { ManualClock } from '../../src/core/clock.ts'
import type { VmSpec, VmState } from '../../src/core/messages.ts'
import type { VmStateChange } from '../../src/hypervisor/driver.ts'

const spec = (n: number, restartPolicy?: 'always' | 'never'): VmSpec => ({ id: `vm-00000000000${n}`, name: `v${n}`, cpu: 1, memMiB: 128, createdAtMs: 0, ...(restartPolicy != null ? { restartPolicy } : {}) })

function harness (opts: { adopt?: Record<string, 'adopted' | 'gone' | 'throw'>, name?: string, createFails?: number } = {}) {
  const clock = new ManualClock(1_000)
  const recs = new Map<string, { spec: VmSpec, state: VmState }>()
  const calls: string[] = []
  const local = {
    get: (id: string) => recs.get(id),
    records: () => [...recs.values()],
    setState: (id: string, state: VmState) => { const r = recs.get(id); if (r != null) r.state = state },
    deleteVm: async (id: string) => { calls.push(`delete ${id}`); return recs.delete(id) },
    isDeleting: (id: string) => deleting.has(id)
  }
  const deleting = new Set<string>()
  const listeners: Array<(c: VmStateChange) => void> = []
  const driverState = new Map<string, VmState>()
  let failures = opts.createFails ?? 0
  const driver = {
    name: opts.name ?? 'qemu',
    adopt: async (s: VmSpec) => {
      const a = opts.adopt?.[s.id] ?? 'adopted'
      if (a === 'throw') throw new Error('its QMP socket does not answer')
      if (a === 'adopted') driverState.set(s.id, 'running')
      return a
    },
    create: async (s: VmSpec) => {
      calls.push(`create ${s.id}`)
      if (failures-- > 0) throw new Error('no such base image')
      driverState.set(s.id, 'creating')
    },
    sweep: async (keep: Iterable<string>) => { calls.push(`sweep ${[...keep].sort().join(',')}`); return ['vm-orphan'] },
    state: (id: string) => driverState.get(id),
    onStateChange: (l: (c: VmStateChange) => void) => { listeners.push(l) }
  }
  const events = new EventLog({ clock })
  const seen: AgentEvent[] = []
  events.onAny(e => { seen.push(e) })
  const keeper = new VmKeeper({ self: 'A', clock, log: pino({ level: 'silent' }), events, metrics: createMetrics(), local: local as any, driver: driver as any })
  const add = (s: VmSpec): void => { recs.set(s.id, { spec: s, state: 'creating' }) }
  const die = (id: string, reason = 'killed'): void => {
    driverState.set(id, 'stopped')
    const r = recs.get(id)
    if (r != null) r.state = 'stopped'
    for (const l of listeners) l({ id, state: 'stopped', reason })
  }
  return { keeper, recs, calls, seen, add, die, clock, driverState, deleting }
}

const flush = async (): Promise<void> => { for (let i = 0; i < 5; i++) await new Promise(resolve => setImmediate(resolve)) }

describe('VmKeeper at start', () => {
  it('adopts what runs, starts again what is gone, forgets what may not be restarted, leaves alone what cannot be asked, then sweeps', async () => {
    const h = harness({ adopt: { [spec(1).id]: 'adopted', [spec(2).id]: 'gone', [spec(3).id]: 'gone', [spec(4).id]: 'throw' } })
    for (const s of [spec(1), spec(2), spec(3, 'never'), spec(4)]) h.add(s)
    const report = await h.keeper.restore()
    expect(report).toEqual({ adopted: 1, restarted: 1, lost: 1, swept: 1, failed: 1 })
    // What is gone waits for the agent's check with its peers (restored-check.ts): not started, not forgotten, even on a tick.
    expect(h.recs.get(spec(2).id)?.state).toBe('stopped')
    h.driverState.set(spec(2).id, 'stopped')
    h.keeper.tick()
    await flush()
    expect(h.calls).toEqual([`sweep ${[spec(1).id, spec(2).id, spec(3).id, spec(4).id].join(',')}`])
    await h.keeper.resumeDeferred()
    expect(h.recs.get(spec(1).id)?.state).toBe('running')
    expect(h.recs.get(spec(2).id)?.state).toBe('creating')
    expect(h.recs.has(spec(3).id)).toBe(false)
    expect(h.recs.get(spec(4).id)?.state).toBe('stopped')
    expect(h.calls.slice(1)).toEqual([`create ${spec(2).id}`, `delete ${spec(3).id}`])
    expect(h.seen.filter(e => e.type === 'vm.stopped').map(e => [(e.data as any).id, (e.data as any).action])).toEqual([[spec(2).id, 'restart'], [spec(3).id, 'lost']])
    expect(h.seen.filter(e => e.type === 'vm.lost').map(e => (e.data as any).id)).toEqual([spec(3).id])
  })

  it('a VM gone at start that the check found running elsewhere (fenced: no longer ours) is not started', async () => {
    const h = harness({ adopt: { [spec(1).id]: 'gone', [spec(2).id]: 'gone' } })
    h.add(spec(1))
    h.add(spec(2))
    await h.keeper.restore()
    h.recs.delete(spec(1).id)
    await h.keeper.resumeDeferred()
    expect(h.calls.filter(c => c.startsWith('create'))).toEqual([`create ${spec(2).id}`])
    // Once only.
    await h.keeper.resumeDeferred()
    expect(h.calls.filter(c => c.startsWith('create'))).toHaveLength(1)
  })

  it('the sim driver\'s VMs start again silently, `never` ones too: they end with their agent by design', async () => {
    const h = harness({ name: 'sim', adopt: { [spec(1).id]: 'gone', [spec(2).id]: 'gone' } })
    h.add(spec(1))
    h.add(spec(2, 'never'))
    expect(await h.keeper.restore()).toMatchObject({ restarted: 2, lost: 0 })
    expect(h.seen.filter(e => e.type === 'vm.stopped' || e.type === 'vm.lost')).toEqual([])
    expect(h.calls.slice(0, 2)).toEqual([`create ${spec(1).id}`, `create ${spec(2).id}`])
  })
})

describe('VmKeeper while the agent runs', () => {
  // The restart pauses are timers: moved by hand, no test waits for them.
  beforeEach(() => { vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] }) })
  afterEach(() => { vi.useRealTimers() })

  it('starts a VM that died again at once, then after growing pauses while it keeps dying', async () => {
    const h = harness()
    h.add(spec(1))
    await h.keeper.restore()
    h.die(spec(1).id)
    await flush()
    expect(h.calls.filter(c => c.startsWith('create'))).toHaveLength(1)
    const first = h.seen.filter(e => e.type === 'vm.stopped').map(e => (e.data as any).restartInMs)
    expect(first).toEqual([0])
    // Dead again right away: the second restart waits 1 s (a timer), and nothing starts twice meanwhile.
    h.die(spec(1).id)
    h.keeper.tick()
    await flush()
    expect(h.seen.filter(e => e.type === 'vm.stopped').map(e => (e.data as any).restartInMs)).toEqual([0, 1_000])
    expect(h.calls.filter(c => c.startsWith('create'))).toHaveLength(1)
    vi.advanceTimersByTime(999)
    await flush()
    expect(h.calls.filter(c => c.startsWith('create'))).toHaveLength(1)
    vi.advanceTimersByTime(1)
    await flush()
    expect(h.calls.filter(c => c.startsWith('create'))).toHaveLength(2)
    h.keeper.stop()
  })

  it('a restart that fails counts as a death: tried again after a pause', async () => {
    const h = harness({ createFails: 1 })
    h.add(spec(1))
    await h.keeper.restore()
    h.die(spec(1).id)
    await flush()
    const stopped = h.seen.filter(e => e.type === 'vm.stopped').map(e => e.data as any)
    expect(stopped.map(d => d.restartInMs)).toEqual([0, 1_000])
    expect(stopped[1].reason).toMatch(/could not be started again: no such base image/)
    h.keeper.stop()
  })

  it('the tick catches a VM the hypervisor says is stopped when no event came (it died during a migration that was aborted)', async () => {
    const h = harness()
    h.add(spec(1))
    await h.keeper.restore()
    h.driverState.set(spec(1).id, 'stopped')
    h.keeper.tick()
    await flush()
    expect(h.seen.filter(e => e.type === 'vm.stopped').map(e => (e.data as any).reason)).toEqual(['its process is gone'])
    expect(h.calls.filter(c => c.startsWith('create'))).toHaveLength(1)
  })

  it('leaves alone a VM that is migrating, and a VM deleted meanwhile is not started again', async () => {
    const h = harness()
    h.add(spec(1))
    h.add(spec(2))
    await h.keeper.restore()
    h.recs.get(spec(1).id)!.state = 'migrating'
    h.driverState.set(spec(1).id, 'stopped')
    h.keeper.tick()
    h.die(spec(2).id)
    h.die(spec(2).id)
    h.recs.delete(spec(2).id)
    vi.advanceTimersByTime(60_000)
    await flush()
    expect(h.calls.filter(c => c.startsWith('create'))).toEqual([`create ${spec(2).id}`])
    h.keeper.stop()
  })

  it('does not start again a VM on its way out (deleted, or fenced: it runs elsewhere) whose process stopped', async () => {
    const h = harness()
    h.add(spec(1))
    await h.keeper.restore()
    h.deleting.add(spec(1).id)
    h.die(spec(1).id)
    h.keeper.tick()
    vi.advanceTimersByTime(60_000)
    await flush()
    expect(h.calls.filter(c => c.startsWith('create'))).toEqual([])
    expect(h.seen.filter(e => e.type === 'vm.stopped')).toEqual([])
    h.keeper.stop()
  })
})
