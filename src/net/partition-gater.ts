/**
 * Partitions on demand, for tests and chaos (`POST /v1/admin/partition`):
 * this agent refuses and drops its connections to given peers through
 * libp2p's connection gater, and lifts it again. The agent owns one, made
 * only when it runs with `--admin`, and hands it to `createHost`.
 *
 * Two directions:
 * - `both`: every connection with the peer is closed, its new connections
 *   are refused after the handshake (`denyInboundEncryptedConnection`), and
 *   our own dials to it are refused (`denyDialPeer`, and
 *   `denyOutboundEncryptedConnection` for a dial by address alone). Blocking
 *   on one side is enough for a partition of the pair.
 * - `inbound` (one way: drop what comes from them). TCP has no one-way
 *   connection: each direction carries the other's acknowledgements, and on
 *   a libp2p connection a request and its answer travel one stream. So one
 *   way means who may *start* an exchange, as behind a stateful firewall:
 *   their connections to us are closed and refused, and every stream they
 *   open on a connection we dialed is reset as soon as its protocol is known —
 *   their requests, and their gossip, since gossipsub sends on a stream the
 *   sender opens. What we start still works: we dial them, our requests reach
 *   them and their answers reach us. So they cannot reach us, we can reach
 *   them. The connection's own upkeep (libp2p's ping and identify) is let
 *   through: refused, their connection monitor would close the connection we
 *   opened at its next ping, and the one-way fault would turn into a two-way
 *   one.
 *
 * `heal` lifts the blocks and dials the healed peers again: with other
 * connections open, nothing else would.
 */
import type { Connection, Libp2p, PeerId, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Clock } from '../core/clock.ts'
import { DiscoveryError } from '../core/errors.ts'
import { LIBP2P_UPKEEP_PROTOCOLS } from './protocols.ts'

export type PartitionDirection = 'both' | 'inbound'

export interface BlockedPeer {
  peerId: string
  direction: PartitionDirection
  /** When the block was set (the clock's milliseconds). */
  sinceMs: number
}

/** What the gater refused: counted by the agent (`discovery_partition_refused_total{what}`). */
export type Refused = 'dial' | 'inbound-connection' | 'outbound-connection' | 'stream'

export interface PartitionGaterInit {
  clock: Clock
  /** Something was refused because of a block (for a metric). */
  onRefused?: (what: Refused, peerId: string) => void
}

/** The reason a connection or stream of a blocked peer is closed. */
export class PartitionedError extends DiscoveryError {
  static name = 'PartitionedError'
  static defaultMessage = 'this agent is partitioned from the peer (admin partition)'
}

/** Thrown at `attach` when libp2p no longer has the registrar this file wraps: re-check it on an upgrade. */
export class UnexpectedRegistrarError extends DiscoveryError {
  static name = 'UnexpectedRegistrarError'
  static defaultMessage = 'libp2p has no components.registrar.getHandler: re-check src/net/partition-gater.ts against libp2p'
}

/** How long a dial of the gater's own (one way's replacement connection, a heal) may take. */
const DIAL_TIMEOUT_MS = 10_000

type Handler = (data: { connection: Connection, stream: Stream }) => void | Promise<void>

/** libp2p's `ConnectionGater`, as the plain object of functions `createLibp2p` spreads into its defaults. */
export interface Libp2pGater {
  denyDialPeer: (peerId: PeerId) => Promise<boolean>
  denyInboundEncryptedConnection: (peerId: PeerId) => Promise<boolean>
  denyOutboundEncryptedConnection: (peerId: PeerId) => Promise<boolean>
}

export class PartitionGater {
  readonly #init: PartitionGaterInit
  readonly #blocked = new Map<string, BlockedPeer>()
  #libp2p?: Libp2p
  /**
   * What createLibp2p takes as `connectionGater`. A plain object of closures:
   * libp2p spreads it over its own defaults, so methods on a prototype would be lost.
   */
  readonly connectionGater: Libp2pGater

  constructor (init: PartitionGaterInit) {
    this.#init = init
    const refuse = (what: Refused, peerId: PeerId, when: (b: BlockedPeer) => boolean): boolean => {
      const b = this.#blocked.get(peerId.toString())
      if (b == null || !when(b)) return false
      this.#init.onRefused?.(what, b.peerId)
      return true
    }
    this.connectionGater = {
      denyDialPeer: async (peerId) => refuse('dial', peerId, b => b.direction === 'both'),
      denyOutboundEncryptedConnection: async (peerId) => refuse('outbound-connection', peerId, b => b.direction === 'both'),
      // Both directions refuse their connections: `inbound` is precisely "nothing they start".
      denyInboundEncryptedConnection: async (peerId) => refuse('inbound-connection', peerId, () => true)
    }
  }

