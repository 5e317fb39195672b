import { describe, expect, it } from 'vitest'
import { fnv1a } from '../../src/core/hash.ts'
import { Ring } from '../../src/core/ring.ts'

/** The ring order by definition: FNV-1a hash ascending, then id. */
function expectedOrder (ids: string[]): string[] {
  return [...new Set(ids)].sort((a, b) => fnv1a(a) - fnv1a(b) || (a < b ? -1 : a > b ? 1 : 0))
}

const PEERS = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel']

/** Two ids whose FNV-1a hashes collide (found by a search over `p<n>`), so that the tie-break by id is exercised. */
const COLLIDING: [string, string] = ['p2039599', 'p2222382']

function collidingPair (): [string, string] {
  return COLLIDING
}

describe('fnv1a', () => {
  it.each([
    // Reference values of 32-bit FNV-1a.
    { s: '', h: 0x811c9dc5 },
    { s: 'a', h: 0xe40c292c },
    { s: 'foobar', h: 0xbf9cf968 }
  ])('fnv1a($s) = $h', ({ s, h }) => {
    expect(fnv1a(s)).toBe(h)
  })

  it('is an unsigned 32-bit integer', () => {
    for (const id of PEERS) {
      const h = fnv1a(id)
      expect(Number.isInteger(h)).toBe(true)
      expect(h).toBeGreaterThanOrEqual(0)
      expect(h).toBeLessThan(2 ** 32)
    }
  })
})

describe('Ring order', () => {
  it.each([
    { name: 'empty', ids: [] as string[] },
    { name: 'one peer', ids: ['solo'] },
    { name: 'eight peers', ids: PEERS },
    { name: 'eight peers, reversed input', ids: [...PEERS].reverse() },
    { name: 'duplicates', ids: ['bravo', 'alpha', 'bravo', 'charlie', 'alpha'] }
  ])('$name: by hash then id, duplicates ignored', ({ ids }) => {
    const ring = new Ring(ids)
    expect(ring.ids()).toEqual(expectedOrder(ids))
    expect(ring.size).toBe(new Set(ids).size)
    for (const id of ids) expect(ring.has(id)).toBe(true)
    expect(ring.has('not-a-peer')).toBe(false)
  })

  it('ties on the hash are broken by id', () => {
    const [a, b] = collidingPair()
    expect(a).not.toBe(b)
    expect(fnv1a(a)).toBe(fnv1a(b))
    const lo = a < b ? a : b
    const hi = a < b ? b : a
    expect(new Ring([hi, lo]).ids()).toEqual([lo, hi])
    expect(new Ring([lo, hi]).ids()).toEqual([lo, hi])
    expect(new Ring([lo, hi]).successor(lo)).toBe(hi)
    expect(new Ring([lo, hi]).successor(hi)).toBe(lo)
  })

  it('is deterministic: the same set in any order gives the same ring', () => {
    const orders = [PEERS, [...PEERS].reverse(), [...PEERS.slice(3), ...PEERS.slice(0, 3)], [...PEERS, ...PEERS]]
    const rings = orders.map(ids => new Ring(ids))
    for (const r of rings) {
      expect(r.ids()).toEqual(rings[0].ids())
      for (const id of PEERS) expect(r.successor(id)).toBe(rings[0].successor(id))
    }
  })
})

