/**
 * The libp2p host: TCP, noise, yamux, identify, ping and gossipsub, with the
 * settings a many-agents-on-one-host cluster needs (NOTES.md):
 * 1. `fastMsgIdFn` (from + seqno) so duplicate copies are dropped before
 *    their signature is verified — a third of all CPU otherwise;
 * 2. IP colocation weight 0 — every peer on 127.0.0.1 (or behind one NAT)
 *    would otherwise be scored down to the graylist and the mesh collapses;
 * 3. a high `inboundConnectionThreshold` — agents that start together dial
 *    each other faster than the default 5 per second per host allows.
 * And for the CPU each message costs (a delivery is tens to hundreds of
 * microseconds of JavaScript, whatever its size):
 * 4. writes coalesced under noise (patches/coalesce.ts): the frames yamux writes in
 *    one turn of the event loop become one noise message and one system call;
 * 5. noise's session keys turned into Node key objects once (patches/noise-crypto.ts);
 * 6. a small mesh and rare, patient pings (config.ts: `gossip.meshDegree`,
 *    `connection.pingIntervalMs`, `connection.pingTimeoutMs`): with flood
 *    publishing, relays mostly send copies that are dropped on arrival; a
 *    ping is a stream per connection, and one that times out on a busy
 *    machine closes a healthy connection;
 * 7. Ed25519 keys turned into Node key objects once (patches/ed25519-keys.ts), not
 *    on every signature and every check;
 * 8. IDONTWANT (gossipsub 1.2) only for messages of 128 KiB or more: each one
 *    is a message to every mesh peer, sent when the copies it would spare are
 *    mostly on their way already (with flood publishing every peer gets the
 *    original at once). It paid off only for large messages; a state message
 *    is a few kB.
 * And for what an idle connection costs (a hundred agents on one host):
 * 9. no yamux keep-alive: libp2p's connection monitor already pings every
 *    connection (`pingIntervalMs`), and a second ping per connection was
 *    only more wake-ups;
 * 10. a slower gossipsub heartbeat and fewer lazy (IHAVE) peers where asked
 *    (config.ts, `connection.gossipHeartbeatMs`, `connection.gossipLazyPeers`):
 *    each heartbeat sends IHAVE to `Dlazy` peers outside the mesh whenever a
 *    message was seen in the last three heartbeats, which on an idle cluster
 *    was as many messages as the states themselves;
 * 11. a yamux window update once half a stream's receive window is consumed
 *    (patches/yamux-window.ts), not after every message it reads.
 * And for what a stream costs:
 * 12. the protocol of each stream recorded in the peer store only when the
 *    peer's record does not list it yet (patches/peer-protocols.ts).
 *
 * Who may connect: only peers with the swarm key (swarm-key.ts), when there
 * is one; and, with `--admin`, not the peers an admin partition blocks
 * (partition-gater.ts). Peers are found through the bootstrap list and, with
 * `mdns`, by multicast DNS on the local network segment.
 */
import { gossipsub } from '@chainsafe/libp2p-gossipsub'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { mdns } from '@libp2p/mdns'
import type { PrivateKey } from '@libp2p/interface'
import { ping } from '@libp2p/ping'
import { preSharedKey } from '@libp2p/pnet'
import { tcp } from '@libp2p/tcp'
import { createLibp2p, type Libp2p } from 'libp2p'
import { LIMITS } from '../core/messages.ts'
import type { PartitionGater } from './partition-gater.ts'
import { coalescingEncrypter, installEd25519KeyCache, installProtocolMergeCache, installYamuxWindowUpdates, noiseCrypto } from './patches/index.ts'
import { libp2pLogger } from './quiet-logger.ts'
import { readSwarmKey } from './swarm-key.ts'

export interface HostInit {
  privateKey: PrivateKey
  listen: string
  /** A swarm key file (swarm-key.ts): only peers with the same key connect. A malformed one throws SwarmKeyError. */
  swarmKeyFile?: string
  /** Admin partitions (`--admin`): the gater refuses the blocked peers' connections and streams. */
  gater?: PartitionGater
  /** Find peers on the local network segment by multicast DNS, and dial them. Default off. */
  mdns?: { intervalMs: number }
  /** Gossipsub's mesh degree D (config.ts, `gossip.meshDegree`). Default 6, gossipsub's. */
  meshDegree?: number
  /** libp2p's connection monitor's ping interval (config.ts, `connection.pingIntervalMs`). Default 10 s, libp2p's. */
  pingIntervalMs?: number
  /** How long a ping may take before the connection is closed (config.ts, `connection.pingTimeoutMs`). Default 5 s, libp2p's. */
  pingTimeoutMs?: number
  /** Gossipsub's heartbeat interval (config.ts, `connection.gossipHeartbeatMs`). Default 1 s, gossipsub's. */
  gossipHeartbeatMs?: number
  /** Peers outside the mesh sent IHAVE at each heartbeat (config.ts, `connection.gossipLazyPeers`). Default the mesh degree, gossipsub's. */
  gossipLazyPeers?: number
  /**
   * Gossipsub dropped what `peer` sent before any validator saw it: a frame
   * over `maxInboundDataLength` or one that does not decode (gossipsub ends
   * the peer's stream, and what followed on it is lost), or any message of a
   * peer whose score fell below the graylist threshold (it misbehaved:
   * grafts during a backoff, broken promises). Counted as invalid gossip.
   */
  onGossipDropped?: (peer: string, reason: string) => void
}