  /**
   * Gives the gater the started host: it closes connections through it, dials
   * on heal, and gates the streams peers open (libp2p's gater has no hook for
   * streams, so the registrar's handler lookup is wrapped).
   */
  attach (libp2p: Libp2p): void {
    const registrar = (libp2p as any).components?.registrar
    if (typeof registrar?.getHandler !== 'function') throw new UnexpectedRegistrarError()
    this.#libp2p = libp2p
    const getHandler = registrar.getHandler.bind(registrar) as (protocol: string) => { handler: Handler, options: unknown }
    registrar.getHandler = (protocol: string) => {
      const found = getHandler(protocol)
      if (this.#blocked.size === 0 || LIBP2P_UPKEEP_PROTOCOLS.includes(protocol)) return found
      return {
        ...found,
        handler: (data: { connection: Connection, stream: Stream }) => {
          const peerId = data.connection.remotePeer.toString()
          if (!this.#blocked.has(peerId)) return found.handler(data)
          this.#init.onRefused?.('stream', peerId)
          data.stream.abort(new PartitionedError())
        }
      }
    }
  }

  /**
   * Blocks the peers (a new direction replaces an older one); returns every
   * block now in force. One way, a connection the peer had opened is replaced
   * by one this agent opens (dialed before the peer's is closed, so that the
   * peer never looks disconnected): we still reach them.
   */
  async block (peerIds: string[], opts: { direction: PartitionDirection }): Promise<BlockedPeer[]> {
    const now = this.#init.clock.now()
    const ids = [...new Set(peerIds)]
    for (const peerId of ids) {
      const old = this.#blocked.get(peerId)
      this.#blocked.set(peerId, { peerId, direction: opts.direction, sinceMs: old?.direction === opts.direction ? old.sinceMs : now })
    }
    await Promise.all(ids.map(async id => { await this.#drop(id, opts.direction) }))
    return this.blocked()
  }

  /** Lifts the blocks of the peers (all of them when none are named) and dials them again; returns the peers healed. */
  heal (peerIds?: string[]): string[] {
    const healed = (peerIds ?? [...this.#blocked.keys()]).filter(id => this.#blocked.delete(id))
    for (const peerId of healed) void this.#redial(peerId)
    return healed
  }

  blocked (): BlockedPeer[] {
    return [...this.#blocked.values()].map(b => ({ ...b })).sort((a, b) => a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0)
  }

  /** Whether `peerId` is blocked, and how. */
  get (peerId: string): BlockedPeer | undefined {
    const b = this.#blocked.get(peerId)
    return b == null ? undefined : { ...b }
  }

  /** Closes what the block forbids now: every connection (both), or theirs and the streams they opened on ours (inbound). */
  async #drop (peerId: string, direction: PartitionDirection): Promise<void> {
    const libp2p = this.#libp2p
    if (libp2p == null) return
    let id: PeerId
    try {
      id = peerIdFromString(peerId)
    } catch {
      return
    }
    const conns = libp2p.getConnections(id as any)
    if (direction === 'inbound' && conns.length > 0 && !conns.some(c => c.direction === 'outbound' && c.status === 'open')) {
      try {
        await libp2p.dial(id as any, { force: true, signal: AbortSignal.timeout(DIAL_TIMEOUT_MS) })
      } catch {
        // Unreachable from here: their connection still goes; ours will be dialed when we need one.
      }
    }
    const err = new PartitionedError()
    for (const conn of conns) {
      if (direction === 'both' || conn.direction === 'inbound') {
        conn.abort(err)
        continue
      }
      for (const stream of conn.streams) {
        if (stream.direction === 'inbound' && !LIBP2P_UPKEEP_PROTOCOLS.includes(stream.protocol ?? '')) stream.abort(err)
      }
    }
  }

  async #redial (peerId: string): Promise<void> {
    const libp2p = this.#libp2p
    if (libp2p == null || this.#blocked.has(peerId)) return
    try {
      await libp2p.dial(peerIdFromString(peerId) as any, { signal: AbortSignal.timeout(DIAL_TIMEOUT_MS) })
    } catch {
      // Best effort: the peer may be gone, or reach us first; the redialer and the next request try again.
    }
  }
}
