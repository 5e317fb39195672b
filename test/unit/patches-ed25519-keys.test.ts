/**
 * The Ed25519 key cache patches @libp2p/crypto's key classes in place. If an
 * upgrade moves or reshapes `sign` / `verify`, these fail and say so; while
 * they pass, the patch signs the same bytes and verifies the same way.
 */
import { generateKeyPair, privateKeyFromRaw, publicKeyFromRaw } from '@libp2p/crypto/keys'
import { Uint8ArrayList } from 'uint8arraylist'
import { describe, expect, it } from 'vitest'
import { ed25519Prototypes, installEd25519KeyCache, PATCHED_ARITY } from '../../src/net/patches/index.ts'
import { changed } from '../patch-guard.ts'

const RECHECK = 'src/net/patches/ed25519-keys.ts against @libp2p/crypto\'s src/keys/ed25519/ed25519.ts (Ed25519PrivateKey.sign, Ed25519PublicKey.verify)'

describe('what the Ed25519 patch replaces (before it is installed)', () => {
  it('finds sign and verify as methods of the key classes, with the arity it was written for', async () => {
    const { privateProto, publicProto } = ed25519Prototypes()
    expect(typeof privateProto.sign, changed('@libp2p/crypto', 'the Ed25519 private key class has no prototype method `sign`', RECHECK)).toBe('function')
    expect(typeof publicProto.verify, changed('@libp2p/crypto', 'the Ed25519 public key class has no prototype method `verify`', RECHECK)).toBe('function')
    expect((privateProto.sign as (...a: unknown[]) => unknown).length, changed('@libp2p/crypto', '`sign` no longer takes (message, options)', RECHECK)).toBe(PATCHED_ARITY.sign)
    expect((publicProto.verify as (...a: unknown[]) => unknown).length, changed('@libp2p/crypto', '`verify` no longer takes (data, sig, options)', RECHECK)).toBe(PATCHED_ARITY.verify)
    // Keys made any way share those prototypes, and no own property shadows them (the patch would then change nothing).
    const key = await generateKeyPair('Ed25519')
    expect(Object.getPrototypeOf(key), changed('@libp2p/crypto', 'generateKeyPair(\'Ed25519\') makes keys of another class than privateKeyFromRaw', RECHECK)).toBe(privateProto)
    expect(Object.getPrototypeOf(key.publicKey), changed('@libp2p/crypto', 'a private key\'s publicKey is of another class than publicKeyFromRaw\'s', RECHECK)).toBe(publicProto)
    expect(Object.hasOwn(key, 'sign') || Object.hasOwn(key.publicKey, 'verify'), changed('@libp2p/crypto', 'keys carry `sign` / `verify` as own properties, which shadow the patched prototype', RECHECK)).toBe(false)
  })
})

describe('installEd25519KeyCache', () => {
  it('replaces both methods, and signs the same bytes and verifies the same way as @libp2p/crypto', async () => {
    const { privateProto, publicProto } = ed25519Prototypes()
    const original = { sign: privateProto.sign, verify: publicProto.verify }
    const a = await generateKeyPair('Ed25519')
    const b = await generateKeyPair('Ed25519')
    const msg = new TextEncoder().encode('a NodeState, signed by its origin')
    const listed = new Uint8ArrayList(msg.subarray(0, 5), msg.subarray(5))
    const before = { sigA: await a.sign(msg), sigB: await b.sign(msg), listed: await a.sign(listed) }
    expect(await a.publicKey.verify(msg, before.sigA)).toBe(true)

    const refused = changed('@libp2p/crypto', 'installEd25519KeyCache() refused to patch: `sign` / `verify` are not the shape it was written for', RECHECK)
    expect(installEd25519KeyCache(), refused).toBe(true)
    expect(installEd25519KeyCache(), refused).toBe(true)
    expect(privateProto.sign, changed('@libp2p/crypto', 'installing the patch left `sign` as it was', RECHECK)).not.toBe(original.sign)
    expect(publicProto.verify, changed('@libp2p/crypto', 'installing the patch left `verify` as it was', RECHECK)).not.toBe(original.verify)
    // A key made after the patch (what libp2p does with every peer's key) gets it too.
    expect(privateKeyFromRaw(a.raw).sign).toBe(privateProto.sign)

    for (let i = 0; i < 3; i++) {
      expect(Buffer.from(await a.sign(msg))).toEqual(Buffer.from(before.sigA))
      expect(Buffer.from(await b.sign(msg))).toEqual(Buffer.from(before.sigB))
      expect(Buffer.from(await a.sign(listed))).toEqual(Buffer.from(before.listed))
    }
    // A key object rebuilt from the raw bytes (what gossipsub does for every message) verifies the same way.
    const again = publicKeyFromRaw(a.publicKey.raw)
    expect(await again.verify(msg, before.sigA)).toBe(true)
    expect(await again.verify(listed, before.sigA)).toBe(true)
    expect(await again.verify(msg, before.sigB)).toBe(false)
    const tampered = Uint8Array.from(msg)
    tampered[0] ^= 1
    expect(await again.verify(tampered, before.sigA)).toBe(false)
    expect(() => again.verify(msg, before.sigA.subarray(1))).toThrow(/64 bytes/)
    const aborted = { signal: AbortSignal.abort() }
    expect(() => a.sign(msg, aborted)).toThrow()
    expect(() => again.verify(msg, before.sigA, aborted)).toThrow()
  })
})
