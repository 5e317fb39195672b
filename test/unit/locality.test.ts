import { describe, expect, it } from 'vitest'
import { addRttSample, groupByDistance, isInterSite, nearestPeer, RTT_SAMPLES, rttOf, zoneOf } from '../../src/core/locality.ts'
import { DEFAULT_LOCAL_RESTART, decideGone, started } from '../../src/core/local-restart.ts'

describe('zones', () => {
  it.each<[Record<string, string> | undefined, string | undefined]>([
    [{ zone: 'paris' }, 'paris'], [{ zone: '' }, undefined], [{ rack: 'r1' }, undefined], [undefined, undefined]
  ])('zoneOf(%j) is %j', (labels, zone) => {
    expect(zoneOf(labels)).toBe(zone)
  })

  it.each<[Record<string, string> | undefined, Record<string, string> | undefined, boolean]>([
    [{ zone: 'paris' }, { zone: 'lyon' }, true],
    [{ zone: 'paris' }, { zone: 'paris' }, false],
    // A node with no zone: nobody can say the migration crossed sites.
    [{ zone: 'paris' }, {}, false],
    [undefined, { zone: 'lyon' }, false]
  ])('a migration from %j to %j is inter-site: %j', (from, to, inter) => {
    expect(isInterSite(from, to)).toBe(inter)
  })
})

describe('round trips', () => {
  it('are the least of the last samples: queueing on a busy host does not make a peer far', () => {
    let s: number[] = []
    for (const ms of [31, 25.5, 90, 26]) s = addRttSample(s, ms)
    expect(rttOf(s)).toBe(25.5)
    // Past RTT_SAMPLES the oldest go: a route that changed shows within a few samples.
    for (let i = 0; i < RTT_SAMPLES; i++) s = addRttSample(s, 40)
    expect(s).toHaveLength(RTT_SAMPLES)
    expect(rttOf(s)).toBe(40)
  })

  it.each([Number.NaN, -1, Number.POSITIVE_INFINITY])('ignore a sample of %d', ms => {
    expect(addRttSample([3], ms)).toEqual([3])
  })

  it('none measured: undefined', () => {
    expect(rttOf([])).toBeUndefined()
  })
})

describe('groupByDistance', () => {
  const rtt: Record<string, number> = { l1: 25, l2: 24, m1: 40, n1: 3 }
  const rttMs = (p: string): number | undefined => rtt[p]
  const item = (peerId: string, zone?: string) => ({ peerId, ...(zone != null ? { zone } : {}) })

  it.each<{ name: string, zone: string | undefined, items: Array<{ peerId: string, zone?: string }>, groups: string[][] }>([
    { name: 'own zone, then by the nearest node of each zone', zone: 'p', items: [item('m1', 'm'), item('l1', 'l'), item('p1', 'p'), item('l2', 'l')], groups: [['p1'], ['l1', 'l2'], ['m1']] },
    { name: 'unmeasured zones last, together', zone: 'p', items: [item('x1', 'x'), item('m1', 'm'), item('y1', 'y')], groups: [['m1'], ['x1', 'y1']] },
    { name: 'no zone is one zone', zone: 'p', items: [item('n1'), item('l1', 'l'), item('n2')], groups: [['n1', 'n2'], ['l1']] },
    { name: 'a requester with no zone has no own group', zone: undefined, items: [item('p1', 'p'), item('l1', 'l')], groups: [['l1'], ['p1']] },
    { name: 'nothing', zone: 'p', items: [], groups: [] }
  ])('$name', ({ zone, items, groups }) => {
    expect(groupByDistance(items, { zone, rttMs }).map(g => g.map(i => i.peerId))).toEqual(groups)
  })
})

describe('nearestPeer', () => {
  const rtt: Record<string, number> = { a: 10, b: 3, c: 3, d: 50 }
  const rttMs = (p: string): number | undefined => rtt[p]
  it.each<[string[], string[], string | undefined]>([
    [['a', 'b', 'c', 'd'], [], 'b'],
    [['a', 'b', 'c', 'd'], ['b'], 'c'],
    [['a', 'd', 'e'], ['a'], 'd'],
    [['e', 'f'], [], undefined],
    [['a'], ['a'], undefined]
  ])('among %j without %j: %j', (peers, exclude, nearest) => {
    expect(nearestPeer(peers, new Set(exclude), rttMs)).toBe(nearest)
  })
})

describe('a VM whose process is gone (local restart)', () => {
  const c = DEFAULT_LOCAL_RESTART

  it('under never: lost', () => {
    expect(decideGone('never', undefined, 0)).toEqual({ action: 'lost', reason: 'its restart policy is never' })
  })

  it.each<{ name: string, policy: 'always' | undefined, history: { crashes: number, startedAtMs?: number } | undefined, now: number, delayMs: number, crashes: number }>([
    { name: 'the first death: at once', policy: 'always', history: undefined, now: 0, delayMs: 0, crashes: 1 },
    { name: 'no policy (an earlier record) is always', policy: undefined, history: undefined, now: 0, delayMs: 0, crashes: 1 },
    { name: 'dead again soon after: 1 s', policy: 'always', history: { crashes: 1, startedAtMs: 1_000 }, now: 2_000, delayMs: c.firstDelayMs, crashes: 2 },
    { name: 'a third time: 2 s', policy: 'always', history: { crashes: 2, startedAtMs: 1_000 }, now: 2_000, delayMs: 2 * c.firstDelayMs, crashes: 3 },
    { name: 'a crash loop: capped', policy: 'always', history: { crashes: 30, startedAtMs: 1_000 }, now: 2_000, delayMs: c.maxDelayMs, crashes: 31 },
    { name: 'after running a minute: a first death again', policy: 'always', history: { crashes: 9, startedAtMs: 1_000 }, now: 1_000 + c.stableAfterMs, delayMs: 0, crashes: 1 },
    { name: 'a restart that failed (never started): counts on', policy: 'always', history: { crashes: 3 }, now: 1e9, delayMs: 4 * c.firstDelayMs, crashes: 4 }
  ])('$name', ({ policy, history, now, delayMs, crashes }) => {
    expect(decideGone(policy, history, now)).toEqual({ action: 'restart', delayMs, history: { crashes } })
  })

  it('remembers when the VM was started again', () => {
    expect(started({ crashes: 2 }, 5_000)).toEqual({ crashes: 2, startedAtMs: 5_000 })
  })
})
