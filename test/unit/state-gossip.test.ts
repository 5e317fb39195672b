/**
 * State gossip as deltas: whatever sequence of changes a node goes through,
 * a peer that received its messages rebuilds exactly the states it published;
 * a whole state goes out first, after a new subscriber, and regularly; a
 * missed message costs VM-list freshness until the next whole state, never
 * a wrong list; bad input is refused with the field that is wrong.
 */
import type { Message, PeerId, TopicValidatorResult } from '@libp2p/interface'
import { describe, expect, it } from 'vitest'
import { PROTOCOL_VERSION, type NodeState, type VmSummary } from '../../src/core/messages.ts'
import { seededRng } from '../../src/core/rng.ts'
import { ManualClock } from '../../src/core/clock.ts'
import { STATE_TOPIC } from '../../src/net/protocols.ts'
import { FULL_EVERY_MS, MAX_DELTAS, StateGossip, type PubSubLike } from '../../src/net/state-gossip.ts'
import { peerId } from './fixtures.ts'

const A = peerId('A')
const enc = new TextEncoder()

function vm (n: number, state: VmSummary['state'] = 'creating', spread?: string): VmSummary {
  const id = `vm-${String(n).padStart(8, '0')}`
  const v: VmSummary = { id, name: id, cpu: 1, memMiB: 256, state, epoch: 0 }
  if (spread != null) v.spread = spread
  return v
}

function stateOf (seq: number, vms: VmSummary[], incarnation = 1): NodeState {
  return { v: PROTOCOL_VERSION, peerId: A, incarnation, seq, addrs: ['/ip4/127.0.0.1/tcp/4001'], capacity: { cpu: 64, memMiB: 65536 }, cpuOvercommit: 1, used: { cpu: vms.length, memMiB: 256 * vms.length }, reserved: { cpu: 0, memMiB: 0 }, labels: {}, vms }
}

class FakePubSub implements PubSubLike {
  readonly topicValidators = new Map<string, (peer: PeerId, msg: Message) => TopicValidatorResult | Promise<TopicValidatorResult>>()
  readonly listeners = new Map<string, Array<(evt: CustomEvent<any>) => void>>()
  readonly published: Uint8Array[] = []
  /** What gossipsub's publish resolves to: the peers the message went to. */
  result: unknown = {}
  subscribe (): void {}
  unsubscribe (): void {}
  async publish (_topic: string, data: Uint8Array): Promise<unknown> { this.published.push(data); return this.result }
  addEventListener (type: string, l: (evt: CustomEvent<any>) => void): void { this.listeners.set(type, [...(this.listeners.get(type) ?? []), l]) }
  removeEventListener (): void {}
  subscribed (peer: string): void {
    for (const l of this.listeners.get('subscription-change') ?? []) l(new CustomEvent('subscription-change', { detail: { peerId: { toString: () => peer }, subscriptions: [{ topic: STATE_TOPIC, subscribe: true }] } }))
  }
}

function pair (now = new ManualClock(0)) {
  const pubsub = new FakePubSub()
  const sender = new StateGossip({ pubsub, onState: () => {}, onInvalid: () => {}, clock: now })
  sender.start()
  const gaps: string[] = []
  const receiver = new StateGossip({ pubsub: new FakePubSub(), onState: () => {}, onInvalid: () => {}, onGap: (from) => { gaps.push(from) }, clock: new ManualClock(0) })
  const send = async (s: NodeState): Promise<{ whole: boolean, bytes: Uint8Array }> => {
    await sender.publish(s)
    const bytes = pubsub.published[pubsub.published.length - 1]
    return { whole: !('delta' in JSON.parse(new TextDecoder().decode(bytes))), bytes }
  }
  return { pubsub, sender, receiver, send, now, gaps }
}

