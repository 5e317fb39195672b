/**
 * Real Ed25519 identities for the unit tests of ownership proofs: keys made
 * by @libp2p/crypto, peer ids made from them, and a `Signer` that signs and
 * checks with libp2p's own key classes (pure computation, no I/O). The
 * agent's signer (src/agent/signer.ts) is checked against this one.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import type { Signer } from '../../src/core/ownership.ts'

export interface Identity {
  id: string
  key: PrivateKey
  signer: Signer
}

function sync<T> (v: T | Promise<T>): T {
  if (v instanceof Promise) throw new Error('@libp2p/crypto answered asynchronously: these tests expect Node\'s synchronous Ed25519')
  return v
}

export function libp2pSigner (key: PrivateKey, id: string): Signer {
  return {
    self: id,
    sign: (bytes) => sync(key.sign(bytes)),
    verify: (peerId, bytes, sig) => {
      const pub = peerIdFromString(peerId).publicKey
      return pub != null && sync(pub.verify(bytes, sig))
    }
  }
}

export async function identity (): Promise<Identity> {
  const key = await generateKeyPair('Ed25519') as unknown as PrivateKey
  const id = peerIdFromPrivateKey(key as any).toString()
  return { id, key, signer: libp2pSigner(key, id) }
}

/** `n` identities, sorted by peer id (so that a test can name the higher one of a tie). */
export async function identities (n: number): Promise<Identity[]> {
  const out = await Promise.all(Array.from({ length: n }, async () => await identity()))
  return out.sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
}
