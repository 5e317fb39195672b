/**
 * The cluster view: last writer wins by (incarnation, seq); statuses are the
 * failure detector's, set from outside and reported once each; gossip and
 * signs of life never change them; dead peers are forgotten after a while.
 */
import { describe, expect, it } from 'vitest'
import { ClusterView, derivedFrom, isNewer, type MergeResult, type PeerStatus, type ViewConfig } from '../../src/core/cluster-view.ts'
import { makeNode, peerId } from './fixtures.ts'

const config: ViewConfig = { forgetAfterMs: 10_000 }

const SELF = 'Se1f'
const PEER = 'Peer'

function state (tag: string, incarnation: number, seq: number) {
  return makeNode({ tag, incarnation, seq })
}

/** A view holding ourselves and one peer, both first heard at t = 0. */
function viewWithPeer (cfg: ViewConfig = config): ClusterView {
  const view = new ClusterView(peerId(SELF), cfg)
  view.merge(state(SELF, 1, 0), 0)
  view.merge(state(PEER, 1, 0), 0)
  return view
}

function statusOf (view: ClusterView, tag: string): PeerStatus | undefined {
  return view.get(peerId(tag))?.status
}

describe('isNewer', () => {
  it.each([
    { a: [1, 5], b: [1, 4], newer: true },
    { a: [1, 4], b: [1, 5], newer: false },
    { a: [1, 5], b: [1, 5], newer: false },
    // A restarted agent: higher incarnation wins whatever its seq.
    { a: [2, 0], b: [1, 99], newer: true },
    { a: [1, 99], b: [2, 0], newer: false }
  ])('(incarnation, seq) $a after $b → $newer', ({ a, b, newer }) => {
    expect(isNewer(state(PEER, a[0], a[1]), state(PEER, b[0], b[1]))).toBe(newer)
  })
})

describe('merge: last writer wins by (incarnation, seq)', () => {
  it.each<{ name: string, arrivals: Array<[number, number]>, results: MergeResult[], kept: [number, number] }>([
    { name: 'first copy is new', arrivals: [[1, 0]], results: ['new'], kept: [1, 0] },
    { name: 'higher seq updates', arrivals: [[1, 0], [1, 1], [1, 7]], results: ['new', 'updated', 'updated'], kept: [1, 7] },
    { name: 'repeated copy is stale', arrivals: [[1, 3], [1, 3]], results: ['new', 'stale'], kept: [1, 3] },
    { name: 'older seq is stale', arrivals: [[1, 5], [1, 4], [1, 0]], results: ['new', 'stale', 'stale'], kept: [1, 5] },
    { name: 'restart: higher incarnation, lower seq', arrivals: [[1, 50], [2, 0]], results: ['new', 'updated'], kept: [2, 0] },
    { name: 'late copy from before the restart is stale', arrivals: [[1, 50], [2, 0], [1, 51]], results: ['new', 'updated', 'stale'], kept: [2, 0] },
    { name: 'out of order arrival keeps the newest', arrivals: [[1, 2], [1, 9], [1, 4], [1, 10]], results: ['new', 'updated', 'stale', 'updated'], kept: [1, 10] }
  ])('$name', ({ arrivals, results, kept }) => {
    const view = new ClusterView(peerId(SELF), config)
    const got = arrivals.map(([inc, seq], i) => view.merge(state(PEER, inc, seq), i * 10))
    expect(got).toEqual(results)
    const entry = view.get(peerId(PEER))
    expect([entry?.state.incarnation, entry?.state.seq]).toEqual(kept)
    expect(view.size).toBe(1)
  })

  it('keeps one entry per peer', () => {
    const view = new ClusterView(peerId(SELF), config)
    for (const tag of ['A', 'B', 'C']) view.merge(state(tag, 1, 0), 0)
    view.merge(state('B', 1, 1), 5)
    expect(view.size).toBe(3)
    expect(view.entries().map(e => e.state.peerId).sort()).toEqual(['A', 'B', 'C'].map(peerId).sort())
  })

  it('a stale copy does not count as a sign of life', () => {
    const view = viewWithPeer()
    expect(view.merge(state(PEER, 1, 0), 2500)).toBe('stale')
    expect(view.get(peerId(PEER))?.lastSeenMs).toBe(0)
  })

  it('a newer copy never moves lastSeen backwards', () => {
    const view = new ClusterView(peerId(SELF), config)
    view.merge(state(PEER, 1, 0), 1000)
    view.merge(state(PEER, 1, 1), 400)
    expect(view.get(peerId(PEER))?.lastSeenMs).toBe(1000)
  })
})