describe('StateGossip deltas', () => {
  it('rebuilds every published state exactly, through any sequence of changes', async () => {
    const { receiver, send, now } = pair()
    const rng = seededRng(7)
    let vms: VmSummary[] = []
    let next = 0
    let deltas = 0
    for (let seq = 1; seq <= 300; seq++) {
      now.advance(700)
      const r = rng.next()
      if (r < 0.5) for (let i = 0; i < 1 + Math.floor(rng.next() * 5); i++) vms = [...vms, vm(next++, 'creating', rng.next() < 0.2 ? 'web' : undefined)]
      else if (r < 0.7 && vms.length > 0) vms = vms.filter((_, i) => i !== Math.floor(rng.next() * vms.length))
      else if (vms.length > 0) {
        const i = Math.floor(rng.next() * vms.length)
        vms = vms.map((v, j) => j === i ? { ...v, state: v.state === 'creating' ? 'running' : 'migrating', epoch: v.epoch + (v.state === 'running' ? 1 : 0) } : v)
      }
      const published = stateOf(seq, vms)
      const { whole, bytes } = await send(published)
      if (!whole) deltas++
      expect(receiver.receive(A, bytes)).toEqual(published)
    }
    expect(deltas).toBeGreaterThan(200)
  })

  it('sends a whole state first, after a new subscriber, every FULL_EVERY_MS and every MAX_DELTAS publishes', async () => {
    const { pubsub, send, now } = pair()
    const vms = Array.from({ length: 20 }, (_, i) => vm(i))
    expect((await send(stateOf(1, vms))).whole).toBe(true)
    expect((await send(stateOf(2, vms))).whole).toBe(false)
    pubsub.subscribed(peerId('B'))
    expect((await send(stateOf(3, vms))).whole).toBe(true)
    const kinds: boolean[] = []
    for (let seq = 4; seq < 4 + MAX_DELTAS + 1; seq++) kinds.push((await send(stateOf(seq, vms))).whole)
    expect(kinds).toEqual([...Array.from({ length: MAX_DELTAS }, () => false), true])
    now.advance(FULL_EVERY_MS)
    expect((await send(stateOf(100, vms))).whole).toBe(true)
    // A delta that would be about as large as the state goes whole.
    expect((await send(stateOf(101, Array.from({ length: 20 }, (_, i) => vm(100 + i))))).whole).toBe(true)
  })

  it('says how many peers a publish went to; after one that went to none, the next is whole', async () => {
    const { pubsub, sender, send } = pair()
    const vms = Array.from({ length: 20 }, (_, i) => vm(i))
    pubsub.result = { recipients: ['B', 'C'] }
    expect(await sender.publish(stateOf(1, vms))).toBe(2)
    pubsub.result = { recipients: [] }
    expect(await sender.publish(stateOf(2, vms))).toBe(0)
    pubsub.result = {}
    expect((await send(stateOf(3, vms))).whole).toBe(true)
    expect((await send(stateOf(4, vms))).whole).toBe(false)
    expect(await sender.publish(stateOf(5, vms))).toBeUndefined()
  })

  it('after a missed message, applies the later deltas\' changes with the fresh usage, and is exact again with the next whole state', async () => {
    const { receiver, send, gaps } = pair()
    const base = [vm(1), vm(2), vm(3)]
    receiver.receive(A, (await send(stateOf(1, base))).bytes)
    await send(stateOf(2, [...base, vm(4)]))  // missed: vm 4 is not known here until a whole state
    const third = stateOf(3, [...base, vm(4), vm(5)])
    const got = receiver.receive(A, (await send(third)).bytes)!
    expect(got.seq).toBe(3)
    expect(got.used).toEqual(third.used)
    expect(got.vms).toEqual([...base, vm(5)])
    expect(gaps).toEqual([A])
    // Still inexact: a later delta applies too (vm 2 gone, vm 6 added), and the gap is counted once.
    const fourth = stateOf(4, [vm(1), vm(3), vm(4), vm(5), vm(6)])
    expect(receiver.receive(A, (await send(fourth)).bytes)!.vms).toEqual([vm(1), vm(3), vm(5), vm(6)])
    expect(gaps).toEqual([A])
    // A delta older than what was applied (overtaken) changes nothing.
    const overtaken = { ...stateOf(3, [vm(9)]), delta: { base: 2, removed: [vm(1).id], count: 5 } }
    expect(receiver.receive(A, enc.encode(JSON.stringify(overtaken)))!.vms).toEqual([vm(1), vm(3), vm(5), vm(6)])
    // Whole again (here: the delta would not be smaller than the state).
    const fifth = stateOf(5, [vm(7)])
    expect(receiver.receive(A, (await send(fifth)).bytes)).toEqual(fifth)
  })

  it('does not deliver a delta from a peer it holds nothing of', async () => {
    const { send } = pair()
    await send(stateOf(1, [vm(1), vm(2), vm(3)]))
    const late = new StateGossip({ pubsub: new FakePubSub(), onState: () => {}, onInvalid: () => {}, clock: new ManualClock(0) })
    expect(late.receive(A, (await send(stateOf(2, [vm(1), vm(2), vm(3), vm(4)]))).bytes)).toBeUndefined()
  })

  it('takes an identical summary as already checked, and checks anything else', async () => {
    const { receiver, send } = pair()
    const first = receiver.receive(A, (await send(stateOf(1, [vm(1), vm(2)]))).bytes)!
    const again = receiver.receive(A, enc.encode(JSON.stringify(stateOf(2, [vm(1), vm(2)]))))!
    expect(again.vms[0]).toBe(first.vms[0])
    const sneaky = { ...stateOf(3, []), vms: [{ ...vm(1), extra: true }] }
    expect(() => receiver.receive(A, enc.encode(JSON.stringify(sneaky)))).toThrow(/vms\.0/)
    const bad = { ...stateOf(3, []), vms: [vm(1), { ...vm(2), cpu: -1 }] }
    expect(() => receiver.receive(A, enc.encode(JSON.stringify(bad)))).toThrow(/vms\.1\.cpu/)
  })

  it('refuses a state signed by another peer, a delta based on itself, and garbage', () => {
    const receiver = new StateGossip({ pubsub: new FakePubSub(), onState: () => {}, onInvalid: () => {}, clock: new ManualClock(0) })
    expect(() => receiver.receive(peerId('B'), enc.encode(JSON.stringify(stateOf(1, []))))).toThrow(/signed by/)
    const selfBased = { ...stateOf(5, []), delta: { base: 5, removed: [], count: 0 } }
    expect(() => receiver.receive(A, enc.encode(JSON.stringify(selfBased)))).toThrow(/delta\.base/)
    const badRemoved = { ...stateOf(5, []), delta: { base: 4, removed: ['not-a-vm'], count: 0 } }
    expect(() => receiver.receive(A, enc.encode(JSON.stringify(badRemoved)))).toThrow(/delta\.removed/)
    expect(() => receiver.receive(A, enc.encode('not json'))).toThrow(/JSON/)
  })
})
