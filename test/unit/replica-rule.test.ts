/**
 * The replica rules (core/replica-rule.ts): who holds an owner's VMs as the
 * ring changes, which holder restarts a dead owner's VM (one of them, the next
 * one only when that one is declared dead too), `never` reported lost, a
 * tombstone refusing every restart, and the quorum of the stricter mode.
 */
import { describe, expect, it } from 'vitest'
import type { PeerStatus } from '../../src/core/cluster-view.ts'
import type { Designation } from '../../src/core/ownership-messages.ts'
import { decideRestart, hasQuorum, quorumSize, replicaMoves, replicaSet, restarterOf, sameHolders } from '../../src/core/replica-rule.ts'
import { Ring } from '../../src/core/ring.ts'

const PEERS = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel']

function designation (owner: string, replicas: string[]): Designation {
  return { vmId: 'vm-0123456789ab', epoch: 3, owner, replicas, issuedAtMs: 0, sig: `${'A'.repeat(86)}==` }
}

function statuses (s: Record<string, PeerStatus>): (p: string) => PeerStatus | undefined {
  return p => s[p]
}

describe('who holds an owner\'s VMs', () => {
  const ring = new Ring(PEERS)
  const order = ring.ids()
  const at = (i: number): string => order[((i % order.length) + order.length) % order.length]

  it('the k peers after the owner, in ring order', () => {
    expect(replicaSet(ring, at(0), 2)).toEqual([at(1), at(2)])
    expect(replicaSet(ring, at(7), 3)).toEqual([at(0), at(1), at(2)])
    // Fewer peers than k: every other one.
    expect(replicaSet(new Ring([at(0), at(1)]), at(0), 2)).toEqual([at(1)])
    expect(replicaSet(new Ring([at(0)]), at(0), 2)).toEqual([])
  })

  it.each([
    { name: 'a holder died: the next peer joins, the dead one is dropped', change: (ids: string[]) => ids.filter(p => p !== at(1)), push: () => [at(3)], drop: () => [at(1)] },
    { name: 'a peer joined between the owner and its holders: it joins, the last one leaves', change: (ids: string[]) => ids, before: (ids: string[]) => ids.filter(p => p !== at(1)), push: () => [at(1)], drop: () => [at(3)] },
    { name: 'a peer died elsewhere on the ring: nothing moves', change: (ids: string[]) => ids.filter(p => p !== at(5)), push: () => [], drop: () => [] }
  ])('$name', ({ change, before, push, drop }) => {
    const owner = at(0)
    const was = replicaSet(new Ring((before ?? (ids => ids))([...order])), owner, 2)
    const now = replicaSet(new Ring(change([...order])), owner, 2)
    expect(replicaMoves(was, now)).toEqual({ push: push(), drop: drop() })
    expect(sameHolders(was, now)).toBe(push().length === 0 && drop().length === 0)
  })

  it('with failure domains, skips the peers of the owner\'s domain and of the holders already chosen', () => {
    // Processes of two agents each, by ring position: {0,1}, {2,3}, {4,5}, {6,7}.
    const domainOf = (p: string): string => `proc-${Math.floor(order.indexOf(p) / 2)}`
    expect(replicaSet(ring, at(0), 2, domainOf)).toEqual([at(2), at(4)])
    expect(replicaSet(ring, at(1), 2, domainOf)).toEqual([at(2), at(4)])
    expect(replicaSet(ring, at(7), 3, domainOf)).toEqual([at(0), at(2), at(4)])
    // A peer alone in its domain (undefined) is never skipped.
    expect(replicaSet(ring, at(0), 2, p => p === at(1) ? undefined : domainOf(p))).toEqual([at(1), at(2)])
    // Each agent its own domain: the k next peers, as without domains.
    expect(replicaSet(ring, at(3), 3, p => p)).toEqual(replicaSet(ring, at(3), 3))
    // Too few domains (two): the nearest skipped peer fills in, the set back in ring order.
    const two = (p: string): string => `half-${order.indexOf(p) < 4 ? 0 : 1}`
    expect(replicaSet(ring, at(0), 2, two)).toEqual([at(1), at(4)])
    expect(replicaSet(ring, at(0), 3, two)).toEqual([at(1), at(2), at(4)])
    // An owner not on the ring (declared dead): its successors by hash, with the same rule.
    const without = new Ring(order.filter(p => p !== at(0)))
    expect(replicaSet(without, at(0), 2, domainOf)).toEqual([at(2), at(4)])
  })

  it('with failure domains, a domain\'s death never takes an owner with all its holders when other domains remain (random rings, seed printed)', () => {
    const seed = Number(process.env.REPLICA_SEED ?? Date.now() % 100_000)
    process.stdout.write(`replica domains: seed ${seed} (REPLICA_SEED=N to replay)\n`)
    let x = seed
    const rand = (n: number): number => { x = (x * 1_103_515_245 + 12_345) % 2 ** 31; return x % n }
    for (let trial = 0; trial < 200; trial++) {
      const peers = Array.from({ length: 3 + rand(30) }, (_, i) => `p${trial}-${i}`)
      const domains = 1 + rand(peers.length)
      const dom = new Map(peers.map(p => [p, `d${rand(domains)}`]))
      const r = new Ring(peers)
      const k = 1 + rand(3)
      for (const owner of peers) {
        const set = replicaSet(r, owner, k, p => dom.get(p))
        expect(set.length, `seed ${seed} trial ${trial}`).toBe(Math.min(k, peers.length - 1))
        expect(new Set(set).size).toBe(set.length)
        expect(set).not.toContain(owner)
        const others = new Set([...dom.values()].filter(d => d !== dom.get(owner)))
        // As many distinct domains besides the owner's among the holders as there can be.
        expect(new Set(set.map(p => dom.get(p)).filter(d => d !== dom.get(owner))).size, `seed ${seed} trial ${trial}`).toBe(Math.min(k, others.size))
      }
    }
  })

  it('a new order of the same holders is a change (the order decides the restarter)', () => {
    expect(sameHolders(['a', 'b'], ['b', 'a'])).toBe(false)
    expect(sameHolders(['a', 'b'], ['a', 'b'])).toBe(true)
  })
})

