import { describe, expect, it } from 'vitest'
import { ClusterView, isNewer, type MergeResult, type PeerStatus, type ViewConfig } from '../../src/core/cluster-view.ts'
import { makeNode, peerId } from './fixtures.ts'

const config: ViewConfig = {
  suspectAfterMs: 1000,
  deadAfterMs: 3000,
  disconnectedDeadAfterMs: 500,
  forgetAfterMs: 10_000
}

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
    expect(view.tick(3000)).toEqual([{ peerId: peerId(PEER), from: 'alive', to: 'dead' }])
  })

  it('a newer copy refreshes lastSeen and revives a dead peer', () => {
    const view = viewWithPeer()
    view.tick(3000)
    expect(statusOf(view, PEER)).toBe('dead')
    expect(view.merge(state(PEER, 1, 1), 3500)).toBe('updated')
    expect(statusOf(view, PEER)).toBe('alive')
    expect(view.get(peerId(PEER))?.lastSeenMs).toBe(3500)
    expect(view.tick(4000)).toEqual([])
  })

  it('a newer copy never moves lastSeen backwards', () => {
    const view = new ClusterView(peerId(SELF), config)
    view.merge(state(PEER, 1, 0), 1000)
    view.merge(state(PEER, 1, 1), 400)
    expect(view.get(peerId(PEER))?.lastSeenMs).toBe(1000)
  })

  it('a newer copy clears a disconnection', () => {
    const view = viewWithPeer()
    view.disconnected(peerId(PEER), 100)
    view.merge(state(PEER, 2, 0), 200)
    expect(view.get(peerId(PEER))?.disconnectedAtMs).toBeUndefined()
    expect(statusOf(view, PEER)).toBe('alive')
    // Without the disconnection it would be dead at 100 + 500.
    expect(view.tick(700)).toEqual([])
  })
})

describe('liveness by silence', () => {
  it.each<{ at: number, status: PeerStatus | undefined }>([
    { at: 0, status: 'alive' },
    { at: 999, status: 'alive' },
    { at: 1000, status: 'suspect' },
    { at: 2999, status: 'suspect' },
    { at: 3000, status: 'dead' },
    { at: 12_999, status: 'dead' },
    { at: 13_000, status: undefined }
  ])('silent since 0, at $at ms → $status', ({ at, status }) => {
    const view = viewWithPeer()
    view.tick(at)
    expect(statusOf(view, PEER)).toBe(status)
  })

  it.each<{ refreshMs: number, at: number, status: PeerStatus }>([
    { refreshMs: 400, at: 1000, status: 'suspect' },
    { refreshMs: 1000, at: 1999, status: 'alive' },
    { refreshMs: 1000, at: 2000, status: 'suspect' },
    { refreshMs: 1000, at: 3999, status: 'suspect' },
    { refreshMs: 1000, at: 4000, status: 'dead' }
  ])('a peer refreshing every $refreshMs ms, silent since 0, at $at ms → $status', ({ refreshMs, at, status }) => {
    const view = viewWithPeer()
    view.tick(at, refreshMs)
    expect(statusOf(view, PEER)).toBe(status)
  })

  it('tick reports each change once, in order', () => {
    const view = viewWithPeer()
    const p = peerId(PEER)
    expect(view.tick(999)).toEqual([])
    expect(view.tick(1000)).toEqual([{ peerId: p, from: 'alive', to: 'suspect' }])
    expect(view.tick(2000)).toEqual([])
    expect(view.tick(3000)).toEqual([{ peerId: p, from: 'suspect', to: 'dead' }])
    expect(view.tick(3001)).toEqual([])
  })

  it('a long gap goes straight from alive to dead', () => {
    const view = viewWithPeer()
    expect(view.tick(5000)).toEqual([{ peerId: peerId(PEER), from: 'alive', to: 'dead' }])
  })

  it('reports changes for several peers in one tick', () => {
    const view = new ClusterView(peerId(SELF), config)
    view.merge(state('A', 1, 0), 0)
    view.merge(state('B', 1, 0), 1500)
    view.merge(state('C', 1, 0), 2500)
    const changes = view.tick(3000)
    expect(changes).toEqual(expect.arrayContaining([
      { peerId: peerId('A'), from: 'alive', to: 'dead' },
      { peerId: peerId('B'), from: 'alive', to: 'suspect' }
    ]))
    expect(changes).toHaveLength(2)
    expect(view.alive().map(s => s.peerId)).toEqual([peerId('C')])
  })

  it.each<{ cfg: ViewConfig, at: number, status: PeerStatus | undefined }>([
    { cfg: { suspectAfterMs: 100, deadAfterMs: 200, disconnectedDeadAfterMs: 50, forgetAfterMs: 100 }, at: 99, status: 'alive' },
    { cfg: { suspectAfterMs: 100, deadAfterMs: 200, disconnectedDeadAfterMs: 50, forgetAfterMs: 100 }, at: 100, status: 'suspect' },
    { cfg: { suspectAfterMs: 100, deadAfterMs: 200, disconnectedDeadAfterMs: 50, forgetAfterMs: 100 }, at: 200, status: 'dead' },
    { cfg: { suspectAfterMs: 100, deadAfterMs: 200, disconnectedDeadAfterMs: 50, forgetAfterMs: 100 }, at: 300, status: undefined },
    { cfg: { suspectAfterMs: 5000, deadAfterMs: 20_000, disconnectedDeadAfterMs: 50, forgetAfterMs: 60_000 }, at: 4999, status: 'alive' },
    { cfg: { suspectAfterMs: 5000, deadAfterMs: 20_000, disconnectedDeadAfterMs: 50, forgetAfterMs: 60_000 }, at: 19_999, status: 'suspect' },
    { cfg: { suspectAfterMs: 5000, deadAfterMs: 20_000, disconnectedDeadAfterMs: 50, forgetAfterMs: 60_000 }, at: 79_999, status: 'dead' },
    { cfg: { suspectAfterMs: 5000, deadAfterMs: 20_000, disconnectedDeadAfterMs: 50, forgetAfterMs: 60_000 }, at: 80_000, status: undefined }
  ])('timeouts come from the config: $cfg.suspectAfterMs/$cfg.deadAfterMs/$cfg.forgetAfterMs at $at → $status', ({ cfg, at, status }) => {
    const view = viewWithPeer(cfg)
    view.tick(at)
    expect(statusOf(view, PEER)).toBe(status)
  })
})