describe('statuses come from the failure detector, not from gossip', () => {
  it('a new peer starts alive', () => {
    expect(statusOf(viewWithPeer(), PEER)).toBe('alive')
  })

  it.each<{ path: PeerStatus[], changes: Array<[PeerStatus, PeerStatus]> }>([
    { path: ['suspect'], changes: [['alive', 'suspect']] },
    { path: ['suspect', 'dead'], changes: [['alive', 'suspect'], ['suspect', 'dead']] },
    { path: ['dead', 'dead', 'alive'], changes: [['alive', 'dead'], ['dead', 'alive']] },
    { path: ['alive'], changes: [] }
  ])('set $path: each change reported once, in order', ({ path, changes }) => {
    const view = viewWithPeer()
    path.forEach((status, i) => { view.setStatus(peerId(PEER), status, 100 * (i + 1)) })
    expect(view.takeChanges()).toEqual(changes.map(([from, to]) => ({ peerId: peerId(PEER), from, to })))
    expect(view.takeChanges()).toEqual([])
    expect(statusOf(view, PEER)).toBe(path.at(-1))
  })

  it('a newer state of a dead peer changes its state, not its status', () => {
    const view = viewWithPeer()
    view.setStatus(peerId(PEER), 'dead', 100)
    view.takeChanges()
    expect(view.merge(state(PEER, 1, 1), 200)).toBe('updated')
    expect(statusOf(view, PEER)).toBe('dead')
    expect(view.get(peerId(PEER))?.state.seq).toBe(1)
    expect(view.takeChanges()).toEqual([])
  })

  it('a sign of life moves lastSeen forward, never backwards, and leaves the status alone', () => {
    const view = viewWithPeer()
    view.setStatus(peerId(PEER), 'suspect', 10)
    view.heard(peerId(PEER), 500)
    view.heard(peerId(PEER), 300)
    expect(view.get(peerId(PEER))?.lastSeenMs).toBe(500)
    expect(statusOf(view, PEER)).toBe('suspect')
    view.heard(peerId('Unknown'), 10)
    expect(view.size).toBe(2)
  })

  it('ourselves and unknown peers are never set', () => {
    const view = viewWithPeer()
    expect(view.setStatus(peerId(SELF), 'dead', 10)).toBe(false)
    expect(view.setStatus(peerId('Unknown'), 'dead', 10)).toBe(false)
    expect(statusOf(view, SELF)).toBe('alive')
    expect(view.takeChanges()).toEqual([])
  })
})

describe('forgetting', () => {
  it('drops a peer dead for forgetAfterMs, and a later copy of it is new again', () => {
    const view = viewWithPeer()
    view.setStatus(peerId(PEER), 'dead', 3000)
    expect(view.tick(12_999)).toEqual([])
    expect(view.tick(13_000)).toEqual([peerId(PEER)])
    expect(view.get(peerId(PEER))).toBeUndefined()
    expect(view.merge(state(PEER, 1, 0), 14_000)).toBe('new')
    expect(statusOf(view, PEER)).toBe('alive')
  })

  it('keeps suspect and alive peers however long they are silent, and ourselves', () => {
    const view = viewWithPeer()
    view.merge(state('A', 1, 0), 0)
    view.setStatus(peerId('A'), 'suspect', 0)
    expect(view.tick(10_000_000)).toEqual([])
    expect(view.size).toBe(3)
  })
})

describe('alive()', () => {
  it('lists exactly the peers whose status is alive', () => {
    const view = new ClusterView(peerId(SELF), config)
    for (const tag of [SELF, 'A', 'B', 'C']) view.merge(state(tag, 1, 0), 0)
    view.setStatus(peerId('A'), 'dead', 10)
    view.setStatus(peerId('C'), 'suspect', 10)
    expect(view.alive().map(s => s.peerId).sort()).toEqual([peerId(SELF), peerId('B')].sort())
  })
})

describe('version', () => {
  it('changes with the peers listed, their statuses and their addresses, not with every state', () => {
    const view = viewWithPeer()
    let v = view.version
    const moved = (): boolean => { const changed = view.version !== v; v = view.version; return changed }
    view.merge(state(PEER, 1, 1), 10)
    expect(moved()).toBe(false)
    view.merge(state(PEER, 1, 0), 20)
    expect(moved()).toBe(false)
    view.merge({ ...state(PEER, 1, 2), addrs: ['/ip4/10.0.0.9/tcp/4001'] }, 30)
    expect(moved()).toBe(true)
    view.merge(state('New', 1, 0), 40)
    expect(moved()).toBe(true)
    view.setStatus(peerId('New'), 'suspect', 50)
    expect(moved()).toBe(true)
    view.setStatus(peerId('New'), 'suspect', 60)
    expect(moved()).toBe(false)
    view.setStatus(peerId('New'), 'dead', 70)
    expect(moved()).toBe(true)
    view.tick(71)
    expect(moved()).toBe(false)
    view.tick(70 + config.forgetAfterMs)
    expect(moved()).toBe(true)
  })
})

describe('derivedFrom', () => {
  it('builds again only when the view\'s version changed', () => {
    const view = viewWithPeer()
    let builds = 0
    const ids = derivedFrom(view, () => { builds++; return view.entries().map(e => e.peerId).sort() })
    expect(ids()).toEqual([peerId(PEER), peerId(SELF)].sort())
    view.merge(state(PEER, 1, 1), 10)
    expect(ids()).toBe(ids())
    expect(builds).toBe(1)
    view.merge(state('New', 1, 0), 20)
    expect(ids()).toContain(peerId('New'))
    expect(builds).toBe(2)
  })
})
