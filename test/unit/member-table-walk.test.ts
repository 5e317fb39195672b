/**
 * The detector's own walk of the rings (core/member-table.ts `walk`, `peers`):
 * kept between calls — the probe tick and the process check asked for it
 * several times a second, each a walk of every ring — and walked again
 * whenever a member is added or removed, dies or comes back. Checked against
 * rings built afresh after every step of a seeded random sequence.
 */
import { describe, expect, it } from 'vitest'
import { type Member, MemberTable } from '../../src/core/member-table.ts'
import { MonitorRings } from '../../src/core/monitor-rings.ts'
import { seededRng } from '../../src/core/rng.ts'
import type { MemberStatus } from '../../src/core/swim-messages.ts'

class Table extends MemberTable {
  set (m: Member, status: MemberStatus): void { this.setStatus(m, status, 0) }
}

const K = 4
const id = (i: number): string => `12D3KooWpeer${i.toString(36)}`

/** What the walk and the detection peers are, computed from nothing kept. */
function fresh (t: MemberTable): { subjects: string[], passed: string[], peers: string[] } {
  const ids = [...t.values()].map(m => m.id)
  const rings = new MonitorRings(K, [...ids, t.self])
  const live = (x: string): boolean => x === t.self || (t.status(x) ?? 'dead') !== 'dead'
  const walk = rings.walk(t.self, live)
  return { subjects: walk.subjects, passed: walk.passed, peers: [...new Set([...walk.subjects, ...rings.observers(t.self, live)])] }
}

describe('the detector\'s walk of the rings', () => {
  it.each([1, 2, 3])('is the same as walked afresh after every member added, removed, dead or back (seed %i)', (seed) => {
    console.log(`member-table-walk seed ${seed}`)
    const rng = seededRng(seed)
    const t = new Table('12D3KooWself', K)
    for (let i = 0; i < 30; i++) t.add(id(i), 1, 0)
    let next = 30
    for (let step = 0; step < 300; step++) {
      const members = [...t.values()]
      const r = rng.next()
      const m = members[Math.floor(rng.next() * members.length)]
      if (r < 0.2) t.add(id(next++), 1, 0)
      else if (r < 0.3 && m != null) t.remove(m.id)
      else if (m != null) t.set(m, r < 0.6 ? 'dead' : r < 0.8 ? 'alive' : 'suspect')
      const want = fresh(t)
      const walk = t.walk()
      if (walk == null) {
        expect(t.topology, `seed ${seed} step ${step}`).toBe(false)
        continue
      }
      expect([...walk.subjects].sort(), `seed ${seed} step ${step}`).toEqual([...want.subjects].sort())
      expect([...walk.passed].sort(), `seed ${seed} step ${step}`).toEqual([...want.passed].sort())
      expect([...t.peers()!].sort(), `seed ${seed} step ${step}`).toEqual([...want.peers].sort())
    }
  })

  it('is kept while nothing changes, and cannot be changed by whoever asked for it', () => {
    const t = new Table('12D3KooWself', K)
    for (let i = 0; i < 20; i++) t.add(id(i), 1, 0)
    const walk = t.walk()!
    expect(t.walk()).toBe(walk)
    expect(t.peers()).toBe(t.peers())
    expect(Object.isFrozen(walk.subjects) && Object.isFrozen(walk.passed) && Object.isFrozen(t.peers())).toBe(true)
    // A status change that is not a death keeps it; a death does not.
    t.set(t.get(walk.subjects[0])!, 'suspect')
    expect(t.walk()).toBe(walk)
    t.set(t.get(walk.subjects[0])!, 'dead')
    expect(t.walk()).not.toBe(walk)
    expect(t.walk()!.subjects).not.toContain(walk.subjects[0])
  })
})
