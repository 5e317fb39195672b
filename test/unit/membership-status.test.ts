/**
 * Membership (agent/membership.ts) between the failure detector and the
 * rest of the agent, with in-memory stand-ins: a new peer's state makes the
 * detector watch it and later states are hints to it; the detector's verdicts
 * become the view's statuses, `peer.*` events (`peer.refuted` for a peer back
 * in the same run) and `onPeerLost`; a closed connection is a hint and a lost
 * peer, never a status; a dead peer forgotten by the view is dropped by the
 * detector too.
 */
import { describe, expect, it } from 'vitest'
import { EventLog } from '../../src/agent/event-log.ts'
import { Membership } from '../../src/agent/membership.ts'
import { createMetrics } from '../../src/agent/metrics.ts'
import { ManualClock } from '../../src/core/clock.ts'
import type { StatusChange } from '../../src/core/failure-detector.ts'
import { VmIndex } from '../../src/core/vm-index.ts'
import { makeNode, makeVm, peerId } from './fixtures.ts'

const SELF = peerId('Se1f')
const B = peerId('B')

function harness () {
  const clock = new ManualClock(1_000)
  const events = new EventLog({ clock })
  const calls: string[] = []
  const lost: string[] = []
  const listeners = new Map<string, (evt: CustomEvent<{ toString: () => string }>) => void>()
  const detection = {
    add: (p: string, run: number) => { calls.push(`add ${p === B ? 'B' : p} ${run}`) },
    heard: (p: string, run: number) => { calls.push(`heard ${p === B ? 'B' : p} ${run}`) },
    hint: (p: string, kind: string) => { calls.push(`hint ${p === B ? 'B' : p} ${kind}`) },
    remove: (p: string) => { calls.push(`remove ${p === B ? 'B' : p}`) }
  }
  const libp2p = {
    addEventListener: (type: string, f: any) => { listeners.set(type, f) },
    removeEventListener: (type: string) => { listeners.delete(type) },
    getConnections: () => []
  }
  const log = { debug: () => {}, info: () => {}, warn: () => {} }
  const m = new Membership({ self: SELF, clock, events, metrics: createMetrics(), log: log as any, libp2p: libp2p as any, gossip: {} as any, local: { get: () => undefined, summaries: () => [] } as any, vms: new VmIndex(), detection: detection as any }, {
    view: { forgetAfterMs: 60_000 },
    ownState: () => makeNode({ tag: 'Se1f' }),
    onVmsSeen: () => {},
    onPeerLost: (p) => { lost.push(p === B ? 'B' : p) },
    onHeard: () => {},
    isPlacing: () => false
  })
  m.start()
  const types = (): string[] => events.since(0).events.map(e => `${e.type}${(e.data as { from?: string }).from != null ? ` from ${(e.data as { from: string }).from}` : ''}${e.type === 'peer.refuted' ? ` fp=${String((e.data as { falsePositive: boolean }).falsePositive)}` : ''}`)
  const change = (from: StatusChange['from'], to: StatusChange['to'], extra: Partial<StatusChange> = {}): StatusChange => ({ peer: B, from, to, run: 7, inc: 0, ...extra })
  const fire = (type: string): void => { listeners.get(type)!(new CustomEvent(type, { detail: { toString: () => B } })) }
  return { m, clock, calls, lost, types, change, fire }
}

describe('Membership and the failure detector', () => {
  it('a new peer is watched from its first state on; its later states are hints; a stale copy is nothing', () => {
    const h = harness()
    h.m.onState(makeNode({ tag: 'B', incarnation: 7, seq: 0 }))
    h.m.onState(makeNode({ tag: 'B', incarnation: 7, seq: 1 }))
    h.m.onState(makeNode({ tag: 'B', incarnation: 7, seq: 1 }))
    expect(h.calls).toEqual(['add B 7', 'heard B 7'])
    expect(h.m.view.get(B)?.status).toBe('alive')
  })

  it.each([
    { name: 'suspect, then dead', changes: [['alive', 'suspect'], ['suspect', 'dead']], status: 'dead', events: ['peer.suspect from alive', 'peer.dead from suspect'], lost: ['B', 'B'] },
    { name: 'suspect, then refuted', changes: [['alive', 'suspect'], ['suspect', 'alive', { refuted: true }]], status: 'alive', events: ['peer.suspect from alive', 'peer.alive from suspect', 'peer.refuted from suspect fp=false'], lost: ['B'] },
    { name: 'dead, then back in the same run: a false positive', changes: [['alive', 'dead'], ['dead', 'alive', { refuted: true }]], status: 'alive', events: ['peer.dead from alive', 'peer.alive from dead', 'peer.refuted from dead fp=true'], lost: ['B'] },
    { name: 'dead, then restarted', changes: [['alive', 'dead'], ['dead', 'alive', { restarted: true }]], status: 'alive', events: ['peer.dead from alive', 'peer.alive from dead'], lost: ['B'] }
  ] as Array<{ name: string, changes: Array<[StatusChange['from'], StatusChange['to'], Partial<StatusChange>?]>, status: string, events: string[], lost: string[] }>)('the detector says $name: the view, the events, the lost peers follow', ({ changes, status, events, lost }) => {
    const h = harness()
    h.m.onState(makeNode({ tag: 'B', incarnation: 7 }))
    for (const [from, to, extra] of changes) h.m.applyStatus([h.change(from, to, extra)])
    expect(h.m.view.get(B)?.status).toBe(status)
    expect(h.types().filter(t => t !== 'peer.joined' && t !== 'peer.state')).toEqual(events)
    expect(h.lost).toEqual(lost)
  })

  it('knows the latest copy of a VM on a peer declared dead, where a live peer still gossips an earlier one (a delete must not take that one for the VM)', () => {
    const h = harness()
    const C = peerId('C')
    const vm = makeVm({ epoch: 0 })
    h.m.onState(makeNode({ tag: 'B', incarnation: 7, vms: [{ ...vm, epoch: 1 }] }))
    h.m.onState(makeNode({ tag: 'C', incarnation: 3, vms: [vm] }))
    expect(h.m.getVm(vm.id)).toMatchObject({ node: B, epoch: 1 })
    h.m.applyStatus([h.change('alive', 'dead')])
    // The live view names C's stale copy; the latest copy heard of is still B's.
    expect(h.m.getVm(vm.id)).toMatchObject({ node: C, epoch: 0 })
    expect(h.m.latestCopy(vm.id)).toMatchObject({ node: B, epoch: 1 })
    expect(h.m.latestCopy('vm-000000000000')).toBeUndefined()
  })

  it('a closed connection is a hint and a lost peer, not a status; an opened one is a hint', () => {
    const h = harness()
    h.m.onState(makeNode({ tag: 'B', incarnation: 7 }))
    h.fire('peer:disconnect')
    h.fire('peer:connect')
    expect(h.calls.slice(1)).toEqual(['hint B disconnected', 'hint B connected'])
    expect(h.lost).toEqual(['B'])
    expect(h.m.view.get(B)?.status).toBe('alive')
  })

  it('a peer dead for forgetAfterMs is forgotten by the view and dropped by the detector', () => {
    const h = harness()
    h.m.onState(makeNode({ tag: 'B', incarnation: 7 }))
    h.m.applyStatus([h.change('alive', 'dead')])
    h.clock.advance(59_999)
    h.m.tick()
    expect(h.calls).not.toContain('remove B')
    h.clock.advance(1)
    h.m.tick()
    expect(h.calls).toContain('remove B')
    expect(h.m.view.get(B)).toBeUndefined()
  })
})