describe('who restarts a dead owner\'s VM', () => {
  const d = designation('owner', ['r1', 'r2'])
  const always = { designation: d, policy: 'always' as const }
  const never = { designation: d, policy: 'never' as const }

  it.each([
    { name: 'the owner is alive: nobody', replica: always, self: 'r1', s: { owner: 'alive', r1: 'alive', r2: 'alive' }, want: { kind: 'none', reason: 'owner-not-dead' } },
    { name: 'the owner is only suspect: nobody yet', replica: always, self: 'r1', s: { owner: 'suspect', r2: 'alive' }, want: { kind: 'none', reason: 'owner-not-dead' } },
    { name: 'dead owner: the first holder restarts', replica: always, self: 'r1', s: { owner: 'dead', r2: 'alive' }, want: { kind: 'restart' } },
    { name: 'dead owner: the second holder waits for the first', replica: always, self: 'r2', s: { owner: 'dead', r1: 'alive' }, want: { kind: 'wait', restarter: 'r1' } },
    { name: 'a suspect restarter is still waited for (no second restart in a connected cluster)', replica: always, self: 'r2', s: { owner: 'dead', r1: 'suspect' }, want: { kind: 'wait', restarter: 'r1' } },
    { name: 'the first holder died too: the second takes over', replica: always, self: 'r2', s: { owner: 'dead', r1: 'dead' }, want: { kind: 'restart' } },
    { name: 'a holder forgotten by the view counts as gone', replica: always, self: 'r2', s: { owner: 'dead' }, want: { kind: 'restart' } },
    { name: 'an owner forgotten by the view counts as dead', replica: always, self: 'r1', s: { r2: 'alive' }, want: { kind: 'restart' } },
    { name: '`never`: the restarter reports it lost', replica: never, self: 'r1', s: { owner: 'dead', r2: 'alive' }, want: { kind: 'lost' } },
    { name: '`never`: the others wait (one report)', replica: never, self: 'r2', s: { owner: 'dead', r1: 'alive' }, want: { kind: 'wait', restarter: 'r1' } },
    { name: 'a holder the designation does not name: nothing', replica: always, self: 'r3', s: { owner: 'dead', r1: 'dead', r2: 'dead' }, want: { kind: 'none', reason: 'not-designated' } }
  ])('$name', ({ replica, self, s, want }) => {
    expect(decideRestart(replica, self, statuses(s as Record<string, PeerStatus>), false)).toEqual(want)
  })

  it('a tombstone refuses every restart of its VM', () => {
    expect(decideRestart(always, 'r1', statuses({ owner: 'dead' }), true)).toEqual({ kind: 'none', reason: 'deleted' })
    expect(decideRestart(never, 'r1', statuses({ owner: 'dead' }), true)).toEqual({ kind: 'none', reason: 'deleted' })
  })

  it('exactly one holder restarts, whatever the holders that died, as long as one lives', () => {
    const holders = ['r1', 'r2', 'r3']
    const dd = { designation: designation('owner', holders), policy: 'always' as const }
    for (let mask = 0; mask < 8; mask++) {
      const s: Record<string, PeerStatus> = { owner: 'dead' }
      holders.forEach((h, i) => { s[h] = (mask & (1 << i)) !== 0 ? 'dead' : 'alive' })
      const living = holders.filter(h => s[h] === 'alive')
      const restarting = living.filter(h => decideRestart(dd, h, statuses(s), false).kind === 'restart')
      expect(restarting, `dead mask ${mask}`).toEqual(living.slice(0, 1))
      expect(restarterOf(dd.designation, statuses(s))).toBe(living[0])
    }
  })
})

describe('the quorum mode', () => {
  it.each([
    { k: 1, size: 2 },
    { k: 2, size: 2 },
    { k: 3, size: 3 },
    { k: 4, size: 3 }
  ])('k = $k: $size of the k + 1 confirm', ({ k, size }) => {
    expect(quorumSize(designation('owner', Array.from({ length: k }, (_, i) => `r${i}`)))).toBe(size)
  })

  it('counts only the designated holders', () => {
    const d = designation('owner', ['r1', 'r2'])
    expect(hasQuorum(d, new Set(['r1']))).toBe(false)
    expect(hasQuorum(d, new Set(['r1', 'stranger']))).toBe(false)
    expect(hasQuorum(d, new Set(['r1', 'r2']))).toBe(true)
  })
})