describe('Ring.successor', () => {
  const ring = new Ring(PEERS)
  const order = ring.ids()

  it.each(order.map((id, i) => ({ id, next: order[(i + 1) % order.length] })))('successor($id) = $next', ({ id, next }) => {
    expect(ring.successor(id)).toBe(next)
  })

  it('predecessor is the inverse of successor; none for an id not on the ring, or alone', () => {
    for (const id of order) expect(ring.predecessor(ring.successor(id)!)).toBe(id)
    expect(ring.predecessor(order[0])).toBe(order[order.length - 1])
    expect(ring.predecessor('not-on-the-ring')).toBeUndefined()
    expect(new Ring([order[0]]).predecessor(order[0])).toBeUndefined()
  })

  it('the last peer wraps around to the first', () => {
    expect(ring.successor(order[order.length - 1])).toBe(order[0])
  })

  it('following successors visits every peer once and comes back', () => {
    const seen: string[] = []
    let cur = order[0]
    for (let i = 0; i < ring.size; i++) {
      seen.push(cur)
      cur = ring.successor(cur)!
    }
    expect(cur).toBe(order[0])
    expect([...seen].sort()).toEqual([...PEERS].sort())
  })

  it.each([
    { name: 'empty ring', ids: [] as string[], of: 'x', next: undefined },
    { name: 'single-node ring has no successor', ids: ['solo'], of: 'solo', next: undefined },
    { name: 'two nodes point at each other (1)', ids: ['alpha', 'bravo'], of: 'alpha', next: 'bravo' },
    { name: 'two nodes point at each other (2)', ids: ['alpha', 'bravo'], of: 'bravo', next: 'alpha' }
  ])('$name', ({ ids, of, next }) => {
    expect(new Ring(ids).successor(of)).toBe(next)
  })

  it('an id not on the ring of one peer: that peer', () => {
    expect(new Ring(['solo']).successor('stranger')).toBe('solo')
  })

  // An id not on the ring: the first peer after its hash (ties by id), wrapping.
  const strangers = ['zulu', 'yankee', 'xray', 'whiskey', 'victor', 'uniform', 'tango', 'sierra', 'romeo', 'quebec']
  it.each(strangers)('successor of %s (not on the ring) is the first peer after its hash', stranger => {
    const h = fnv1a(stranger)
    const after = order.find(id => fnv1a(id) > h || (fnv1a(id) === h && id > stranger)) ?? order[0]
    expect(ring.has(stranger)).toBe(false)
    expect(ring.successor(stranger)).toBe(after)
    // The same as if it had joined the ring.
    expect(new Ring([...PEERS, stranger]).successor(stranger)).toBe(after)
  })

  it('an id not on the ring hashing above every peer wraps to the first', () => {
    const maxHash = Math.max(...order.map(fnv1a))
    let stranger = ''
    for (let i = 0; ; i++) {
      stranger = `s${i}`
      if (fnv1a(stranger) > maxHash) break
    }
    expect(ring.successor(stranger)).toBe(order[0])
  })

  it('an id not on the ring whose hash ties a peer falls on the side given by the id', () => {
    const [a, b] = collidingPair()
    const lo = a < b ? a : b
    const hi = a < b ? b : a
    const r = new Ring([hi, ...PEERS])
    // lo sorts before hi: its successor is hi itself.
    expect(r.successor(lo)).toBe(hi)
    const r2 = new Ring([lo, ...PEERS])
    // hi sorts after lo: its successor is lo's successor.
    expect(r2.successor(hi)).toBe(r2.successor(lo))
  })
})

describe('Ring.successors', () => {
  const ring = new Ring(PEERS)
  const order = ring.ids()
  const first = order[0]

  it.each([
    { k: 0, want: [] as string[] },
    { k: 1, want: order.slice(1, 2) },
    { k: 3, want: order.slice(1, 4) },
    { k: 7, want: order.slice(1) },
    // Stops before coming back to the start: never itself, never twice.
    { k: 8, want: order.slice(1) },
    { k: 100, want: order.slice(1) }
  ])('successors(first, $k)', ({ k, want }) => {
    expect(ring.successors(first, k)).toEqual(want)
  })

  it('wraps around from the last peer', () => {
    const last = order[order.length - 1]
    expect(ring.successors(last, 3)).toEqual(order.slice(0, 3))
    expect(ring.successors(last, 50)).toEqual(order.slice(0, -1))
  })

  it.each([
    { name: 'single-node ring', ids: ['solo'], of: 'solo', k: 3, want: [] as string[] },
    { name: 'two-node ring', ids: ['alpha', 'bravo'], of: 'alpha', k: 5, want: ['bravo'] },
    { name: 'empty ring', ids: [] as string[], of: 'x', k: 3, want: [] as string[] }
  ])('$name', ({ ids, of, k, want }) => {
    expect(new Ring(ids).successors(of, k)).toEqual(want)
  })

  it('of an id not on the ring: up to every peer, starting after its hash', () => {
    const stranger = 'zulu'
    const start = ring.successor(stranger)!
    const i = order.indexOf(start)
    const rotated = [...order.slice(i), ...order.slice(0, i)]
    expect(ring.successors(stranger, 3)).toEqual(rotated.slice(0, 3))
    expect(ring.successors(stranger, 100)).toEqual(rotated)
  })
})
