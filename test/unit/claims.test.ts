/**
 * Fencing with proofs (agent/claims.ts), with in-memory stand-ins for the
 * local node, the holdings and the network, and real Ed25519 keys: a
 * gossiped epoch above ours is believed only once its chain is fetched and
 * checked; a valid one stops our copy or drops our replica, a forged one is
 * refused and counted once however often it is gossiped; a peer running an
 * older copy of ours is sent our proof; a peer running a deleted VM is sent
 * its tombstone.
 */
import { beforeAll, describe, expect, it } from 'vitest'
import { Claims } from '../../src/agent/claims.ts'
import type { VmSummary } from '../../src/core/messages.ts'
import { designate, extend, headOf, makeTombstone, migrateLink, originLink, restartLink } from '../../src/core/ownership.ts'
import type { Chain, Tombstone } from '../../src/core/ownership-messages.ts'
import { type Identity, identities } from './signers.ts'

let A: Identity, B: Identity, C: Identity, R: Identity, X: Identity
const VM = 'vm-0123456789ab'

beforeAll(async () => { [A, B, C, R, X] = await identities(5) })

function summary (epoch: number): VmSummary {
  return { id: VM, name: 'web', cpu: 1, memMiB: 256, state: 'running', epoch }
}

async function settle (): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise(resolve => setImmediate(resolve))
}

function harness (init: { copy?: Chain, replica?: Chain, tombstone?: Tombstone, theirs?: Map<string, Chain> }) {
  const fenced: Array<[string, string, number]> = []
  const refused: string[] = []
  const dropped: string[] = []
  const fetched: string[] = []
  const proofsSent: Array<[string, string[]]> = []
  const tombstonesSent: string[] = []
  let replica = init.replica
  const claims = new Claims({
    signer: A.signer,
    local: { get: (id: string) => id === VM && init.copy != null ? { chain: init.copy, epoch: headOf(init.copy).epoch } : undefined } as any,
    holdings: {
      get: (id: string) => id === VM && replica != null ? { record: { chain: replica } } : undefined,
      tombstone: (id: string) => id === VM ? init.tombstone : undefined,
      drop: (ids: string[]) => { dropped.push(...ids); replica = undefined; return ids }
    } as any,
    now: () => 0,
    fetchChains: async (peer, vmIds) => {
      fetched.push(peer)
      return new Map(vmIds.filter(id => init.theirs?.has(peer) === true).map(id => [id, init.theirs!.get(peer)!]))
    },
    sendTombstone: async (peer) => { tombstonesSent.push(peer) },
    sendChains: async (peer, chains) => { proofsSent.push([peer, chains.map(c => c.vmId)]) },
    fence: (vmId, owner, epoch) => { fenced.push([vmId, owner, epoch]) },
    refused: (_vmId, _from, reason) => { refused.push(reason) }
  })
  return { claims, fenced, refused, dropped, fetched, proofsSent, tombstonesSent }
}

const atA = (): Chain => [originLink(VM, A.signer)]

