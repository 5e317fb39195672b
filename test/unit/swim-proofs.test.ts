/**
 * The signatures of the failure detector's claims (src/agent/swim-proofs.ts):
 * an accusation travels with each accuser's signature and an incarnation said
 * alive with its member's, through any number of relays; what a relaying
 * peer made up (an accuser that never accused, a refutation on another's
 * behalf, a signature moved to another claim) is left out and reported.
 */
import { beforeAll, describe, expect, it } from 'vitest'
import { ed25519Signer } from '../../src/agent/signer.ts'
import { SwimProofs } from '../../src/agent/swim-proofs.ts'
import { PROTOCOL_VERSION } from '../../src/core/messages.ts'
import type { SwimMessage, SwimUpdate } from '../../src/core/swim-messages.ts'
import { swimMessageSchema } from '../../src/core/swim-messages.ts'
import { type Identity, identities } from './signers.ts'

let A: Identity, B: Identity, C: Identity, X: Identity, R: Identity

interface Node { proofs: SwimProofs, forged: Array<{ from: string, reason: string }> }

function node (who: Identity): Node {
  const forged: Node['forged'] = []
  return { proofs: new SwimProofs({ signer: ed25519Signer(who.key, who.id), onForged: (from, reason) => { forged.push({ from, reason }) } }), forged }
}

const gossip = (updates: SwimUpdate[]): SwimMessage => ({ v: PROTOCOL_VERSION, type: 'gossip', run: 1, inc: 0, updates })

/** What goes on the wire: stamped by the sender, through the schema as any received message is. */
function wire (from: Node, msg: SwimMessage): SwimMessage {
  return swimMessageSchema.parse(JSON.parse(JSON.stringify(from.proofs.stamp(msg))))
}

