/**
 * The bounded fan-out's choices (core/fanout.ts): the pair's rank is the same
 * from both sides; the peers an agent dials are spread over the cluster (no
 * agent is everybody's first choice); the connections it closes are idle,
 * old enough, outside the mesh and inbound first, never more than the excess.
 */
import { describe, expect, it } from 'vitest'
import { type OpenConnection, pairRank, pickCloses, pickDials } from '../../src/core/fanout.ts'

const ids = (n: number): string[] => Array.from({ length: n }, (_, i) => `12D3KooWPeer${String(i).padStart(4, '0')}`)
const conn = (peer: string, over: Partial<OpenConnection> = {}): OpenConnection => ({ peer, idle: true, inMesh: false, inbound: false, ageMs: 60_000, ...over })

describe('pairRank', () => {
  it('is the same from either side of a pair, and differs between pairs', () => {
    const [a, b, c] = ids(3)
    expect(pairRank(a, b)).toBe(pairRank(b, a))
    expect(new Set([pairRank(a, b), pairRank(a, c), pairRank(b, c)]).size).toBe(3)
  })
})

describe('pickDials', () => {
  it('picks at most `budget` peers, best ranked first, never itself, a skipped peer or one twice', () => {
    const peers = ids(10)
    const self = peers[0]
    const picks = pickDials(self, [...peers, peers[3]], p => p === peers[1], 4)
    expect(picks).toHaveLength(4)
    expect(new Set(picks).size).toBe(4)
    expect(picks).not.toContain(self)
    expect(picks).not.toContain(peers[1])
    const ranks = picks.map(p => pairRank(self, p))
    expect(ranks).toEqual([...ranks].sort((x, y) => x - y))
    expect(pickDials(self, peers, () => false, 0)).toEqual([])
  })

  it('spreads the connections: a hundred agents each dialling 4 of the others, in the same order of discovery, load no agent with more than 12', () => {
    const peers = ids(100)
    const inbound = new Map<string, number>()
    for (const self of peers) {
      for (const p of pickDials(self, peers, () => false, 4)) inbound.set(p, (inbound.get(p) ?? 0) + 1)
    }
    // In the order of discovery alone, the first four agents would get 99 each.
    expect(Math.max(...inbound.values())).toBeLessThanOrEqual(12)
    expect(inbound.size).toBeGreaterThan(80)
  })
})

describe('pickCloses', () => {
  it('closes nothing at or under the maximum, counting two connections to one peer once', () => {
    const [self, a, b] = ids(3)
    expect(pickCloses(self, [conn(a), conn(a), conn(b)], 2, 10_000)).toEqual([])
  })

  it('closes only the excess, among idle connections open long enough', () => {
    const peers = ids(8)
    const self = peers[0]
    const open = [conn(peers[1], { idle: false }), conn(peers[2], { ageMs: 1_000 }), conn(peers[3]), conn(peers[4]), conn(peers[5]), conn(peers[6])]
    const closes = pickCloses(self, open, 3, 10_000)
    expect(closes).toHaveLength(3)
    expect(closes).not.toContain(peers[1])
    expect(closes).not.toContain(peers[2])
    // Not enough idle ones: fewer than the excess.
    expect(pickCloses(self, open, 1, 10_000)).toHaveLength(4)
    // A peer busy on either of its two connections is busy.
    expect(pickCloses(self, [conn(peers[3]), conn(peers[3], { idle: false }), conn(peers[4])], 1, 10_000)).toEqual([peers[4]])
  })

  it('closes peers outside the mesh first, then those that dialled us, then the worst ranked', () => {
    const peers = ids(6)
    const self = peers[0]
    const open = [conn(peers[1], { inMesh: true }), conn(peers[2], { inbound: true }), conn(peers[3]), conn(peers[4], { inMesh: true, inbound: true })]
    expect(pickCloses(self, open, 3, 0)).toEqual([peers[2]])
    expect(pickCloses(self, open, 2, 0)).toEqual([peers[2], peers[3]])
    const both = pickCloses(self, open, 0, 0)
    expect(both.slice(0, 2)).toEqual([peers[2], peers[3]])
    expect(both.slice(2)).toEqual([peers[4], peers[1]])
  })
})