describe('Claims', () => {
  it('stops our copy on a proved claim: a migration we signed (an in-doubt commit that went through)', async () => {
    const theirs = extend(atA(), migrateLink(atA(), B.id, A.signer))
    const h = harness({ copy: atA(), theirs: new Map([[B.id, theirs]]) })
    h.claims.seen(B.id, [summary(1)])
    await settle()
    expect(h.fetched).toEqual([B.id])
    expect(h.fenced).toEqual([[VM, B.id, 1]])
    expect(h.refused).toEqual([])
  })

  it('drops our replica on a proved claim: the VM was restarted from the head we hold', async () => {
    const d = designate(VM, headOf(atA()), [R.id, C.id], 1, A.signer)
    const theirs = extend(atA(), restartLink(atA(), d, C.id, R.signer))
    const h = harness({ replica: atA(), theirs: new Map([[C.id, theirs]]) })
    h.claims.seen(C.id, [summary(1)])
    await settle()
    expect(h.dropped).toEqual([VM])
    expect(h.fenced).toEqual([])
  })

  it('refuses a forged claim once, however often it is gossiped, and keeps our copy', async () => {
    const forged = extend(atA(), { ...migrateLink(atA(), X.id, { ...X.signer, self: A.id }) })
    const h = harness({ copy: atA(), theirs: new Map([[X.id, forged]]) })
    for (let i = 0; i < 5; i++) {
      h.claims.seen(X.id, [summary(1)])
      await settle()
    }
    expect(h.fetched).toEqual([X.id])
    expect(h.refused).toHaveLength(1)
    expect(h.refused[0]).toMatch(/not signed by the previous owner/)
    expect(h.fenced).toEqual([])
  })

  it('refuses a claim with no chain behind it, and one whose chain names another owner', async () => {
    const theirs = extend(atA(), migrateLink(atA(), B.id, A.signer))
    const h = harness({ copy: atA(), theirs: new Map([[C.id, theirs]]) })
    h.claims.seen(X.id, [summary(1)])
    h.claims.seen(C.id, [summary(1)])
    await settle()
    expect(h.refused).toHaveLength(2)
    expect(h.refused).toEqual(expect.arrayContaining([expect.stringMatching(/chain's head is owned by/), expect.stringMatching(/no chain offered/)]))
    expect(h.fenced).toEqual([])
  })

  it('asks nothing for a claim not above our head, and sends our proof to a peer running an older copy', async () => {
    const ours = extend(atA(), migrateLink(atA(), B.id, A.signer))
    const h = harness({ copy: ours })
    h.claims.seen(A.id, [summary(0)])
    h.claims.seen(A.id, [summary(0)])
    await settle()
    expect(h.fetched).toEqual([])
    expect(h.proofsSent).toEqual([[A.id, [VM]]])
  })

  it('proves a later copy a peer only named (heads), fetched from its owner; a forged one named is refused and our copy runs on', async () => {
    const theirs = extend(atA(), migrateLink(atA(), B.id, A.signer))
    const h = harness({ copy: atA(), theirs: new Map([[B.id, theirs]]) })
    h.claims.heard(B.id, VM, { epoch: 1, owner: B.id })
    // Our own head, and a head named as owned by another than the one to ask, are not looked at.
    h.claims.heard(A.id, VM, { epoch: 0, owner: A.id })
    h.claims.heard(C.id, VM, { epoch: 2, owner: X.id })
    await settle()
    expect(h.fetched).toEqual([B.id])
    expect(h.fenced).toEqual([[VM, B.id, 1]])
    const forged = extend(atA(), { ...migrateLink(atA(), X.id, { ...X.signer, self: A.id }) })
    const f = harness({ copy: atA(), theirs: new Map([[X.id, forged]]) })
    f.claims.heard(X.id, VM, { epoch: 1, owner: X.id })
    await settle()
    expect(f.refused).toHaveLength(1)
    expect(f.fenced).toEqual([])
  })

  it('proves a later copy named above our replica (a restart another holder made), drops the replica once proved; a refused one is not looked at again', async () => {
    const theirs = extend(atA(), migrateLink(atA(), B.id, A.signer))
    const h = harness({ replica: atA(), theirs: new Map([[B.id, theirs]]) })
    expect(h.claims.heard(B.id, VM, { epoch: 1, owner: B.id })).toBe(true)
    // Not above the replica: nothing to prove.
    expect(h.claims.heard(A.id, VM, { epoch: 0, owner: A.id })).toBe(false)
    await settle()
    expect(h.fetched).toEqual([B.id])
    expect(h.dropped).toEqual([VM])
    const f = harness({ replica: atA(), theirs: new Map() })
    expect(f.claims.heard(X.id, VM, { epoch: 1, owner: X.id })).toBe(true)
    await settle()
    expect(f.refused).toHaveLength(1)
    expect(f.claims.heard(X.id, VM, { epoch: 1, owner: X.id })).toBe(false)
    expect(f.fetched).toEqual([X.id])
    expect(f.dropped).toEqual([])
  })

  it('takes a proof sent unasked, as if fetched', () => {
    const theirs = extend(atA(), migrateLink(atA(), B.id, A.signer))
    const h = harness({ copy: atA() })
    h.claims.pushed(X.id, [{ vmId: VM, chain: theirs }])
    expect(h.refused).toEqual([expect.stringMatching(/not by the peer that sent it/)])
    h.claims.pushed(B.id, [{ vmId: VM, chain: theirs }])
    expect(h.fenced).toEqual([[VM, B.id, 1]])
  })

  it('sends a tombstone to a peer seen running its VM', async () => {
    const h = harness({ tombstone: makeTombstone(atA(), 5, A.signer) })
    h.claims.seen(C.id, [summary(3)])
    h.claims.seen(C.id, [summary(3)])
    await settle()
    expect(h.tombstonesSent).toEqual([C.id])
  })
})
