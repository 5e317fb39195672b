/**
 * The failure detector's pure parts, table-driven: the suspicion timeout
 * formulas (memberlist's own cases), the retransmit limit, local health,
 * the broadcast queue, the probe order.
 */
import { describe, expect, it } from 'vitest'
import { Awareness } from '../../src/core/awareness.ts'
import { BroadcastQueue, retransmitLimit } from '../../src/core/broadcast-queue.ts'
import { DETECTOR_PROFILES, validateDetectorConfig } from '../../src/core/detector-config.ts'
import { MemberDirectory } from '../../src/core/member-directory.ts'
import { DirectoryOrder, ShuffledOrder } from '../../src/core/probe-order.ts'
import { seededRng } from '../../src/core/rng.ts'
import { remainingSuspicionMs, Suspicion, suspicionTimeoutMs } from '../../src/core/suspicion.ts'
import type { SwimUpdate } from '../../src/core/swim-messages.ts'

describe('suspicion timeouts', () => {
  it.each([
    { mult: 4, n: 1, intervalMs: 1000, want: 4000 },
    { mult: 4, n: 10, intervalMs: 1000, want: 4000 },
    { mult: 4, n: 100, intervalMs: 1000, want: 8000 },
    { mult: 4, n: 1000, intervalMs: 1000, want: 12_000 },
    // The local profile at 50 agents: about a second.
    { mult: 3, n: 50, intervalMs: 200, want: 1019 },
    { mult: 5, n: 50, intervalMs: 1000, want: 8494 }
  ])('minimum: $mult × max(1, log10($n)) × $intervalMs ms = $want ms', ({ mult, n, intervalMs, want }) => {
    expect(suspicionTimeoutMs(mult, n, intervalMs)).toBe(want)
  })

  // memberlist's TestSuspicion_remainingSuspicionTime, in milliseconds.
  it.each([
    { n: 0, k: 3, elapsed: 0, want: 30_000 },
    { n: 1, k: 3, elapsed: 2_000, want: 14_000 },
    { n: 2, k: 3, elapsed: 3_000, want: 4_810 },
    { n: 3, k: 3, elapsed: 4_000, want: -2_000 },
    { n: 4, k: 3, elapsed: 5_000, want: -3_000 },
    { n: 5, k: 3, elapsed: 10_000, want: -8_000 },
    // No confirmations expected (a cluster too small for them): the minimum at once.
    { n: 0, k: 0, elapsed: 500, want: 1_500 }
  ])('remaining with $n of $k confirmations after $elapsed ms: $want ms', ({ n, k, elapsed, want }) => {
    expect(remainingSuspicionMs(n, k, elapsed, 2_000, 30_000)).toBe(want)
  })

  it('a suspicion counts only the accusers it is told count, and moves its start when this node could not run', () => {
    const s = new Suspicion({ startMs: 1_000, k: 2, minMs: 1_000, maxMs: 6_000 })
    expect(s.add('a', 1_000)).toBe(true)
    expect(s.add('a', 1_100)).toBe(false)
    s.add('b', 1_200)
    s.add('c', 1_300)
    const all = (): boolean => true
    const notC = (x: string): boolean => x !== 'c'
    expect(s.deadlineMs(all)).toBe(2_000)
    // Two accusers: one confirmation of two, log2/log3 of the way from max to min.
    expect(s.deadlineMs(notC)).toBe(1_000 + Math.floor(6_000 - Math.log(2) / Math.log(3) * 5_000))
    expect(s.list(notC, 8)).toEqual(['a', 'b'])
    s.delay(5_000)
    expect(s.deadlineMs(all)).toBe(7_000)
  })
})

describe('retransmitLimit', () => {
  it.each([
    { mult: 4, n: 1, want: 4 },
    { mult: 4, n: 9, want: 4 },
    { mult: 4, n: 10, want: 8 },
    { mult: 4, n: 50, want: 8 },
    { mult: 4, n: 100, want: 12 },
    { mult: 2, n: 10_000, want: 10 }
  ])('λ $mult, $n members: $want sends', ({ mult, n, want }) => {
    expect(retransmitLimit(mult, n)).toBe(want)
  })
})

describe('Awareness', () => {
  it.each([
    { deltas: [], score: 0, scaled: 100 },
    { deltas: [1], score: 1, scaled: 200 },
    { deltas: [3, -1], score: 2, scaled: 300 },
    { deltas: [-5], score: 0, scaled: 100 },
    { deltas: [20], score: 7, scaled: 800 },
    { deltas: [20, -2], score: 5, scaled: 600 }
  ])('deltas $deltas → score $score, 100 ms stretched to $scaled ms', ({ deltas, score, scaled }) => {
    const a = new Awareness(8)
    for (const d of deltas) a.apply(d)
    expect(a.score).toBe(score)
    expect(a.scale(100)).toBe(scaled)
    expect(a.atMax).toBe(score === 7)
  })
})