describe('swim proofs', () => {
  beforeAll(async () => {
    [A, B, C, X, R] = await identities(5)
  })

  it('an accusation relayed twice keeps its accusers, checked by their signatures, and stripped of them for the detector', () => {
    const [a, b, c] = [node(A), node(B), node(C)]
    const accusation: SwimUpdate = { peer: X.id, run: 7, inc: 2, status: 'suspect', accusers: [A.id] }
    const atB = b.proofs.check(A.id, wire(a, gossip([accusation])))
    expect(atB.updates).toEqual([accusation])
    // B adds its own word and passes both on to C.
    const both: SwimUpdate = { ...accusation, status: 'dead', accusers: [A.id, B.id] }
    const sent = wire(b, gossip([both]))
    expect(sent.updates[0].sigs).toHaveLength(2)
    const atC = c.proofs.check(B.id, sent)
    expect(atC.updates).toEqual([both])
    expect([...b.forged, ...c.forged]).toEqual([])
  })

  it('a relay that names accusers it holds no signature of leaves them out; an accusation with none left is not sent', () => {
    const b = node(B)
    // B never heard A or C accuse X: it cannot pass their word on.
    const sent = b.proofs.stamp(gossip([{ peer: X.id, run: 7, inc: 2, status: 'dead', accusers: [A.id, C.id] }]))
    expect(sent.updates).toEqual([])
  })

  it('a rogue naming members as accusers is refused: unsigned, signed by itself in their place, or a signature of another claim', () => {
    const a = node(A)
    const rogue = ed25519Signer(R.key, R.id)
    const sig = (bytes: string): string => Buffer.from(rogue.sign(new TextEncoder().encode(bytes))).toString('base64')
    const ownOfOther = wire(node(B), gossip([{ peer: X.id, run: 7, inc: 1, status: 'suspect', accusers: [B.id] }])).updates[0].sigs![0]
    const cases: Array<[string, SwimUpdate]> = [
      ['no signatures', { peer: X.id, run: 7, inc: 2, status: 'dead', accusers: [B.id, C.id, R.id] }],
      ['fewer signatures than accusers', { peer: X.id, run: 7, inc: 2, status: 'dead', accusers: [B.id, C.id], sigs: [ownOfOther] }],
      ['the rogue\'s signatures', { peer: X.id, run: 7, inc: 2, status: 'dead', accusers: [B.id, C.id], sigs: [sig('x'), sig('y')] }],
      ['B\'s signature of an older incarnation', { peer: X.id, run: 7, inc: 2, status: 'dead', accusers: [B.id], sigs: [ownOfOther] }]
    ]
    for (const [what, u] of cases) {
      const out = a.proofs.check(R.id, swimMessageSchema.parse({ ...gossip([u]) }))
      expect(out.updates, what).toEqual([])
    }
    expect(a.forged).toHaveLength(cases.length)
    expect(a.forged.every(f => f.from === R.id && f.reason.includes(X.id))).toBe(true)
  })

  it('of several accusers, only those whose signatures hold are kept', () => {
    const [a, b] = [node(A), node(B)]
    const fromB = wire(b, gossip([{ peer: X.id, run: 7, inc: 2, status: 'suspect', accusers: [B.id] }])).updates[0]
    const mixed: SwimUpdate = { ...fromB, accusers: [B.id, C.id], sigs: [fromB.sigs![0], fromB.sigs![0]] }
    const out = a.proofs.check(R.id, gossip([mixed]))
    expect(out.updates).toEqual([{ peer: X.id, run: 7, inc: 2, status: 'suspect', accusers: [B.id] }])
    expect(a.forged).toHaveLength(1)
    expect(a.forged[0].reason).toContain(C.id)
  })

  it('an incarnation said alive needs its member\'s signature: its own refutation passes through a relay, a rogue\'s does not', () => {
    const [x, b, c] = [node(X), node(B), node(C)]
    const refutation: SwimUpdate = { peer: X.id, run: 7, inc: 3, status: 'alive' }
    const atB = b.proofs.check(X.id, wire(x, gossip([refutation])))
    expect(atB.updates).toEqual([refutation])
    expect(c.proofs.check(B.id, wire(b, gossip([refutation]))).updates).toEqual([refutation])
    // A rogue raising X's incarnation: with no signature, or with X's signature of the incarnation before.
    const older = wire(x, gossip([{ ...refutation, inc: 2 }])).updates[0].sig
    for (const forgedUpdate of [{ ...refutation, inc: 4 }, { ...refutation, inc: 4, sig: older }]) {
      expect(c.proofs.check(R.id, swimMessageSchema.parse(gossip([forgedUpdate as SwimUpdate]))).updates).toEqual([])
    }
    expect(c.forged).toHaveLength(2)
    // And a relay holding no signature of an incarnation (learned from the member's own header) does not send it.
    expect(b.proofs.stamp(gossip([{ peer: X.id, run: 7, inc: 9, status: 'alive' }])).updates).toEqual([])
    expect([...b.forged, ...x.forged]).toEqual([])
  })

  it('a signature is checked once per claim, and the kept claims are bounded', () => {
    let verified = 0
    const base = ed25519Signer(A.key, A.id)
    const counting = new SwimProofs({ signer: { ...base, verify: (p, bytes, s) => { verified++; return base.verify(p, bytes, s) } }, onForged: () => {}, maxEntries: 3 })
    const msg = wire(node(B), gossip([{ peer: X.id, run: 7, inc: 2, status: 'suspect', accusers: [B.id] }]))
    for (let i = 0; i < 5; i++) expect(counting.check(C.id, msg).updates).toHaveLength(1)
    expect(verified).toBe(1)
    for (let inc = 10; inc < 20; inc++) counting.check(C.id, wire(node(X), gossip([{ peer: X.id, run: 7, inc, status: 'alive' }])))
    expect(counting.size).toBe(3)
  })

  it('messages without updates pass as they are', () => {
    const a = node(A)
    const ping: SwimMessage = { v: PROTOCOL_VERSION, type: 'ping', seq: 1, run: 1, inc: 0, updates: [] }
    expect(a.proofs.stamp(ping)).toBe(ping)
    expect(a.proofs.check(B.id, ping)).toBe(ping)
  })
})
