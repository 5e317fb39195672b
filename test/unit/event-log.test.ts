import { describe, expect, it } from 'vitest'
import { EventLog } from '../../src/agent/event-log.ts'
import type { AgentEvent } from '../../src/agent/events.ts'
import { ManualClock } from '../../src/core/clock.ts'

const peer = (n: number): { peerId: string } => ({ peerId: `peer-${n}` })

function log (capacity?: number): { events: EventLog, clock: ManualClock } {
  const clock = new ManualClock(1_000)
  return { events: new EventLog({ clock, capacity }), clock }
}

describe('EventLog', () => {
  it('gives each event the next id and the clock\'s time, and says which is the newest', () => {
    const { events, clock } = log()
    expect(events.lastId).toBe(0)
    const a = events.emit('peer.joined', peer(1))
    clock.advance(250)
    const b = events.emit('vm.deleted', { id: 'vm-aaaaaa', node: 'peer-1' })
    expect([a.id, b.id]).toEqual([1, 2])
    expect([a.atMs, b.atMs]).toEqual([1_000, 1_250])
    expect(b).toMatchObject({ type: 'vm.deleted', data: { id: 'vm-aaaaaa', node: 'peer-1' } })
    expect(events.lastId).toBe(2)
  })

  it('keeps only the last `capacity` events, and refuses a capacity that is not a whole number >= 1', () => {
    const { events } = log(3)
    for (let i = 1; i <= 5; i++) events.emit('peer.joined', peer(i))
    expect(events.since(0).events.map(e => e.id)).toEqual([3, 4, 5])
    for (const bad of [0, -1, 1.5, Number.NaN]) {
      expect(() => new EventLog({ clock: new ManualClock(), capacity: bad })).toThrow(/capacity.*whole number >= 1/)
    }
  })

  it.each([
    // [afterId, types, ids returned, missed]
    [0, undefined, [4, 5, 6, 7, 8], 3],
    [2, undefined, [4, 5, 6, 7, 8], 1],
    [3, undefined, [4, 5, 6, 7, 8], 0],
    [6, undefined, [7, 8], 0],
    [8, undefined, [], 0],
    [0, ['vm.deleted'], [5, 7], 3],
    [5, ['vm.deleted'], [7], 0],
    [1, ['peer.joined', 'vm.deleted'], [4, 5, 6, 7, 8], 2],
    [6, ['vm.running'], [], 0]
  ] as Array<[number, string[] | undefined, number[], number]>)('since(%i, %j) replays %j and reports %i missed', (afterId, types, ids, missed) => {
    // Eight events, 5 and 7 of type vm.deleted, the others peer.joined; the last five kept.
    const { events } = log(5)
    for (let i = 1; i <= 8; i++) {
      if (i === 5 || i === 7) events.emit('vm.deleted', { id: `vm-00000${i}`, node: 'peer-1' })
      else events.emit('peer.joined', peer(i))
    }
    const replay = events.since(afterId, types != null ? new Set(types) : undefined)
    expect(replay.events.map(e => e.id)).toEqual(ids)
    expect(replay.missed).toBe(missed)
  })

  it('reports nothing missed on an empty log', () => {
    const { events } = log(2)
    expect(events.since(0)).toEqual({ events: [], missed: 0 })
  })

  it('calls listeners of a type and listeners of every event, until removed', () => {
    const { events } = log()
    const joined: number[] = []
    const all: string[] = []
    const offJoined = events.on('peer.joined', e => { joined.push(e.id) })
    const offAll = events.onAny(e => { all.push(e.type) })
    expect(events.listenerCount).toBe(2)
    events.emit('peer.joined', peer(1))
    events.emit('peer.dead', { peerId: 'peer-1', from: 'suspect' })
    offJoined()
    expect(events.listenerCount).toBe(1)
    events.emit('peer.joined', peer(2))
    offAll()
    offAll()
    expect(events.listenerCount).toBe(0)
    events.emit('peer.joined', peer(3))
    expect(joined).toEqual([1])
    expect(all).toEqual(['peer.joined', 'peer.dead', 'peer.joined'])
  })

  it('goes on to the other listeners, and to the buffer, when one throws', () => {
    const { events } = log()
    const seen: AgentEvent[] = []
    events.on('peer.joined', () => { throw new Error('typed listener failed') })
    events.onAny(() => { throw new Error('listener failed') })
    events.on('peer.joined', e => { seen.push(e) })
    events.onAny(e => { seen.push(e) })
    expect(() => events.emit('peer.joined', peer(1))).not.toThrow()
    expect(seen.map(e => e.id)).toEqual([1, 1])
    expect(events.since(0).events).toHaveLength(1)
  })
})
