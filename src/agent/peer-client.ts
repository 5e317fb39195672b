/**
 * Requests to other agents: where to dial a peer (the open connection, or its
 * gossiped addresses), place requests on the long-lived pipelined stream,
 * one-shot requests of the other stream protocols, and the sign of life an
 * answer is. A request to ourselves is served locally without the network.
 */
import type { Libp2p, PeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import type { z } from 'zod'
import type { PlaceRequest, PlaceResponse } from '../core/messages.ts'
import { PlaceClient, rpcRequest } from '../net/index.ts'
import type { LocalNode } from './local-node.ts'
import type { Membership } from './membership.ts'

/** Parsed peer ids kept; the cache starts over beyond this. */
const MAX_PEER_IDS = 10_000

export interface PeerClientComponents {
  self: string
  libp2p: Libp2p
  local: LocalNode
  membership: Membership
}

export interface PeerClientInit {
  /** Timeout of one request. */
  requestTimeoutMs: number
}

export class PeerClient {
  readonly #c: PeerClientComponents
  readonly #init: PeerClientInit
  readonly #peerIds = new Map<string, PeerId>()
  readonly #place: PlaceClient

  constructor (components: PeerClientComponents, init: PeerClientInit) {
    this.#c = components
    this.#init = init
    this.#place = new PlaceClient({ libp2p: components.libp2p, timeoutMs: init.requestTimeoutMs })
  }

  /** One place request to a node: ours is served here, a peer's over `/discovery/place/1.1.0`. */
  async place (peerId: string, req: PlaceRequest): Promise<PlaceResponse> {
    if (peerId === this.#c.self) return await this.#c.local.handle(req, this.#c.self)
    const res = await this.#place.request(this.dialTarget(peerId), req)
    this.#c.membership.heard(peerId)
    return res
  }

  /** One request of a one-shot stream protocol, validated against `schema`. */
  async rpc<S extends z.ZodType> (peerId: string, protocol: string, req: unknown, schema: S): Promise<z.infer<S>> {
    const res = await rpcRequest(this.#c.libp2p, this.dialTarget(peerId), protocol, req, schema, this.#init.requestTimeoutMs)
    this.#c.membership.heard(peerId)
    return res
  }

  stop (): void {
    this.#place.stop()
    this.#peerIds.clear()
  }

  /** Whether a connection to `peerId` is open (a request to it then dials nothing). */
  connected (peerId: string): boolean {
    return this.#c.libp2p.getConnections(this.#peerIdOf(peerId)).length > 0
  }

  /** The peer itself when we are connected (or know no address); else its gossiped addresses. */
  dialTarget (peerId: string): PeerId | Multiaddr[] {
    const id = this.#peerIdOf(peerId)
    const entry = this.#c.membership.view.get(peerId)
    return this.connected(peerId) || entry == null ? id : entry.state.addrs.map(a => multiaddr(`${a}/p2p/${peerId}`))
  }

  /** Peer ids parsed once: base58, multihash and key decoding on every request otherwise. */
  #peerIdOf (peerId: string): PeerId {
    let id = this.#peerIds.get(peerId)
    if (id == null) {
      id = peerIdFromString(peerId)
      if (this.#peerIds.size >= MAX_PEER_IDS) this.#peerIds.clear()
      this.#peerIds.set(peerId, id)
    }
    return id
  }
}
