/**
 * Noise's default crypto, with one cost taken out. For a message of 1.2 kB or
 * more it calls Node's `createCipheriv` with the session key as raw bytes;
 * Node then turns the bytes into a key object on every call, and on the way
 * builds (and drops) a TypeError with a captured stack trace: about a third of
 * the cost of encrypting a 10 kB gossip message. Here each session key becomes
 * a KeyObject once. Small messages keep noise's WebAssembly ChaCha20-Poly1305,
 * faster below about 1 kB.
 *
 * And the handshake's key derivation (HKDF over SHA-256, four times a side
 * per handshake) by Node's OpenSSL instead of noise's JavaScript SHA-256
 * (@noble/hashes): a joining agent spent 3.7 % of its CPU in it (`--cpu-prof`
 * of the 61st agent joining 60, its first 20 s), where each new connection
 * costs a handshake. The same bytes (RFC 5869, the chaining key as salt, no
 * info), checked against noise's own by the tests.
 */
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto'
import { createCipheriv, createDecipheriv, createSecretKey, hkdfSync, type KeyObject } from 'node:crypto'

type ICryptoInterface = typeof defaultCrypto

const ALGORITHM = 'chacha20-poly1305'
const TAG_BYTES = 16
/** From this size on, Node's cipher with a cached key beats the WebAssembly one. */
export const NATIVE_FROM_BYTES = 1024

/** Session keys are never changed in place (noise replaces them), so the array itself is the cache key. */
const keyObjects = new WeakMap<Uint8Array, KeyObject>()

function keyObject (k: Uint8Array): KeyObject {
  let key = keyObjects.get(k)
  if (key == null) {
    key = createSecretKey(k)
    keyObjects.set(k, key)
  }
  return key
}

type Encrypt = ICryptoInterface['chaCha20Poly1305Encrypt']
type Decrypt = ICryptoInterface['chaCha20Poly1305Decrypt']

/** One contiguous view of the bytes (a copy only when they are in several chunks). */
function flat (bytes: Parameters<Encrypt>[0]): Uint8Array {
  return bytes instanceof Uint8Array ? bytes : bytes.subarray()
}

const encrypt: Encrypt = (plaintext, nonce, ad, k) => {
  if (plaintext.byteLength < NATIVE_FROM_BYTES) return defaultCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, k)
  const cipher = createCipheriv(ALGORITHM, keyObject(k), nonce, { authTagLength: TAG_BYTES })
  cipher.setAAD(ad, { plaintextLength: plaintext.byteLength })
  const updated = cipher.update(flat(plaintext))
  const final = cipher.final()
  const tag = cipher.getAuthTag()
  return Buffer.concat([updated, final, tag], updated.byteLength + final.byteLength + tag.byteLength)
}

const decrypt: Decrypt = (ciphertext, nonce, ad, k, dst) => {
  if (ciphertext.byteLength < NATIVE_FROM_BYTES) return defaultCrypto.chaCha20Poly1305Decrypt(ciphertext, nonce, ad, k, dst)
  const bytes = flat(ciphertext)
  const decipher = createDecipheriv(ALGORITHM, keyObject(k), nonce, { authTagLength: TAG_BYTES })
  const text = bytes.subarray(0, bytes.byteLength - TAG_BYTES)
  decipher.setAAD(ad, { plaintextLength: text.byteLength })
  decipher.setAuthTag(bytes.subarray(bytes.byteLength - TAG_BYTES))
  const output = decipher.update(text)
  const final = decipher.final()
  return final.byteLength > 0 ? Buffer.concat([output, final], output.byteLength + final.byteLength) : output
}

const NO_INFO = new Uint8Array(0)

/** HKDF-SHA-256 of `ikm` with the chaining key `ck` as salt, 96 bytes cut into three keys, as noise's `getHKDF`. */
const getHKDF: ICryptoInterface['getHKDF'] = (ck, ikm) => {
  const okm = new Uint8Array(hkdfSync('sha256', ikm, ck, NO_INFO, 96))
  return [okm.subarray(0, 32), okm.subarray(32, 64), okm.subarray(64, 96)]
}

export const noiseCrypto: ICryptoInterface = {
  ...defaultCrypto,
  chaCha20Poly1305Encrypt: encrypt,
  chaCha20Poly1305Decrypt: decrypt,
  getHKDF
}
