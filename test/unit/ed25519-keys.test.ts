import { generateKeyPair, publicKeyFromRaw } from '@libp2p/crypto/keys'
import { describe, expect, it } from 'vitest'
import { installEd25519KeyCache } from '../../src/net/ed25519-keys.ts'

describe('installEd25519KeyCache', () => {
  it('signs the same bytes and verifies the same way as @libp2p/crypto, with each key built once', async () => {
    const a = await generateKeyPair('Ed25519')
    const b = await generateKeyPair('Ed25519')
    const msg = new TextEncoder().encode('a NodeState, signed by its origin')
    const before = { sigA: await a.sign(msg), sigB: await b.sign(msg) }
    const verifiedBefore = await a.publicKey.verify(msg, before.sigA)

    installEd25519KeyCache()
    installEd25519KeyCache()
    for (let i = 0; i < 3; i++) {
      expect(Buffer.from(await a.sign(msg))).toEqual(Buffer.from(before.sigA))
      expect(Buffer.from(await b.sign(msg))).toEqual(Buffer.from(before.sigB))
    }
    expect(verifiedBefore).toBe(true)
    // A key object rebuilt from the raw bytes (what gossipsub does for every message) verifies the same way.
    const again = publicKeyFromRaw(a.publicKey.raw)
    expect(await again.verify(msg, before.sigA)).toBe(true)
    expect(await again.verify(msg, before.sigB)).toBe(false)
    const tampered = Uint8Array.from(msg)
    tampered[0] ^= 1
    expect(await again.verify(tampered, before.sigA)).toBe(false)
    expect(() => again.verify(msg, before.sigA.subarray(1))).toThrow(/64 bytes/)
  })
})
