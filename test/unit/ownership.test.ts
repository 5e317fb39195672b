/**
 * Ownership proofs (core/ownership.ts) with real Ed25519 keys: the links an
 * entitled peer signs are accepted, each way of forging or breaking one is
 * refused with its reason, ties go to the higher peer id, and a claim that
 * does not reach the verifier's own chain proves nothing.
 */
import { beforeAll, describe, expect, it } from 'vitest'
import { canonicalJson } from '../../src/core/canonical.ts'
import { chainSchema, type Chain, type Designation, type Link, MAX_CHAIN, tombstoneSchema } from '../../src/core/ownership-messages.ts'
import { checkChain, checkClaim, checkTombstone, compareHeads, connects, designate, extend, headOf, makeTombstone, migrateLink, originLink, restartLink, type Signer } from '../../src/core/ownership.ts'
import { ed25519Signer } from '../../src/agent/signer.ts'
import { type Identity, identities } from './signers.ts'

const VM = 'vm-0123456789ab'

let O: Identity, A: Identity, B: Identity, C: Identity, R1: Identity, R2: Identity, X: Identity
/** Any peer can check: verification uses only the peer ids. */
let verifier: Signer

function sigOf (link: Link): string {
  return link.sig
}

/** A copy of `link` with another signature (forged by `by`): what a rogue can make. */
function resign (link: Link, by: Identity): Link {
  const { sig: _sig, ...body } = link
  const bytes = new TextEncoder().encode(canonicalJson({ ...body, t: 'discovery/link/1' }))
  return { ...link, sig: Buffer.from(by.signer.sign(bytes)).toString('base64') } as Link
}

beforeAll(async () => {
  const ids = await identities(7);
  [O, A, B, C, R1, R2, X] = ids
  verifier = ids[0].signer
})

/** O created the VM, then migrated it to A. */
function created (): Chain {
  return [originLink(VM, O.signer)]
}

function migratedTo (to: Identity, chain = created()): Chain {
  return extend(chain, migrateLink(chain, to.id, ownerSigner(chain)))
}

function ownerSigner (chain: Chain): Signer {
  const owner = headOf(chain).owner
  return [O, A, B, C, R1, R2, X].find(i => i.id === owner)!.signer
}

function designation (chain: Chain, holders: Identity[]): Designation {
  return designate(VM, headOf(chain), holders.map(h => h.id), 1_000, ownerSigner(chain))
}

function restartedOn (to: Identity, by: Identity, chain: Chain, holders = [R1, R2]): Chain {
  return extend(chain, restartLink(chain, designation(chain, holders), to.id, by.signer))
}

describe('proofs that hold', () => {
  it.each([
    { name: 'a create link signed by its owner', chain: () => created() },
    { name: 'a migration signed by the source', chain: () => migratedTo(A) },
    { name: 'two migrations, each signed by its source', chain: () => migratedTo(B, migratedTo(A)) },
    { name: 'a restart by the first designated holder', chain: () => restartedOn(C, R1, migratedTo(A)) },
    { name: 'a restart by the second holder (the first died too)', chain: () => restartedOn(C, R2, migratedTo(A)) },
    { name: 'a restart on the restarter itself', chain: () => restartedOn(R1, R1, migratedTo(A)) },
    { name: 'a migration after a restart', chain: () => migratedTo(B, restartedOn(C, R1, migratedTo(A))) }
  ])('$name', ({ chain }) => {
    const c = chain()
    expect(chainSchema.safeParse(c).success).toBe(true)
    expect(checkChain(c, VM, verifier)).toBeUndefined()
    // The original creator's chain is an ancestor: the claim reaches it.
    if (c.length > 1) expect(checkClaim(created(), c, VM, verifier)).toBeUndefined()
  })

  it('the agent\'s signer (node:crypto) signs what libp2p\'s keys check, and the other way round', () => {
    const agent = ed25519Signer(A.key, A.id)
    const bytes = new TextEncoder().encode('a link')
    expect(verifier.verify(A.id, bytes, agent.sign(bytes))).toBe(true)
    expect(agent.verify(A.id, bytes, A.signer.sign(bytes))).toBe(true)
    expect(agent.verify(B.id, bytes, A.signer.sign(bytes))).toBe(false)
    expect(agent.verify('not-a-peer-id', bytes, A.signer.sign(bytes))).toBe(false)
    // The same bytes signed twice give the same signature (Ed25519 is deterministic): links compare by content.
    expect(sigOf(originLink(VM, ed25519Signer(O.key, O.id)))).toBe(sigOf(originLink(VM, O.signer)))
  })
})

