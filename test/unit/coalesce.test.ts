/**
 * Write coalescing under noise, and noise's crypto with cached session keys:
 * the bytes that go out are the bytes that came in, in order; what is ready
 * together goes out as one chunk; encryption is byte for byte noise's own.
 */
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto'
import { randomBytes } from 'node:crypto'
import { Uint8ArrayList } from 'uint8arraylist'
import { describe, expect, it } from 'vitest'
import { coalesce } from '../../src/net/coalesce.ts'
import { noiseCrypto } from '../../src/net/noise-crypto.ts'

async function collect (source: AsyncIterable<Uint8ArrayList>): Promise<Uint8Array[]> {
  const out: Uint8Array[] = []
  for await (const chunk of source) out.push(chunk.subarray())
  return out
}

describe('coalesce', () => {
  it('joins the chunks that are ready in one turn, keeps their order, and passes the end through', async () => {
    const ready = [Uint8Array.from([1]), new Uint8ArrayList(Uint8Array.from([2]), Uint8Array.from([3])), Uint8Array.from([4])]
    expect((await collect(coalesce(ready))).map(c => [...c])).toEqual([[1, 2, 3, 4]])
  })

  it('sends a chunk on its own when nothing follows it in the same turn', async () => {
    async function * spaced (): AsyncGenerator<Uint8Array> {
      yield Uint8Array.from([1])
      yield Uint8Array.from([2])
      await new Promise(resolve => setTimeout(resolve, 5))
      yield Uint8Array.from([3])
    }
    expect((await collect(coalesce(spaced()))).map(c => [...c])).toEqual([[1, 2], [3]])
  })

  it('caps a batch at about maxBytes', async () => {
    const chunks = Array.from({ length: 10 }, (_, i) => new Uint8Array(400).fill(i))
    const out = await collect(coalesce(chunks, 1000))
    expect(out.map(c => c.byteLength)).toEqual([1200, 1200, 1200, 400])
    expect(Buffer.concat(out)).toEqual(Buffer.concat(chunks))
  })

  it('rethrows an error of the source', async () => {
    async function * failing (): AsyncGenerator<Uint8Array> {
      yield Uint8Array.from([1])
      await new Promise(resolve => setTimeout(resolve, 1))
      throw new Error('reset')
    }
    await expect(collect(coalesce(failing()))).rejects.toThrow('reset')
  })
})

describe('noise crypto with cached keys', () => {
  const k = randomBytes(32)
  const nonce = randomBytes(12)
  const ad = randomBytes(32)
  it.each([0, 100, 1023, 1024, 5000, 65_519])('encrypts and decrypts %i bytes exactly like noise does', (size) => {
    const plaintext = randomBytes(size)
    const theirs = Buffer.from(defaultCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, k).subarray())
    const split = new Uint8ArrayList(plaintext.subarray(0, size >> 1), plaintext.subarray(size >> 1))
    // Noise hands over lists (of its own copy of uint8arraylist): the same at run time.
    const ours = Buffer.from(noiseCrypto.chaCha20Poly1305Encrypt(split as any, nonce, ad, k).subarray())
    expect(ours.equals(theirs)).toBe(true)
    const back = noiseCrypto.chaCha20Poly1305Decrypt(new Uint8ArrayList(theirs.subarray(0, 3), theirs.subarray(3)) as any, nonce, ad, k)
    expect(Buffer.from(back.subarray()).equals(plaintext)).toBe(true)
  })

  it('refuses a message that was tampered with', () => {
    const sealed = Buffer.from(noiseCrypto.chaCha20Poly1305Encrypt(randomBytes(4000), nonce, ad, k).subarray())
    sealed[10] ^= 1
    expect(() => noiseCrypto.chaCha20Poly1305Decrypt(sealed, nonce, ad, k)).toThrow()
  })
})
