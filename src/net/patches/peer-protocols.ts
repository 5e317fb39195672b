/**
 * libp2p 2.10.0 records, on every stream it opens or accepts, the stream's
 * protocol in the peer store (`peerStore.merge(peer, { protocols: [p] })` in
 * its Connection): a write lock, the peer's record read and decoded from the
 * datastore, merged, compared — for a protocol the record lists already on
 * every stream but the first. Under the placement load (20 agents on one
 * host, a stream per place, replica and detector exchange) that was 5.9 % of
 * an agent's CPU. This wraps the store's `merge` on the instance: a merge
 * that only adds protocols the peer's record is known to list returns at
 * once (with no record: libp2p's Connection ignores what it returns). Our
 * own record is never shortcut. What the record lists is learnt from the store's own answers and
 * `peer:update` events (every write that changes a record sends one); a
 * `delete` forgets it. Anything else goes to the store as before.
 */
import type { Libp2p, Peer, PeerId } from '@libp2p/interface'
import { DiscoveryError } from '../../core/errors.ts'

/** What the patch wraps changed (a libp2p upgrade): it says what to re-check. */
export class UnexpectedPeerStoreError extends DiscoveryError {
  static name = 'UnexpectedPeerStoreError'
  static defaultMessage = 'the peer store is not what src/net/patches/peer-protocols.ts was written against: re-check it against libp2p and @libp2p/peer-store'
}

/** Peers whose protocols are remembered; beyond it the oldest are forgotten (they then go to the store again). */
const MAX_PEERS = 4_096

interface PeerStoreLike {
  merge: (id: PeerId, data: Record<string, unknown>, options?: unknown) => Promise<Peer>
  delete: (id: PeerId, options?: unknown) => Promise<void>
}

/** Installs the shortcut on `node`'s peer store; returns how many merges it spared so far (for tests). */
export function installProtocolMergeCache (node: Pick<Libp2p, 'peerId' | 'peerStore' | 'addEventListener'>): () => number {
  const store = node.peerStore as unknown as PeerStoreLike
  if (typeof store.merge !== 'function' || typeof store.delete !== 'function') throw new UnexpectedPeerStoreError()
  const merge = store.merge.bind(store)
  const del = store.delete.bind(store)
  const known = new Map<string, Set<string>>()
  let spared = 0
  const remember = (peer: Peer): void => {
    const id = peer.id.toString()
    known.delete(id)
    known.set(id, new Set(peer.protocols))
    if (known.size > MAX_PEERS) known.delete(known.keys().next().value!)
  }
  store.merge = async (id, data, options) => {
    const protocols = data.protocols
    // Our own record is left alone: protocols we stop handling are removed from it, and may be handled again.
    if (Array.isArray(protocols) && Object.keys(data).length === 1 && !id.equals(node.peerId)) {
      const held = known.get(id.toString())
      if (held != null && protocols.every(p => held.has(p))) {
        spared++
        return undefined as unknown as Peer
      }
    }
    const peer = await merge(id, data, options)
    if (peer?.id != null && Array.isArray(peer.protocols) && !id.equals(node.peerId)) remember(peer)
    return peer
  }
  store.delete = async (id, options) => {
    known.delete(id.toString())
    await del(id, options)
  }
  node.addEventListener('peer:update', (evt) => {
    const peer = evt.detail?.peer
    if (peer?.id != null && Array.isArray(peer.protocols)) remember(peer)
  })
  return () => spared
}
