/**
 * Rapid's monitoring topology (core/monitor-rings.ts): the rings depend on
 * the member ids only (any order of arrival gives the same observers), each
 * member observes and is observed by at most k, about k at a hundred
 * members, observers and subjects are the two sides of one relation, and a
 * member not live is stepped over (its predecessors observe the next one,
 * and ping it to revive).
 */
import { describe, expect, it } from 'vitest'
import { MonitorRings } from '../../src/core/monitor-rings.ts'
import { shuffled } from './shuffled.ts'

const ids = (n: number): string[] => Array.from({ length: n }, (_, i) => `12D3KooWpeer${i.toString(36)}`)
const all = (): boolean => true

describe('monitor rings', () => {
  it.each([
    { n: 10, k: 4, seed: 1 }, { n: 50, k: 4, seed: 2 }, { n: 100, k: 3, seed: 3 }, { n: 100, k: 4, seed: 4 }
  ])('the same observers whatever order the $n members arrived in, with or without one added and removed again (k $k, seed $seed)', ({ n, k, seed }) => {
    const members = ids(n)
    const a = new MonitorRings(k, members)
    const b = new MonitorRings(k)
    for (const id of shuffled(members, seed)) b.add(id)
    b.add('12D3KooWnewcomer')
    b.remove('12D3KooWnewcomer')
    for (const id of members) {
      expect(b.observers(id, all).sort()).toEqual(a.observers(id, all).sort())
      expect(b.walk(id, all).subjects.sort()).toEqual(a.walk(id, all).subjects.sort())
    }
  })

  it.each([
    { n: 20, k: 4, minMean: 3.2 }, { n: 50, k: 4, minMean: 3.6 }, { n: 100, k: 4, minMean: 3.8 }, { n: 100, k: 8, minMean: 7.3 }
  ])('$n members, k $k: each observes and is observed by at most k (on average at least $minMean), observers and subjects one relation', ({ n, k, minMean }) => {
    const members = ids(n)
    const rings = new MonitorRings(k, members)
    const observedBy = new Map(members.map(id => [id, rings.observers(id, all)]))
    let total = 0
    for (const id of members) {
      const subjects = rings.walk(id, all).subjects
      expect(subjects.length).toBeGreaterThanOrEqual(1)
      expect(subjects.length).toBeLessThanOrEqual(k)
      expect(subjects).not.toContain(id)
      for (const s of subjects) expect(observedBy.get(s)).toContain(id)
      const observers = observedBy.get(id)!
      expect(observers.length).toBeGreaterThanOrEqual(1)
      expect(observers.length).toBeLessThanOrEqual(k)
      for (const o of observers) expect(rings.walk(o, all).subjects).toContain(id)
      total += observers.length
    }
    expect(total / n).toBeGreaterThanOrEqual(minMean)
  })

  it('balanced: at 100 members and k 4, every member has 2 to 8 detection peers (subjects and observers), 7.5 or more on average', () => {
    const members = ids(100)
    const rings = new MonitorRings(4, members)
    const peers = members.map(id => new Set([...rings.walk(id, all).subjects, ...rings.observers(id, all)]).size)
    expect(Math.min(...peers)).toBeGreaterThanOrEqual(2)
    expect(Math.max(...peers)).toBeLessThanOrEqual(8)
    expect(peers.reduce((a, b) => a + b, 0) / peers.length).toBeGreaterThanOrEqual(7.5)
  })

  it('a member not live is stepped over: its observers observe its subjects instead, and meet it on the way', () => {
    const members = ids(30)
    const rings = new MonitorRings(4, members)
    const dead = members[7]
    const live = (id: string): boolean => id !== dead
    const before = rings.observers(dead, all)
    for (const o of before) {
      const w = rings.walk(o, live)
      expect(w.subjects).not.toContain(dead)
      expect(w.passed).toContain(dead)
    }
    // Stepping over it is the same as rings without it: whoever it observed is observed by the next live ones.
    const without = new MonitorRings(4, members.filter(live))
    for (const id of members.filter(live)) {
      expect(rings.observers(id, live).sort()).toEqual(without.observers(id, all).sort())
      expect(rings.walk(id, live).subjects.sort()).toEqual(without.walk(id, all).subjects.sort())
    }
    // The observers of an id are computed whether it is on the rings or not (an accused member just forgotten).
    rings.remove(dead)
    expect(rings.observers(dead, all).sort()).toEqual(before.sort())
  })

  it('two members observe each other; one alone observes nobody', () => {
    expect(new MonitorRings(4, ['a', 'b']).walk('a', all).subjects).toEqual(['b'])
    expect(new MonitorRings(4, ['a', 'b']).observers('a', all)).toEqual(['b'])
    expect(new MonitorRings(4, ['a']).walk('a', all).subjects).toEqual([])
  })

  it('its version changes with each member added or removed, and only then (what a kept walk is checked against)', () => {
    const rings = new MonitorRings(4, ['a', 'b'])
    const v0 = rings.version
    rings.add('a')
    rings.remove('zz')
    expect(rings.version).toBe(v0)
    rings.add('c')
    const v1 = rings.version
    expect(v1).not.toBe(v0)
    rings.remove('c')
    expect(rings.version).not.toBe(v1)
  })
})