describe('proofs refused', () => {
  it.each([
    {
      name: 'a migration signed by the destination instead of the source',
      mine: () => migratedTo(A),
      theirs: () => { const c = migratedTo(A); return extend(c, resign(migrateLink(c, B.id, A.signer), B)) },
      reason: /not signed by the previous owner/
    },
    {
      name: 'a migration signed by a stranger',
      mine: () => migratedTo(A),
      theirs: () => { const c = migratedTo(A); return extend(c, resign(migrateLink(c, B.id, A.signer), X)) },
      reason: /not signed by the previous owner/
    },
    {
      name: 'a restart by a peer the owner did not designate',
      mine: () => migratedTo(A),
      theirs: () => { const c = migratedTo(A); return extend(c, restartLink(c, designation(c, [R1, R2]), X.id, X.signer)) },
      reason: /did not designate/
    },
    {
      name: 'a restart with a designation forged by the restarter',
      mine: () => migratedTo(A),
      theirs: () => {
        const c = migratedTo(A)
        const forged = designate(VM, headOf(c), [X.id], 1_000, { ...X.signer, self: A.id })
        return extend(c, restartLink(c, forged, X.id, X.signer))
      },
      reason: /designation is not signed by its owner/
    },
    {
      name: 'a restart whose designation is of an older head',
      mine: () => migratedTo(A),
      theirs: () => {
        const c = migratedTo(A)
        return extend(c, restartLink(c, designation(created(), [R1, R2]), C.id, R1.signer))
      },
      reason: /designation is of/
    },
    {
      name: 'a restart link altered after it was signed (another new owner)',
      mine: () => migratedTo(A),
      theirs: () => { const c = restartedOn(C, R1, migratedTo(A)); return [...c.slice(0, -1), { ...c[c.length - 1], owner: X.id }] },
      reason: /not signed by/
    },
    {
      name: 'a broken chain: a link that skips an epoch',
      mine: () => migratedTo(A),
      theirs: () => {
        const c = migratedTo(A)
        const link = migrateLink(c, B.id, A.signer)
        return [...c, resign({ ...link, epoch: link.epoch + 1 }, A)]
      },
      reason: /not one epoch after/
    },
    {
      name: 'a broken chain: a link that follows another head than the one before it',
      mine: () => migratedTo(A),
      theirs: () => { const c = migratedTo(A); return [...c, migrateLink(created(), B.id, O.signer)] },
      reason: /follows/
    },
    {
      // Valid on its own (an origin signed by its owner), and worth nothing: it reaches none of our links.
      name: 'a chain of the rogue\'s own making (its own origin at a high epoch)',
      mine: () => migratedTo(A),
      theirs: () => [originLink(VM, X.signer, 99)],
      reason: /shares no link with ours/
    },
    {
      name: 'our real chain, fetched, with a migration to the rogue signed by the rogue',
      mine: () => migratedTo(A),
      theirs: () => { const c = migratedTo(A); return extend(c, resign(migrateLink(c, X.id, A.signer), X)) },
      reason: /not signed by the previous owner/
    },
    {
      name: 'a claim not above our head',
      mine: () => migratedTo(A),
      theirs: () => created(),
      reason: /not above our head/
    },
    {
      name: 'a chain of another VM',
      mine: () => migratedTo(A),
      theirs: () => { const other = [originLink('vm-ffffffffffff', A.signer)]; return extend(other, migrateLink(other, B.id, A.signer)) },
      reason: /another VM/
    }
  ])('$name', ({ mine, theirs, reason }) => {
    const t = theirs()
    expect(chainSchema.safeParse(t).success).toBe(true)
    expect(checkClaim(mine(), t, VM, verifier)).toMatch(reason)
  })

  it('a chain truncated past the verifier\'s head', () => {
    // The verifier stopped at A's head; the VM moved on MAX_CHAIN times since, so A's link fell off the claim.
    const mine = migratedTo(A)
    let theirs = mine
    const hops = [B, C, R1, R2]
    for (let i = 0; i < MAX_CHAIN; i++) theirs = migratedTo(hops[i % hops.length], theirs)
    expect(theirs).toHaveLength(MAX_CHAIN)
    expect(checkChain(theirs, VM, verifier)).toBeUndefined()
    expect(checkClaim(mine, theirs, VM, verifier)).toMatch(/shares no link with ours/)
    // One hop fewer still reaches it.
    expect(checkClaim(mine, theirs.slice(0, -1).slice(1), VM, verifier)).toMatch(/shares no link|not above/)
    const reachable = theirs.slice(0, 1).concat(theirs.slice(1))
    expect(checkClaim(theirs.slice(0, 4), reachable, VM, verifier)).toBeUndefined()
  })
})