describe('heard', () => {
  it.each<{ from: PeerStatus, silentUntil: number }>([
    { from: 'suspect', silentUntil: 1500 },
    { from: 'dead', silentUntil: 4000 }
  ])('revives a $from peer', ({ from, silentUntil }) => {
    const view = viewWithPeer()
    view.tick(silentUntil)
    expect(statusOf(view, PEER)).toBe(from)
    view.heard(peerId(PEER), silentUntil)
    expect(statusOf(view, PEER)).toBe('alive')
    expect(view.get(peerId(PEER))?.lastSeenMs).toBe(silentUntil)
    expect(view.tick(silentUntil + 999)).toEqual([])
    expect(view.tick(silentUntil + 1000)).toEqual([{ peerId: peerId(PEER), from: 'alive', to: 'suspect' }])
  })

  it('resets the silence clock but never moves it backwards', () => {
    const view = viewWithPeer()
    view.heard(peerId(PEER), 800)
    expect(view.tick(1500)).toEqual([])
    view.heard(peerId(PEER), 100)
    expect(view.get(peerId(PEER))?.lastSeenMs).toBe(800)
    expect(statusOf(view, PEER)).toBe('alive')
  })

  it('ignores peers it does not know', () => {
    const view = new ClusterView(peerId(SELF), config)
    view.heard(peerId('Unknown'), 10)
    expect(view.size).toBe(0)
    expect(view.get(peerId('Unknown'))).toBeUndefined()
  })
})

