/**
 * What a view sync answers (net/view-sync.ts, `newerStates`): the states the
 * answering agent holds newer than the asker's, or that the asker lacks, never
 * the asker's own, and no more than fits in one message (`more` then says so);
 * a newer state still fresh (gossip is bringing it) only to an asker that lacks its peer.
 */
import { describe, expect, it } from 'vitest'
import type { NodeState } from '../../src/core/messages.ts'
import { newerStates } from '../../src/net/view-sync.ts'

const peer = (i: number): string => `12D3KooWPeer${String(i).padStart(4, '0')}`
const state = (i: number, incarnation: number, seq: number, vms = 0): NodeState => ({
  v: 1, peerId: peer(i), incarnation, seq, addrs: ['/ip4/127.0.0.1/tcp/4001'], capacity: { cpu: 8, memMiB: 16384 }, cpuOvercommit: 1,
  used: { cpu: 0, memMiB: 0 }, reserved: { cpu: 0, memMiB: 0 }, labels: {},
  vms: Array.from({ length: vms }, (_, k) => ({ id: `vm-${String(i).padStart(4, '0')}${String(k).padStart(8, '0')}`, name: 'x', cpu: 1, memMiB: 256, state: 'running' as const, epoch: 0 }))
})

describe('newerStates', () => {
  it('answers what the asker lacks or holds older, by incarnation then seq, and never the asker\'s own state', () => {
    const held = [state(1, 10, 5), state(2, 10, 5), state(3, 10, 5), state(4, 20, 1), state(9, 1, 1)]
    const res = newerStates(held, [[peer(1), 10, 5], [peer(2), 10, 4], [peer(4), 10, 99], [peer(3), 11, 0]], peer(9), 1024 * 1024)
    expect(res.states.map(s => s.peerId)).toEqual([peer(2), peer(4)])
    expect(res.more).toBeUndefined()
  })

  it('leaves out a fresh newer state of a peer the asker knows, never one of a peer it lacks', () => {
    const held = [state(1, 10, 6), state(2, 10, 6), state(3, 10, 6)]
    const fresh = (s: NodeState): boolean => s.peerId !== peer(2)
    const res = newerStates(held, [[peer(1), 10, 5], [peer(2), 10, 5]], peer(9), 1024 * 1024, fresh)
    // 1: fresh, gossip is bringing it; 2: held long enough to relay; 3: the asker lacks it, fresh or not.
    expect(res.states.map(s => s.peerId)).toEqual([peer(2), peer(3)])
    expect(newerStates(held, [[peer(1), 10, 5], [peer(2), 10, 5]], peer(9), 1024 * 1024).states).toHaveLength(3)
  })

  it('stops short of the size limit and says there is more', () => {
    const held = Array.from({ length: 20 }, (_, i) => state(i, 1, 1, 50))
    const one = JSON.stringify(held[0]).length
    const res = newerStates(held, [], peer(99), 1024 + 5 * (one + 1))
    expect(res.states).toHaveLength(5)
    expect(res.more).toBe(true)
  })
})