describe('ties after a partition: both sides restarted from the same dead owner', () => {
  it('the higher peer id wins on both sides', () => {
    const base = migratedTo(A)
    const low = restartedOn(R1, R1, base)
    const high = restartedOn(R2, R2, base)
    expect(compareHeads(headOf(high), headOf(low))).toBeGreaterThan(0)
    // The lower side checks the higher side's claim: it holds, so it stops its copy.
    expect(checkClaim(low, high, VM, verifier)).toBeUndefined()
    // The higher side sees the lower claim: not above, it keeps running.
    expect(checkClaim(high, low, VM, verifier)).toMatch(/not above our head/)
    // A restarted copy further on still wins over the other side's older restart.
    const highThenMoved = migratedTo(C, high)
    expect(checkClaim(low, highThenMoved, VM, verifier)).toBeUndefined()
  })

  it('compares heads by epoch, then by peer id', () => {
    expect(compareHeads({ epoch: 2, owner: 'a' }, { epoch: 1, owner: 'z' })).toBeGreaterThan(0)
    expect(compareHeads({ epoch: 1, owner: 'b' }, { epoch: 1, owner: 'a' })).toBeGreaterThan(0)
    expect(compareHeads({ epoch: 1, owner: 'a' }, { epoch: 1, owner: 'a' })).toBe(0)
  })
})

describe('tombstones', () => {
  it('delete the deleted head, its ancestors\' copies and the copies restarted from it; refuse forgeries and strangers', () => {
    const atA = migratedTo(A)
    const deletedAtA = makeTombstone(atA, 5_000, A.signer)
    expect(tombstoneSchema.safeParse(deletedAtA).success).toBe(true)
    // Deleted on one side of a partition; the other side restarted it from A's link: it goes too.
    expect(checkTombstone(deletedAtA, restartedOn(C, R1, atA), verifier)).toBeUndefined()
    // Restarted then deleted on the other side; A's stale copy goes.
    const restarted = restartedOn(C, R1, atA)
    expect(checkTombstone(makeTombstone(restarted, 6_000, C.signer), atA, verifier)).toBeUndefined()
    // O's in-doubt copy (before the migration) goes too.
    expect(checkTombstone(deletedAtA, created(), verifier)).toBeUndefined()
    // A tombstone on its own (a holder with no replica of it) is checked for itself.
    expect(checkTombstone(deletedAtA, undefined, verifier)).toBeUndefined()
    // Forged: signed by a stranger in A's name.
    const forged = { ...deletedAtA, sig: Buffer.from(X.signer.sign(new TextEncoder().encode('x'))).toString('base64') }
    expect(checkTombstone(forged, atA, verifier)).toMatch(/not signed by its owner/)
    // A rogue's tombstone of its own VM with the same id reaches none of our copies.
    const rogue = makeTombstone([originLink(VM, X.signer)], 7_000, X.signer)
    expect(checkTombstone(rogue, atA, verifier)).toMatch(/shares no link/)
    // A chain whose head is not the deleted one.
    expect(checkTombstone({ ...deletedAtA, chain: created() }, atA, verifier)).toMatch(/chain whose head/)
  })
})

describe('chains stay bounded', () => {
  it('extend drops the oldest links past MAX_CHAIN, and the schema refuses longer ones', () => {
    let c = created()
    const hops = [A, B]
    for (let i = 0; i < MAX_CHAIN + 4; i++) c = migratedTo(hops[i % 2], c)
    expect(c).toHaveLength(MAX_CHAIN)
    expect(headOf(c).epoch).toBe(MAX_CHAIN + 4)
    expect(checkChain(c, VM, verifier)).toBeUndefined()
    expect(chainSchema.safeParse([...c, c[0]]).success).toBe(false)
    expect(connects(c, [], VM, verifier)).toMatch(/empty/)
  })

  it('signs the same bytes whatever the order of the fields', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { f: 2, e: 3 }], c: undefined } })).toBe('{"a":{"d":[1,{"e":3,"f":2}]},"b":1}')
  })
})
