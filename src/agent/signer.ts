/**
 * The `Signer` of core/ownership.ts with the agent's libp2p identity: it
 * signs with its Ed25519 key and checks a peer's signature with the public
 * key its peer id embeds (an Ed25519 peer id is its public key, inlined).
 * Node's crypto does both synchronously; key objects are made once per peer.
 */
import { createPrivateKey, createPublicKey, type KeyObject, sign, verify } from 'node:crypto'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Signer } from '../core/ownership.ts'

/** Peers whose key objects are kept; the cache starts over beyond this. */
const MAX_KEYS = 10_000

export function ed25519Signer (privateKey: PrivateKey, self: string): Signer {
  if (privateKey.type !== 'Ed25519') throw new Error(`ownership proofs need an Ed25519 identity, not ${privateKey.type}`)
  const raw = privateKey.raw
  const key = createPrivateKey({ format: 'jwk', key: { kty: 'OKP', crv: 'Ed25519', d: Buffer.from(raw.subarray(0, 32)).toString('base64url'), x: Buffer.from(raw.subarray(32, 64)).toString('base64url') } })
  const keys = new Map<string, KeyObject | null>()
  const publicKey = (peerId: string): KeyObject | null => {
    let k = keys.get(peerId)
    if (k !== undefined) return k
    try {
      const pub = peerIdFromString(peerId).publicKey
      k = pub?.type === 'Ed25519' ? createPublicKey({ format: 'jwk', key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(pub.raw).toString('base64url') } }) : null
    } catch {
      k = null
    }
    if (keys.size >= MAX_KEYS) keys.clear()
    keys.set(peerId, k)
    return k
  }
  return {
    self,
    sign: (bytes) => new Uint8Array(sign(null, bytes, key)),
    verify: (peerId, bytes, sig) => {
      const k = publicKey(peerId)
      return k != null && verify(null, bytes, k, sig)
    }
  }
}