/** it-length-prefixed's errors for a frame gossipsub refuses to read (too long, or a length that does not decode). */
const FRAMING_ERRORS = new Set(['InvalidMessageLengthError', 'InvalidDataLengthError', 'InvalidDataLengthLengthError'])

/** What gossipsub drops before any validator, silently (a metric only when libp2p metrics are on). */
interface GossipsubDrops {
  acceptFrom: (id: string) => boolean
  handlePeerReadStreamError: (err: Error, peerId: { toString: () => string }) => void
}

/**
 * Wraps the two places where gossipsub drops a peer's input unread — every
 * RPC of a graylisted peer (`acceptFrom`), and a stream whose frame is too
 * large or does not decode (`handlePeerReadStreamError`) — so that they are
 * counted like any other refused input.
 */
function countDroppedGossip (pubsub: GossipsubDrops, onDropped: (peer: string, reason: string) => void): void {
  const accept = pubsub.acceptFrom.bind(pubsub)
  pubsub.acceptFrom = (id) => {
    const ok = accept(id)
    if (!ok) onDropped(id, 'gossip from a peer gossipsub graylisted (its score fell below the graylist threshold): ignored unread')
    return ok
  }
  const readError = pubsub.handlePeerReadStreamError.bind(pubsub)
  pubsub.handlePeerReadStreamError = (err, peerId) => {
    // Only the framing's refusals: a stream that ends because its peer died or left is no one's bad input.
    if (FRAMING_ERRORS.has(err?.name)) onDropped(peerId.toString(), `gossip stream ended unread: ${err.name}: ${String(err.message).slice(0, 200)} (frames up to ${4 * LIMITS.maxMessageBytes} bytes)`)
    readError(err, peerId)
  }
}

function b64 (bytes: Uint8Array | undefined): string {
  return bytes == null ? '' : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')
}

/** Gossipsub's degrees around D, in gossipsub's own proportions (D 6 gives its defaults: 4, 12, 6, 2, 4). */
function meshDegrees (d: number): { D: number, Dlo: number, Dhi: number, Dlazy: number, Dout: number, Dscore: number } {
  const lo = Math.max(1, Math.round(2 * d / 3))
  return { D: d, Dlo: lo, Dhi: 2 * d, Dlazy: d, Dout: Math.floor(d / 3), Dscore: lo }
}

export async function createHost (init: HostInit): Promise<Libp2p<{ pubsub: ReturnType<ReturnType<typeof gossipsub>>, identify: unknown, ping: unknown }>> {
  installEd25519KeyCache()
  installYamuxWindowUpdates()
  const psk = init.swarmKeyFile != null ? readSwarmKey(init.swarmKeyFile).psk : undefined
  const logger = libp2pLogger()
  const node = await createLibp2p({
    privateKey: init.privateKey,
    ...(logger != null ? { logger } : {}),
    addresses: { listen: [init.listen] },
    transports: [tcp()],
    connectionEncrypters: [coalescingEncrypter(noise({ crypto: noiseCrypto }))],
    streamMuxers: [yamux({ enableKeepAlive: false })],
    ...(psk != null ? { connectionProtector: preSharedKey({ psk }) } : {}),
    ...(init.gater != null ? { connectionGater: init.gater.connectionGater } : {}),
    ...(init.mdns != null ? { peerDiscovery: [mdns({ interval: init.mdns.intervalMs })] } : {}),
    connectionManager: {
      maxConnections: 400,
      inboundConnectionThreshold: 10_000,
      maxIncomingPendingConnections: 200
    },
    connectionMonitor: { pingInterval: init.pingIntervalMs ?? 10_000, pingTimeout: { minTimeout: init.pingTimeoutMs ?? 5_000, maxTimeout: Math.max(60_000, init.pingTimeoutMs ?? 0) } },
    services: {
      identify: identify(),
      // The connection monitor's pings land here: the answering side waits as long as the asking side.
      ping: ping({ timeout: init.pingTimeoutMs ?? 10_000 }),
      pubsub: gossipsub({
        allowPublishToZeroTopicPeers: true,
        ignoreDuplicatePublishError: true,
        emitSelf: false,
        // Four times our own bound: a message over it still reaches the state topic's edge, which refuses and counts it;
        // a frame over this one ends the sender's stream (what follows on it is lost), counted by countDroppedGossip.
        maxInboundDataLength: 4 * LIMITS.maxMessageBytes,
        fastMsgIdFn: (msg) => b64(msg.from) + b64(msg.seqno),
        scoreParams: { IPColocationFactorWeight: 0 },
        idontwantMinDataSize: 128 * 1024,
        ...meshDegrees(init.meshDegree ?? 6),
        ...(init.gossipHeartbeatMs != null ? { heartbeatInterval: init.gossipHeartbeatMs } : {}),
        ...(init.gossipLazyPeers != null ? { Dlazy: init.gossipLazyPeers } : {})
      })
    }
  })
  init.gater?.attach(node as any)
  installProtocolMergeCache(node as any)
  if (init.onGossipDropped != null) countDroppedGossip(node.services.pubsub as any, init.onGossipDropped)
  // libp2p 2 only records a discovered peer: dial it, unless a connection is open already.
  if (init.mdns != null) {
    node.addEventListener('peer:discovery', (evt) => {
      const id = evt.detail.id
      if (node.getConnections(id).length === 0) node.dial(id).catch(() => {})
    })
  }
  return node as any
}
