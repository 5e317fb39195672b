/**
 * `/discovery/view/1.0.0`: an agent asks a peer for the states it holds newer
 * than its own (sending what it has, as (incarnation, seq) per peer). An
 * agent that joins a cluster otherwise knows only the states published after
 * it connected: the others refresh theirs every few minutes in a large
 * local cluster (core/gossip-policy.ts). With a bounded fan-out
 * (core/fanout.ts) it is also how a state missed while the mesh formed is
 * caught up. The states come relayed, not signed by their owners: peers trust
 * each other (the swarm key decides who is a peer), each state is checked
 * against the same schema as gossip, and the newest by (incarnation, seq)
 * wins as always.
 */
import type { Libp2p, PeerId } from '@libp2p/interface'
import { LIMITS, type NodeState } from '../core/messages.ts'
import { type ViewRequest, viewRequestSchema, type ViewResponse, viewResponseSchema } from '../core/fanout-messages.ts'
import { PROTOCOL_VERSION } from '../core/messages.ts'
import { VIEW_PROTOCOL } from './protocols.ts'
import { RpcServer, rpcRequest } from './rpc.ts'

export interface ViewSyncInit {
  libp2p: Libp2p
  timeoutMs: number
  /** The states this agent holds, its own included. */
  states: () => Iterable<NodeState>
  /** A state merged so recently that gossip is still bringing it to the others: sent only to an asker that lacks its peer. */
  fresh?: (state: NodeState) => boolean
  /** The asking peer's own state, checked to name it. */
  onPeerState: (state: NodeState, from: string) => void
  onInvalid: (from: string, reason: string) => void
}

/** Room left in an answer for its envelope. */
const ENVELOPE_BYTES = 1024

/**
 * The states `held` has newer than what `known` lists (or that it does not
 * list), within `maxBytes` of JSON. A newer state of a peer the asker knows
 * is left out while `fresh` says gossip is still bringing it to everyone:
 * under load each peer's state changes several times a second, and a sync
 * would otherwise relay every one of them again (measured at 20 agents under
 * the placement load: 1.6 relayed states per create, 96 % of them already
 * held by the time they arrived).
 */
export function newerStates (held: Iterable<NodeState>, known: ViewRequest['known'], asker: string, maxBytes: number, fresh: (state: NodeState) => boolean = () => false): ViewResponse {
  const theirs = new Map(known.map(([peerId, incarnation, seq]) => [peerId, { incarnation, seq }]))
  const states: NodeState[] = []
  let bytes = ENVELOPE_BYTES
  let more = false
  for (const s of held) {
    if (s.peerId === asker) continue
    const k = theirs.get(s.peerId)
    if (k != null && (k.incarnation > s.incarnation || (k.incarnation === s.incarnation && k.seq >= s.seq) || fresh(s))) continue
    const size = JSON.stringify(s).length + 1
    if (bytes + size > maxBytes) {
      more = true
      continue
    }
    bytes += size
    states.push(s)
  }
  return more ? { v: PROTOCOL_VERSION, states, more } : { v: PROTOCOL_VERSION, states }
}

export class ViewSync {
  readonly #init: ViewSyncInit
  readonly #server: RpcServer<typeof viewRequestSchema>

  constructor (init: ViewSyncInit) {
    this.#init = init
    this.#server = new RpcServer({
      libp2p: init.libp2p,
      protocol: VIEW_PROTOCOL,
      schema: viewRequestSchema,
      timeoutMs: init.timeoutMs,
      onInvalid: init.onInvalid,
      handle: async (req, from) => {
        if (req.self != null) {
          if (req.self.peerId === from) init.onPeerState(req.self, from)
          else init.onInvalid(from, `view request carries the state of ${req.self.peerId}, not of its sender`)
        }
        return newerStates(init.states(), req.known, from, LIMITS.maxMessageBytes, init.fresh)
      }
    })
  }

  async start (): Promise<void> { await this.#server.start() }
  async stop (): Promise<void> { await this.#server.stop() }

  /** Asks `peer` for the states it holds newer than ours (`known`); tells it ours (`self`). */
  async ask (peer: PeerId, known: NodeState[], self?: NodeState): Promise<ViewResponse> {
    const req: ViewRequest = { v: PROTOCOL_VERSION, known: known.map(s => [s.peerId, s.incarnation, s.seq]) }
    if (self != null) req.self = self
    return await rpcRequest(this.#init.libp2p, peer, VIEW_PROTOCOL, req, viewResponseSchema, this.#init.timeoutMs)
  }
}