describe('disconnected', () => {
  it('makes an alive peer suspect at once, before any tick', () => {
    const view = viewWithPeer()
    view.disconnected(peerId(PEER), 100)
    expect(statusOf(view, PEER)).toBe('suspect')
    expect(view.alive().map(s => s.peerId)).toEqual([peerId(SELF)])
  })

  it.each<{ at: number, status: PeerStatus }>([
    { at: 100, status: 'suspect' },
    { at: 599, status: 'suspect' },
    { at: 600, status: 'dead' }
  ])('disconnected at 100, at $at ms → $status (disconnectedDeadAfterMs = 500)', ({ at, status }) => {
    const view = viewWithPeer()
    view.disconnected(peerId(PEER), 100)
    view.tick(at)
    expect(statusOf(view, PEER)).toBe(status)
  })

  it('tick reports the death, not the suspicion it already knew of', () => {
    const view = viewWithPeer()
    view.disconnected(peerId(PEER), 100)
    expect(view.tick(300)).toEqual([])
    expect(view.tick(600)).toEqual([{ peerId: peerId(PEER), from: 'suspect', to: 'dead' }])
  })

  it('a second disconnection does not restart the countdown', () => {
    const view = viewWithPeer()
    view.disconnected(peerId(PEER), 100)
    view.disconnected(peerId(PEER), 400)
    expect(view.get(peerId(PEER))?.disconnectedAtMs).toBe(100)
    view.tick(600)
    expect(statusOf(view, PEER)).toBe('dead')
  })

  it('heard after a disconnection revives and clears it', () => {
    const view = viewWithPeer()
    view.disconnected(peerId(PEER), 100)
    view.heard(peerId(PEER), 200)
    expect(statusOf(view, PEER)).toBe('alive')
    expect(view.get(peerId(PEER))?.disconnectedAtMs).toBeUndefined()
    expect(view.tick(700)).toEqual([])
  })

  it('a peer dead by disconnection is forgotten only after deadAfterMs + forgetAfterMs of silence', () => {
    const view = viewWithPeer()
    view.disconnected(peerId(PEER), 0)
    view.tick(500)
    expect(statusOf(view, PEER)).toBe('dead')
    view.tick(12_999)
    expect(statusOf(view, PEER)).toBe('dead')
    view.tick(13_000)
    expect(view.get(peerId(PEER))).toBeUndefined()
  })

  it('ignores unknown peers', () => {
    const view = new ClusterView(peerId(SELF), config)
    view.disconnected(peerId('Unknown'), 10)
    expect(view.size).toBe(0)
  })
})

describe('forgetting', () => {
  it('drops a dead peer after deadAfterMs + forgetAfterMs, and a later copy is new again', () => {
    const view = viewWithPeer()
    view.tick(3000)
    view.tick(12_999)
    expect(view.size).toBe(2)
    view.tick(13_000)
    expect(view.size).toBe(1)
    expect(view.get(peerId(PEER))).toBeUndefined()
    expect(view.entries().map(e => e.state.peerId)).toEqual([peerId(SELF)])
    // Even an old copy is taken as new once the peer is forgotten.
    expect(view.merge(state(PEER, 1, 0), 13_500)).toBe('new')
    expect(statusOf(view, PEER)).toBe('alive')
  })
})

describe('self', () => {
  it('is never suspected, killed or forgotten, however long it is silent', () => {
    const view = viewWithPeer()
    for (const at of [1000, 3000, 13_000, 1_000_000]) {
      const changes = view.tick(at)
      expect(changes.map(c => c.peerId)).not.toContain(peerId(SELF))
    }
    expect(statusOf(view, SELF)).toBe('alive')
    expect(view.get(peerId(PEER))).toBeUndefined()
  })

  it('is not suspected on a disconnection', () => {
    const view = viewWithPeer()
    view.disconnected(peerId(SELF), 10)
    expect(statusOf(view, SELF)).toBe('alive')
    expect(view.get(peerId(SELF))?.disconnectedAtMs).toBeUndefined()
    expect(view.tick(10_000)).toEqual([{ peerId: peerId(PEER), from: 'alive', to: 'dead' }])
  })
})

describe('alive()', () => {
  it('lists exactly the peers whose status is alive', () => {
    const view = new ClusterView(peerId(SELF), config)
    view.merge(state(SELF, 1, 0), 0)
    view.merge(state('A', 1, 0), 0)
    view.merge(state('B', 1, 0), 2500)
    view.merge(state('C', 1, 0), 1000)
    view.tick(3000) // A dead, C suspect, B alive, self alive
    expect(view.alive().map(s => s.peerId).sort()).toEqual([peerId(SELF), peerId('B')].sort())
    expect(statusOf(view, 'A')).toBe('dead')
    expect(statusOf(view, 'C')).toBe('suspect')
  })
})
