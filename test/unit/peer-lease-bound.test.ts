/**
 * What one peer may hold in reservations on a node (Ledger.admit's per-peer
 * bound): a count and a share of the node, a first lease always considered on
 * capacity alone, the node's own placements unbounded, and the room given
 * back when a lease is committed, released or expires.
 */
import { describe, expect, it } from 'vitest'
import { DEFAULT_PEER_LEASE_BOUND, Ledger } from '../../src/core/ledger.ts'
import type { Resources } from '../../src/core/resources.ts'

const r = (cpu: number, memMiB: number): Resources => ({ cpu, memMiB })
const CAP = r(16, 16384)
const TTL = 120_000
let n = 0
const lease = (): string => `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}`

describe('a peer\'s reservations are bounded', () => {
  it.each<{ name: string, held: Resources[], ask: Resources, ok: boolean, reason?: RegExp }>([
    { name: 'a first lease of the whole node', held: [], ask: r(16, 16384), ok: true },
    { name: 'a second lease within half the node', held: [r(4, 4096)], ask: r(4, 4096), ok: true },
    { name: 'a second lease past half the CPU', held: [r(4, 1024)], ask: r(5, 1024), ok: false, reason: /at most 50 % of the node/ },
    { name: 'a second lease past half the memory', held: [r(1, 4096)], ask: r(1, 4097), ok: false, reason: /at most 50 % of the node/ },
    { name: 'after a lease of the whole node, nothing more', held: [r(16, 16384)], ask: r(1, 1), ok: false, reason: /in reservations here/ }
  ])('$name → ok $ok', ({ held, ask, ok, reason }) => {
    const ledger = new Ledger(CAP)
    for (const h of held) expect(ledger.admit(lease(), h, undefined, TTL, 0, 'peer-a').ok).toBe(true)
    const res = ledger.admit(lease(), ask, undefined, TTL, 0, 'peer-a')
    expect(res.ok).toBe(ok)
    if (!res.ok) expect(res.reason).toMatch(reason!)
  })

  it('bounds the count of leases, whatever their size', () => {
    const ledger = new Ledger(r(1024, 1024 * 1024), 1, {}, { maxLeases: 3, maxShare: 1 })
    for (let i = 0; i < 3; i++) expect(ledger.admit(lease(), r(1, 1), undefined, TTL, 0, 'peer-a').ok).toBe(true)
    const res = ledger.admit(lease(), r(1, 1), undefined, TTL, 0, 'peer-a')
    expect(res).toEqual({ ok: false, reason: expect.stringMatching(/already holds 3 reservations here, the most one peer may \(3\)/) })
    // Another peer, and the node itself, are not held back by it.
    expect(ledger.admit(lease(), r(1, 1), undefined, TTL, 0, 'peer-b').ok).toBe(true)
    expect(ledger.admit(lease(), r(1, 1), undefined, TTL, 0).ok).toBe(true)
  })

  it('keeps room for the others: one peer cannot reserve the node by many small leases', () => {
    const ledger = new Ledger(CAP)
    let taken = 0
    while (ledger.admit(lease(), r(1, 512), undefined, TTL, 0, 'rogue').ok) taken++
    expect(taken).toBe(8)
    expect(ledger.heldBy('rogue')).toEqual({ count: 8, resources: r(8, 4096) })
    expect(ledger.admit(lease(), r(8, 8192), undefined, TTL, 0, 'honest').ok).toBe(true)
  })

  it('gives the room back when a lease is committed, released or expires', () => {
    const ledger = new Ledger(CAP)
    const [a, b, c] = [lease(), lease(), lease()]
    expect(ledger.admit(a, r(4, 4096), undefined, TTL, 0, 'p').ok).toBe(true)
    expect(ledger.admit(b, r(4, 4096), undefined, 1_000, 0, 'p').ok).toBe(true)
    expect(ledger.admit(c, r(1, 1), undefined, TTL, 0, 'p').ok).toBe(false)
    expect(ledger.commit(a, 'vm-aaaaaaaa', 10).ok).toBe(true)
    expect(ledger.heldBy('p')).toEqual({ count: 1, resources: r(4, 4096) })
    expect(ledger.admit(c, r(4, 4096), undefined, TTL, 20, 'p').ok).toBe(true)
    ledger.release(c, 30)
    ledger.expire(2_000)
    expect(ledger.heldBy('p')).toEqual({ count: 0, resources: r(0, 0) })
    expect(ledger.audit().reserved).toEqual(r(0, 0))
  })

  it('refuses a bound out of range when the ledger is made', () => {
    expect(() => new Ledger(CAP, 1, {}, { maxLeases: 0, maxShare: 0.5 })).toThrow(/maxLeases/)
    expect(() => new Ledger(CAP, 1, {}, { maxLeases: 4, maxShare: 1.5 })).toThrow(/maxShare/)
    expect(DEFAULT_PEER_LEASE_BOUND).toEqual({ maxLeases: 64, maxShare: 0.5 })
  })
})