describe('BroadcastQueue', () => {
  const u = (peer: string, inc: number): SwimUpdate => ({ peer, run: 1, inc, status: 'alive' })

  it('keeps one update per member, the newest; sends the least sent first, newest first among equals; drops after the limit', () => {
    const q = new BroadcastQueue()
    q.push(u('a', 1))
    q.push(u('b', 1))
    q.push(u('a', 2))
    expect(q.size).toBe(2)
    expect(q.get('a')?.inc).toBe(2)
    expect(q.take(1, 2).map(x => x.peer)).toEqual(['a'])
    expect(q.take(1, 2).map(x => x.peer)).toEqual(['b'])
    expect(q.take(5, 2).map(x => x.peer)).toEqual(['a', 'b'])
    expect(q.size).toBe(0)
  })

  it('leaves out updates about the receiver', () => {
    const q = new BroadcastQueue()
    q.push(u('a', 1))
    q.push(u('b', 1))
    expect(q.take(5, 3, 'a').map(x => x.peer)).toEqual(['b'])
  })
})

describe('ShuffledOrder', () => {
  const ids = ['a', 'b', 'c', 'd', 'e', 'f']
  function passes (seed: number, count: number): string[][] {
    const o = new ShuffledOrder(seededRng(seed))
    for (const id of ids) o.add(id)
    return Array.from({ length: count }, () => Array.from({ length: ids.length }, () => o.next(() => true)!))
  }

  it.each([1, 2, 3])('probes every member once per pass, in an order shuffled again each pass (seed %d)', seed => {
    const p = passes(seed, 4)
    for (const pass of p) expect([...pass].sort()).toEqual(ids)
    expect(new Set(p.map(x => x.join(''))).size).toBeGreaterThan(1)
    expect(passes(seed, 4)).toEqual(p)
  })

  it('skips members that are not eligible, and says when none is', () => {
    const o = new ShuffledOrder(seededRng(1))
    for (const id of ids) o.add(id)
    const seen = Array.from({ length: 4 }, () => o.next(id => id === 'c' || id === 'e'))
    expect(new Set(seen)).toEqual(new Set(['c', 'e']))
    expect(o.next(() => false)).toBeUndefined()
  })

  it('samples distinct eligible members', () => {
    const o = new ShuffledOrder(seededRng(4))
    for (const id of ids) o.add(id)
    const s = o.sample(3, id => id !== 'a')
    expect(s).toHaveLength(3)
    expect(new Set(s).size).toBe(3)
    expect(s).not.toContain('a')
    expect(o.sample(10, id => id < 'c').sort()).toEqual(['a', 'b'])
    o.remove('b')
    expect(o.has('b')).toBe(false)
    expect(o.size).toBe(5)
  })
})

describe('DirectoryOrder', () => {
  const ids = Array.from({ length: 10 }, (_, i) => `n${i}`)
  const dir = new MemberDirectory(ids)

  it.each([1, 2, 3])('walks every member but itself once per pass, in another order each pass (seed %d)', seed => {
    const o = new DirectoryOrder(seededRng(seed), dir, 'n4')
    expect(o.size).toBe(9)
    const passes = Array.from({ length: 4 }, () => Array.from({ length: 9 }, () => o.next(() => true)!))
    for (const pass of passes) expect([...pass].sort()).toEqual(ids.filter(id => id !== 'n4'))
    expect(new Set(passes.map(x => x.join(','))).size).toBeGreaterThan(1)
  })

  it('skips members that are not eligible; samples distinct eligible ones', () => {
    const o = new DirectoryOrder(seededRng(5), dir, 'n0')
    expect(new Set(Array.from({ length: 6 }, () => o.next(id => id === 'n3' || id === 'n7')))).toEqual(new Set(['n3', 'n7']))
    expect(o.next(() => false)).toBeUndefined()
    const s = o.sample(3, id => id !== 'n1')
    expect(new Set(s).size).toBe(3)
    expect(s).not.toContain('n0')
    expect(s).not.toContain('n1')
  })
})

describe('detector profiles', () => {
  it.each(Object.entries(DETECTOR_PROFILES))('%s is valid, and its probe ends before the next one starts', (_name, c) => {
    expect(validateDetectorConfig({ ...c })).toEqual(c)
    // direct timeout, then the helpers' timeout and their answer's way back
    expect(c.probeTimeoutMs).toBeLessThan(c.probeIntervalMs)
  })

  it.each([
    { field: 'indirectChecks', value: -1, message: 'Expected `detector.indirectChecks` to be an integer >= 0 <= 16, got `-1` (number)' },
    { field: 'observers', value: 0, message: 'Expected `detector.observers` to be an integer >= 1 <= 16, got `0` (number)' },
    { field: 'observers', value: 2.5, message: 'Expected `detector.observers` to be an integer >= 1 <= 16, got `2.5` (number)' },
    { field: 'observers', value: '4', message: 'Expected `detector.observers` to be an integer >= 1 <= 16, got `4` (string)' }
  ])('says which field is wrong, what was expected and what came ($field: $value)', ({ field, value, message }) => {
    expect(() => validateDetectorConfig({ ...DETECTOR_PROFILES.lan, [field]: value })).toThrow(message)
  })

  it('takes observers null (everyone probes everyone) or a ring count', () => {
    expect(validateDetectorConfig({ ...DETECTOR_PROFILES.local, observers: null }).observers).toBeNull()
    expect(validateDetectorConfig({ ...DETECTOR_PROFILES.lan, observers: 8 }).observers).toBe(8)
  })
})
