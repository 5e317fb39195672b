/**
 * Noise's crypto with cached session keys and native HKDF: noise's `defaultCrypto` must still
 * have the three functions it replaces, with the same signatures, and the
 * replacements must be byte for byte noise's own on both sides of the size
 * from which they use Node's cipher. If an upgrade of @chainsafe/libp2p-noise
 * changes that, these fail and say what to re-check.
 */
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto'
import { randomBytes } from 'node:crypto'
import { Uint8ArrayList } from 'uint8arraylist'
import { describe, expect, it } from 'vitest'
import { NATIVE_FROM_BYTES, noiseCrypto } from '../../src/net/patches/index.ts'
import { changed } from '../patch-guard.ts'

const RECHECK = 'src/net/patches/noise-crypto.ts against @chainsafe/libp2p-noise\'s src/crypto/index.ts (defaultCrypto) and ICryptoInterface'
const REPLACED = { chaCha20Poly1305Encrypt: 4, chaCha20Poly1305Decrypt: 5, getHKDF: 2 } as const

describe('what the noise crypto patch replaces', () => {
  it('finds the functions it replaces in noise\'s defaultCrypto, with their signatures', () => {
    for (const [name, arity] of Object.entries(REPLACED)) {
      const fn = (defaultCrypto as unknown as Record<string, unknown>)[name]
      expect(typeof fn, changed('@chainsafe/libp2p-noise', `defaultCrypto.${name} is gone`, RECHECK)).toBe('function')
      expect((fn as (...a: unknown[]) => unknown).length, changed('@chainsafe/libp2p-noise', `defaultCrypto.${name} no longer takes ${arity} arguments`, RECHECK)).toBe(arity)
    }
  })

  it('keeps every other function of defaultCrypto as noise has it', () => {
    expect(Object.keys(noiseCrypto).sort(), changed('@chainsafe/libp2p-noise', 'defaultCrypto has other functions than the patch spreads', RECHECK)).toEqual(Object.keys(defaultCrypto).sort())
    for (const [name, fn] of Object.entries(noiseCrypto)) {
      if (name in REPLACED) expect(fn, `${name} is replaced`).not.toBe((defaultCrypto as unknown as Record<string, unknown>)[name])
      else expect(fn, `${name} is noise's own`).toBe((defaultCrypto as unknown as Record<string, unknown>)[name])
    }
  })
})

describe('noise crypto with cached keys', () => {
  const k = randomBytes(32)
  const nonce = randomBytes(12)
  const ad = randomBytes(32)
  // Both sides of our threshold and of noise's own (1200), up to the largest noise message.
  const sizes = [0, 100, NATIVE_FROM_BYTES - 1, NATIVE_FROM_BYTES, NATIVE_FROM_BYTES + 1, 1199, 1200, 5000, 65_519]

  it.each(sizes)('encrypts and decrypts %i bytes exactly like noise does, whole or in pieces', (size) => {
    const plaintext = randomBytes(size)
    const theirs = Buffer.from(defaultCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, k).subarray())
    const what = changed('@chainsafe/libp2p-noise', `encryption of ${size} bytes differs from defaultCrypto's`, RECHECK)
    expect(Buffer.from(noiseCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, k).subarray()).equals(theirs), what).toBe(true)
    // Noise hands over lists (of its own copy of uint8arraylist): the same at run time.
    const split = new Uint8ArrayList(plaintext.subarray(0, size >> 1), plaintext.subarray(size >> 1))
    expect(Buffer.from(noiseCrypto.chaCha20Poly1305Encrypt(split as any, nonce, ad, k).subarray()).equals(theirs), what).toBe(true)
    const back = noiseCrypto.chaCha20Poly1305Decrypt(new Uint8ArrayList(theirs.subarray(0, 3), theirs.subarray(3)) as any, nonce, ad, k)
    expect(Buffer.from(back.subarray()).equals(plaintext), changed('@chainsafe/libp2p-noise', `decryption of ${size} bytes differs from defaultCrypto's`, RECHECK)).toBe(true)
    const backWhole = noiseCrypto.chaCha20Poly1305Decrypt(theirs, nonce, ad, k)
    expect(Buffer.from(backWhole.subarray()).equals(plaintext)).toBe(true)
  })

  it.each([0, 32, 64])('derives the same three keys as noise from a chaining key and %i bytes of input', (ikmBytes) => {
    for (let i = 0; i < 20; i++) {
      const ck = randomBytes(32)
      const ikm = randomBytes(ikmBytes)
      const theirs = defaultCrypto.getHKDF(ck, ikm).map(key => Buffer.from(key).toString('hex'))
      const ours = noiseCrypto.getHKDF(ck, ikm)
      expect(ours.map(key => key.byteLength)).toEqual([32, 32, 32])
      expect(ours.map(key => Buffer.from(key).toString('hex')), changed('@chainsafe/libp2p-noise', `getHKDF of ${ikmBytes} bytes differs from defaultCrypto's`, RECHECK)).toEqual(theirs)
    }
  })

  it.each([100, 4000])('refuses a message of %i bytes that was tampered with', (size) => {
    const sealed = Buffer.from(noiseCrypto.chaCha20Poly1305Encrypt(randomBytes(size), nonce, ad, k).subarray())
    sealed[10] ^= 1
    expect(() => noiseCrypto.chaCha20Poly1305Decrypt(sealed, nonce, ad, k)).toThrow()
  })
})
