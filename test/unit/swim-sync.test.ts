/**
 * The detector's syncs (core/swim-sync.ts), rule by rule: a sync is
 * answered with what its sender lacks (a member we hold dead that it did not
 * name, or named in an older form), and with nothing when it lacks nothing;
 * a sync tells the members held dead or suspect by a quorum, never a
 * suspicion on our word alone; it goes once a sync interval, on a probe's
 * tick, and goes round the members not alive when they are more than one
 * sync names; a member held dead gathers the accusers heard of later.
 */
import { describe, expect, it } from 'vitest'
import { type DetectorConfig, DETECTOR_PROFILES } from '../../src/core/detector-config.ts'
import { type DetectorStep, FailureDetector } from '../../src/core/failure-detector.ts'
import { PROTOCOL_VERSION } from '../../src/core/messages.ts'
import { seededRng } from '../../src/core/rng.ts'
import type { SwimMessage, SwimUpdate } from '../../src/core/swim-messages.ts'

const CONFIG: DetectorConfig = { ...DETECTOR_PROFILES.lan, probeIntervalMs: 1000, probeTimeoutMs: 200, suspicionMult: 3, gossipIntervalMs: 100, syncIntervalMs: 5_000 }
const PEERS = ['a', 'b', 'c', 'd', 'e', 'x']

function make (): FailureDetector {
  const d = new FailureDetector({ self: 'me', run: 1, config: CONFIG, rng: seededRng(1), nowMs: 0, startHealth: 0, joinGraceMs: 0 })
  for (const p of PEERS) d.add(p, 1, 0)
  return d
}

const message = (type: 'gossip' | 'sync', updates: SwimUpdate[] = []): SwimMessage => ({ v: PROTOCOL_VERSION, type, run: 1, inc: 0, updates } as SwimMessage)
const upd = (peer: string, status: SwimUpdate['status'], accusers?: string[], inc = 0): SwimUpdate => ({ peer, run: 1, inc, status, ...(accusers != null ? { accusers } : {}) })
const about = (step: DetectorStep, to: string, type: SwimMessage['type'], peer: string): SwimUpdate | undefined =>
  step.send.filter(o => o.to === to && o.message.type === type).flatMap(o => o.message.updates).find(u => u.peer === peer)

describe('syncs', () => {
  it('answers a sync with a member held dead that it did not name, or named suspect; with nothing when it lacks nothing', () => {
    const d = make()
    d.receive('b', message('gossip', [upd('x', 'dead', ['a', 'b', 'c'])]), 10)
    expect(d.status('x')).toBe('dead')
    expect(about(d.receive('d', message('sync'), 20), 'd', 'gossip', 'x')).toMatchObject({ status: 'dead', accusers: ['a', 'b', 'c'] })
    expect(about(d.receive('e', message('sync', [upd('x', 'suspect', ['a'])]), 30), 'e', 'gossip', 'x')).toMatchObject({ status: 'dead' })
    expect(d.receive('e', message('sync', [upd('x', 'dead', ['a', 'b', 'c'])]), 40).send.filter(o => o.message.type === 'gossip')).toEqual([])
    expect(d.stats.syncNews).toBe(2)
  })

  it('answers a sync naming a member dead at an older incarnation with its refutation', () => {
    const d = make()
    d.receive('x', message('gossip', [upd('x', 'alive', undefined, 3)]), 10)
    expect(about(d.receive('e', message('sync', [upd('x', 'dead', ['a', 'b', 'c'], 2)]), 20), 'e', 'gossip', 'x')).toMatchObject({ status: 'alive', inc: 3 })
    expect(d.status('x')).toBe('alive')
  })

  it('tells members dead or suspect by a quorum once a sync interval, never a suspicion on its word alone', () => {
    const d = make()
    d.receive('b', message('gossip', [upd('x', 'dead', ['a', 'b', 'c'])]), 10)
    // Our own probe of its target fails (a helper nacks): suspect here on our word alone.
    let now = 20
    let target: string | undefined
    const syncs: Array<{ at: number, updates: SwimUpdate[] }> = []
    const take = (s: DetectorStep): void => {
      for (const o of s.send) {
        if (o.message.type === 'sync') syncs.push({ at: now, updates: o.message.updates })
        if (target == null && o.message.type === 'ping' && o.to !== 'x') target = o.to
        // Every other member answers its pings.
        if (o.message.type === 'ping' && o.to !== target) take(d.receive(o.to, { v: PROTOCOL_VERSION, type: 'ack', seq: o.message.seq, run: 1, inc: 0, updates: [] }, now))
        if (o.message.type === 'ping-req') take(d.receive(o.to, { v: PROTOCOL_VERSION, type: 'nack', seq: o.message.seq, run: 1, inc: 0, updates: [] }, now))
      }
    }
    for (; now <= 12_000; now += 50) take(d.tick(now))
    expect(target).toBeDefined()
    expect(d.status(target!)).toBe('suspect')
    expect(syncs.length).toBe(2)
    expect(syncs[1].at - syncs[0].at).toBeGreaterThanOrEqual(CONFIG.syncIntervalMs)
    for (const s of syncs) {
      expect(s.updates.map(u => u.peer)).toContain('x')
      expect(s.updates.map(u => u.peer)).not.toContain(target)
    }
  })
  it('passes on the accusers of a member it holds dead heard after the death (a node that counts only those holds it alive otherwise)', () => {
    const d = make()
    d.receive('b', message('gossip', [upd('x', 'dead', ['a', 'b', 'c'])]), 10)
    expect(d.status('x')).toBe('dead')
    d.receive('e', message('gossip', [upd('x', 'dead', ['d', 'e'])]), 20)
    const told = about(d.receive('c', message('sync'), 30), 'c', 'gossip', 'x')
    expect(told?.status).toBe('dead')
    expect([...told?.accusers ?? []].sort()).toEqual(['a', 'b', 'c', 'd', 'e'])
  })

  it('goes round the members not alive when there are more than one sync names', () => {
    const many = Array.from({ length: 30 }, (_, i) => `m${String(i).padStart(2, '0')}`)
    const d = new FailureDetector({ self: 'me', run: 1, config: CONFIG, rng: seededRng(1), nowMs: 0, startHealth: 0, joinGraceMs: 0 })
    for (const p of [...PEERS, ...many]) d.add(p, 1, 0)
    for (let i = 0; i < many.length; i += 10) d.receive('b', message('gossip', many.slice(i, i + 10).map(m => upd(m, 'dead', ['a', 'b', 'c']))), 10)
    expect(many.filter(m => d.status(m) !== 'dead')).toEqual([])
    const named: string[][] = []
    for (let now = 20; now <= 8 * CONFIG.syncIntervalMs && named.length < 2; now += 50) {
      // The probes go unanswered: a peer of PEERS may be named too, after the 30.
      for (const o of d.tick(now).send) if (o.message.type === 'sync') named.push(o.message.updates.map(u => u.peer))
    }
    expect(named.length).toBe(2)
    expect(named[0].length).toBeLessThan(many.length)
    // Two syncs name all 30 between them: the second starts where the first stopped.
    expect(new Set([...named[0], ...named[1]].filter(p => many.includes(p))).size).toBe(many.length)
  })
})
