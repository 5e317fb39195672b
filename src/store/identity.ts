import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import type { Store } from './store.ts'

const KEY = 'identity.privateKey'

/** The agent's libp2p key: made once, then the same peer id across restarts on the same data dir. */
export async function loadOrCreateIdentity (store: Store): Promise<PrivateKey> {
  const stored = store.getMeta(KEY)
  // Two copies of @libp2p/interface's types are installed; the key is the same at run time.
  if (stored != null) return privateKeyFromProtobuf(stored) as unknown as PrivateKey
  const key = await generateKeyPair('Ed25519')
  store.setMeta(KEY, privateKeyToProtobuf(key))
  return key as unknown as PrivateKey
}
