/**
 * `/discovery/bye/1.0.0`: with a bounded fan-out (core/fanout.ts) an agent
 * closes idle connections on purpose, and a closed connection is otherwise
 * what tells a peer that an agent died (cluster-view.ts: dead a few seconds
 * after its connection closed). So the agent says bye first and closes once
 * the peer has answered; both sides remember, for a while, that this
 * connection ended on purpose. An agent that dies says nothing: its
 * connections reset, and its peers see it dead as before.
 */
import type { Libp2p } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Clock } from '../core/clock.ts'
import { byeRequestSchema, byeResponseSchema } from '../core/fanout-messages.ts'
import { PROTOCOL_VERSION } from '../core/messages.ts'
import { expectNumber } from '../core/options.ts'
import { BYE_PROTOCOL } from './protocols.ts'
import { RpcServer, rpcRequest } from './rpc.ts'

export interface FarewellInit {
  libp2p: Libp2p
  clock: Clock
  /** How long a bye may take to be answered; the connection is closed either way. Default 3 s. */
  timeoutMs?: number
  /** How long a bye, sent or heard, explains a closed connection. Default 30 s. */
  rememberMs?: number
  onInvalid: (from: string, reason: string) => void
}

/** Peers remembered; the oldest go beyond this. */
const MAX_REMEMBERED = 10_000

export class Farewell {
  readonly #init: FarewellInit
  readonly #server: RpcServer<typeof byeRequestSchema>
  readonly #timeoutMs: number
  readonly #rememberMs: number
  /** Peers we said bye to, and when. */
  readonly #said = new Map<string, number>()
  /** Peers that said bye to us, and when. */
  readonly #heard = new Map<string, number>()

  constructor (init: FarewellInit) {
    this.#init = init
    this.#timeoutMs = expectNumber('timeoutMs', init.timeoutMs ?? 3_000, { above: 0 })
    this.#rememberMs = expectNumber('rememberMs', init.rememberMs ?? 30_000, { above: 0 })
    this.#server = new RpcServer({
      libp2p: init.libp2p,
      protocol: BYE_PROTOCOL,
      schema: byeRequestSchema,
      timeoutMs: this.#timeoutMs,
      onInvalid: init.onInvalid,
      handle: async (_req, from) => {
        remember(this.#heard, from, init.clock.now())
        return { v: PROTOCOL_VERSION, ok: true }
      }
    })
  }

  async start (): Promise<void> { await this.#server.start() }
  async stop (): Promise<void> { await this.#server.stop() }

  /** Says bye to the peer, then closes every connection to it (even if the bye went unanswered). */
  async close (peerId: string): Promise<void> {
    const { libp2p, clock } = this.#init
    remember(this.#said, peerId, clock.now())
    const id = peerIdFromString(peerId)
    try {
      await rpcRequest(libp2p, id, BYE_PROTOCOL, { v: PROTOCOL_VERSION }, byeResponseSchema, this.#timeoutMs)
    } catch {
      // It may still take the close for a death; it will hear from us again through gossip.
    }
    await Promise.all(libp2p.getConnections(id).map(async c => { await c.close().catch(() => { c.abort(new Error('closed after bye')) }) }))
  }

  /** Whether the last connection with the peer ended on purpose (a bye, either way, lately). */
  leftOnPurpose (peerId: string): boolean {
    const now = this.#init.clock.now()
    return this.#recent(this.#said, peerId, now) || this.#recent(this.#heard, peerId, now)
  }

  /** Whether the peer closed a connection with us on purpose lately: it has enough, dial others. */
  saidBye (peerId: string, withinMs: number): boolean {
    const at = this.#heard.get(peerId)
    return at != null && this.#init.clock.now() - at < withinMs
  }

  #recent (map: Map<string, number>, peerId: string, now: number): boolean {
    const at = map.get(peerId)
    return at != null && now - at < this.#rememberMs
  }
}

function remember (map: Map<string, number>, peerId: string, now: number): void {
  map.delete(peerId)
  map.set(peerId, now)
  if (map.size > MAX_REMEMBERED) map.delete(map.keys().next().value!)
}
