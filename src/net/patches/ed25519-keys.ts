/**
 * Ed25519 signing and verification without rebuilding the key each time.
 * `@libp2p/crypto` turns the raw key bytes into a Node key object (through
 * JWK) on every `sign` and every `verify`: with every gossip message signed by
 * its origin and checked by every receiver, that rebuild was about as costly
 * as the signature check itself (a tenth of an agent's CPU under load, 50
 * agents on one host). Here each key becomes a key object once. The results
 * are the same bytes and the same booleans: Node does the work either way.
 */
import { privateKeyFromRaw, publicKeyFromRaw } from '@libp2p/crypto/keys'
import { createPrivateKey, createPublicKey, sign as nodeSign, verify as nodeVerify, type KeyObject } from 'node:crypto'

/** Public keys of peers: few per agent; the cache starts over when it grows past this. */
const MAX_PUBLIC_KEYS = 4_096

type Bytes = Uint8Array | { subarray: () => Uint8Array }

const publicKeys = new Map<string, KeyObject>()
const privateKeys = new WeakMap<object, KeyObject>()

function b64url (bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url')
}

function flat (data: Bytes): Uint8Array {
  return data instanceof Uint8Array ? data : data.subarray()
}

function publicKeyObject (raw: Uint8Array): KeyObject {
  const x = b64url(raw)
  let key = publicKeys.get(x)
  if (key == null) {
    if (publicKeys.size >= MAX_PUBLIC_KEYS) publicKeys.clear()
    key = createPublicKey({ format: 'jwk', key: { kty: 'OKP', crv: 'Ed25519', x } })
    publicKeys.set(x, key)
  }
  return key
}

function privateKeyObject (owner: object, raw: Uint8Array): KeyObject {
  let key = privateKeys.get(owner)
  if (key == null) {
    key = createPrivateKey({ format: 'jwk', key: { kty: 'OKP', crv: 'Ed25519', d: b64url(raw.subarray(0, 32)), x: b64url(raw.subarray(32)) } })
    privateKeys.set(owner, key)
  }
  return key
}

/** The methods replaced, as @libp2p/crypto 5.1.23 declares them: `sign(message, options?)`, `verify(data, sig, options?)`. */
export const PATCHED_ARITY = { sign: 2, verify: 3 } as const

interface Protos {
  privateProto: { sign: unknown }
  publicProto: { verify: unknown }
}

/** The prototypes of @libp2p/crypto's Ed25519 key classes, found through a key of each. */
export function ed25519Prototypes (): Protos {
  const sample = privateKeyFromRaw(new Uint8Array(64).fill(1))
  return {
    privateProto: Object.getPrototypeOf(sample) as { sign: unknown },
    publicProto: Object.getPrototypeOf(publicKeyFromRaw(sample.publicKey.raw)) as { verify: unknown }
  }
}

let installed = false

/**
 * Makes every Ed25519 key of `@libp2p/crypto` in this process sign and verify
 * with a cached key object. Idempotent. Returns false, and patches nothing,
 * when the methods are not the ones this was written against (an upgrade of
 * @libp2p/crypto): the keys then keep working as the library made them.
 */
export function installEd25519KeyCache (): boolean {
  if (installed) return true
  const { privateProto, publicProto } = ed25519Prototypes()
  if (typeof privateProto.sign !== 'function' || privateProto.sign.length !== PATCHED_ARITY.sign ||
    typeof publicProto.verify !== 'function' || publicProto.verify.length !== PATCHED_ARITY.verify) return false
  installed = true
  const checkSignal = (options?: { signal?: AbortSignal }): void => { options?.signal?.throwIfAborted() }
  publicProto.verify = function verify (this: { raw: Uint8Array }, data: Bytes, sig: Uint8Array, options?: { signal?: AbortSignal }): boolean {
    checkSignal(options)
    if (!(sig instanceof Uint8Array) || sig.byteLength !== 64) throw new TypeError('"sig" must be 64 bytes in length.')
    return nodeVerify(null, flat(data), publicKeyObject(this.raw), sig)
  }
  privateProto.sign = function sign (this: { raw: Uint8Array }, message: Bytes, options?: { signal?: AbortSignal }): Uint8Array {
    checkSignal(options)
    if (this.raw.byteLength !== 64) throw new TypeError('"key" must be 64 bytes in length.')
    return nodeSign(null, flat(message), privateKeyObject(this, this.raw))
  }
  return true
}
