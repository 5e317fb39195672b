/**
 * A holder's records (agent/holdings.ts) on a real SQLite store, with real
 * Ed25519 keys: it takes a record only from its owner (the sender's identity,
 * not its signatures, which later verifiers check), with a designation of the
 * record's head naming it; it never trades a later head for an earlier one,
 * nor for a chain that does not reach the one it holds (a rogue cannot
 * overwrite a record); a tombstone refuses the VM's records; all of it
 * survives a reopen.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { Holdings } from '../../src/agent/holdings.ts'
import { DEFAULT_REPLICA } from '../../src/core/replica-rule.ts'
import { designate, extend, headOf, makeTombstone, migrateLink, originLink } from '../../src/core/ownership.ts'
import type { Chain } from '../../src/core/ownership-messages.ts'
import type { ReplicaRecord } from '../../src/core/replica-messages.ts'
import { ReplicaStore, Store } from '../../src/store/index.ts'
import { type Identity, identities } from '../unit/signers.ts'

let O: Identity, B: Identity, H: Identity, X: Identity
const VM = 'vm-0123456789ab'
const cleanup: Array<() => void> = []
afterEach(() => { for (const f of cleanup.splice(0)) f() })

beforeAll(async () => { [O, B, H, X] = await identities(4) })

function open (dir = mkdtempSync(join(tmpdir(), 'discovery-holdings-'))): { holdings: Holdings, dir: string, close: () => void } {
  const store = Store.open(dir)
  let now = 1_000
  const holdings = new Holdings({ self: H.id, signer: H.signer, store: new ReplicaStore(store), config: DEFAULT_REPLICA, now: () => now++ })
  holdings.load()
  const close = (): void => { store.close() }
  cleanup.push(() => { close(); rmSync(dir, { recursive: true, force: true }) })
  return { holdings, dir, close }
}

function record (chain: Chain, by: Identity, holders = [H.id], issuedAtMs = 1): ReplicaRecord {
  return {
    spec: { id: VM, name: 'web', cpu: 1, memMiB: 256, createdAtMs: 1, restartPolicy: 'always' },
    chain,
    designation: designate(VM, headOf(chain), holders, issuedAtMs, by.signer)
  }
}

const created = (): Chain => [originLink(VM, O.signer)]
const movedToB = (): Chain => extend(created(), migrateLink(created(), B.id, O.signer))

describe('Holdings', () => {
  it.each([
    { name: 'from another peer than its owner', from: () => X.id, rec: () => record(created(), O), reason: /not by its sender/, forged: true },
    { name: 'whose designation is of another head', from: () => B.id, rec: () => ({ ...record(movedToB(), B), designation: record(created(), O).designation }), reason: /not of the record's head/, forged: true },
    { name: 'with a designation that does not name this node', from: () => O.id, rec: () => record(created(), O, [B.id]), reason: /does not name this node/, forged: false }
  ])('refuses a record $name', ({ from, rec, reason, forged }) => {
    const { holdings } = open()
    const refused = holdings.put(from(), [rec()])
    expect(refused).toHaveLength(1)
    expect(refused[0].reason).toMatch(reason)
    expect(refused[0].forged).toBe(forged)
    expect(holdings.get(VM)).toBeUndefined()
  })

  it('takes its owner\'s record, a later designation, and the next owner\'s record; never an earlier one, never a rogue\'s', () => {
    const { holdings } = open()
    expect(holdings.put(O.id, [record(created(), O)])).toEqual([])
    expect(holdings.ofOwner(O.id).map(r => r.record.spec.id)).toEqual([VM])
    // A new designation at the same head (the owner's ring changed).
    expect(holdings.put(O.id, [record(created(), O, [H.id, B.id], 5)])).toEqual([])
    expect(holdings.get(VM)?.record.designation.replicas).toEqual([H.id, B.id])
    expect(holdings.put(O.id, [record(created(), O, [H.id], 2)])[0].reason).toMatch(/later designation/)
    // A rogue's own chain at a higher epoch does not reach the one held.
    const rogue = [originLink(VM, X.signer, 9)]
    const r = holdings.put(X.id, [record(rogue, X)])
    expect(r[0]).toMatchObject({ forged: true, reason: expect.stringMatching(/shares no link/) })
    // The VM migrated to B: B's record reaches O's.
    expect(holdings.put(B.id, [record(movedToB(), B)])).toEqual([])
    expect(holdings.ofOwner(B.id).map(x => x.record.spec.id)).toEqual([VM])
    expect(holdings.ofOwner(O.id)).toEqual([])
    // O, stale, sends its older head again.
    expect(holdings.put(O.id, [record(created(), O, [H.id], 9)])[0].reason).toMatch(/later head/)
  })

  it('drops its replica once this node runs the VM at a later head, not at the same or an earlier one', () => {
    const { holdings } = open()
    expect(holdings.put(O.id, [record(created(), O)])).toEqual([])
    expect(holdings.supersededBy(VM, created())).toBe(false)
    expect(holdings.supersededBy(VM, [])).toBe(false)
    expect(holdings.get(VM)).toBeDefined()
    expect(holdings.supersededBy(VM, movedToB())).toBe(true)
    expect(holdings.get(VM)).toBeUndefined()
    expect(holdings.ofOwner(O.id)).toEqual([])
    expect(holdings.supersededBy(VM, movedToB())).toBe(false)
  })

  it('takes a record handed over by another holder only with sound signatures, naming both, its owner dead', () => {
    const { holdings } = open()
    const dead = (owner: string): boolean => owner === O.id
    const named = (): ReplicaRecord => record(created(), O, [B.id, H.id])
    // Signed by the wrong peer: the designation, the chain.
    const asO = { ...X.signer, self: O.id }
    const forgedDesignation = { ...named(), designation: designate(VM, headOf(created()), [B.id, H.id], 1, asO) }
    expect(holdings.handOver(B.id, [forgedDesignation], dead)[0]).toMatchObject({ forged: true, reason: expect.stringMatching(/not signed by its owner/) })
    const forgedChain = record([originLink(VM, asO)], O, [B.id, H.id])
    expect(holdings.handOver(B.id, [forgedChain], dead)[0].forged).toBe(true)
    // Sent by a peer the designation does not name.
    expect(holdings.handOver(X.id, [named()], dead)[0]).toMatchObject({ forged: true, reason: expect.stringMatching(/does not name its sender/) })
    // Its owner alive here: not ours to restart, not taken.
    expect(holdings.handOver(B.id, [named()], () => false)[0]).toMatchObject({ forged: false, reason: expect.stringMatching(/not dead here/) })
    expect(holdings.get(VM)).toBeUndefined()
    // Sound, owner dead: taken as if its owner had sent it, and a designation not naming us is still refused.
    expect(holdings.handOver(B.id, [named()], dead)).toEqual([])
    expect(holdings.get(VM)?.record.designation.replicas).toEqual([B.id, H.id])
    expect(holdings.ofOwner(O.id)).toHaveLength(1)
    const elsewhere = { ...named(), designation: designate(VM, headOf(created()), [B.id, X.id], 9, O.signer) }
    expect(holdings.handOver(B.id, [elsewhere], dead)[0].reason).toMatch(/does not name this node/)
  })

  it('refuses the records a tombstone deletes, keeps it across a reopen, and drops it past its time', () => {
    const first = open()
    expect(first.holdings.put(O.id, [record(created(), O)])).toEqual([])
    first.holdings.addTombstones([makeTombstone(created(), 5, O.signer)])
    expect(first.holdings.drop([VM])).toEqual([VM])
    first.close()
    const store = Store.open(first.dir)
    let now = 2_000
    const again = new Holdings({ self: H.id, signer: H.signer, store: new ReplicaStore(store), config: { ...DEFAULT_REPLICA, tombstoneKeepMs: 10_000 }, now: () => now })
    expect(again.load()).toEqual({ replicas: 0, tombstones: 1, corrupt: 0 })
    // The VM restarted elsewhere from O's head is deleted too; so is O's own record.
    expect(again.put(O.id, [record(created(), O)])[0].reason).toMatch(/was deleted/)
    expect(again.put(B.id, [record(movedToB(), B)])[0].reason).toMatch(/was deleted/)
    now += 20_000
    again.expire()
    expect(again.tombstoneCount).toBe(0)
    expect(again.put(O.id, [record(created(), O)])).toEqual([])
    store.close()
  })
})
