/**
 * What an agent learns of the cluster from the peers it reaches, beyond what
 * gossip brings it (net/view-sync.ts):
 * - in its first minute (it is joining), it asks the peers it connects to
 *   for the states they hold newer than its own, one at a time, until two
 *   answers in a row brought nothing (core/join-syncs.ts);
 * - every `syncEveryMs`, if set, it asks one connected peer at random: with a
 *   bounded fan-out a state published while the mesh formed may have missed
 *   it (anti-entropy); 2 s after one that brought states it lacked, 5 s
 *   while its view grows (a peer gained in the last 10 s; core/view-sync-schedule.ts);
 * - at once, a peer whose failure detector names a peer it does not know
 *   (failure-detection.ts `onUnknown`); and, 2 s after it connected, a peer
 *   whose state it still lacks (it may know a part of the cluster this
 *   agent never heard of: two groups of agents that met late).
 * A relayed state is merged like a gossiped one, but is no sign of life of
 * its owner's and no message of the gossip budget (membership.ts).
 * Counted in `/metrics`: the syncs asked by why (`discovery_view_syncs_total`),
 * those answered, and what the states brought merged to.
 */
import type { Libp2p } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Logger } from 'pino'
import type { Clock } from '../core/clock.ts'
import { JoinSyncs } from '../core/join-syncs.ts'
import type { NodeState } from '../core/messages.ts'
import type { Rng } from '../core/rng.ts'
import { nextViewSyncMs } from '../core/view-sync-schedule.ts'
import { type StateGossip, ViewSync } from '../net/index.ts'
import type { Membership } from './membership.ts'
import type { Metrics } from './metrics.ts'

/** A peer connected and still unknown this long after is asked for its states (by then a newcomer's own state has come). */
const UNKNOWN_PEER_AFTER_MS = 2_000
/** One peer is not asked again within this. */
const ASK_AGAIN_AFTER_MS = 5_000
/**
 * A newer state of a peer the asker already knows is relayed only once held
 * this long: until then gossip is still bringing it (its delivery takes tens
 * to hundreds of ms), and a sync that relays it arrives after it (measured
 * under the placement load at 20 agents: 96 % of relayed states were already
 * held). A peer the asker lacks altogether is always sent.
 */
export const RELAY_AFTER_MS = 2_000

export interface PeerExchangeComponents {
  self: string
  clock: Clock
  rng: Rng
  log: Logger
  libp2p: Libp2p
  membership: Membership
  gossip: StateGossip
  metrics: Pick<Metrics, 'viewSyncs' | 'viewSyncsAnswered' | 'viewSyncStates'>
  invalid: (source: string, from: string, reason: string) => void
}

/** Why an agent asks a peer for its view (the `why` of `discovery_view_syncs_total`). */
export type ViewSyncReason = 'join' | 'unknown' | 'periodic'

export interface PeerExchangeInit {
  requestTimeoutMs: number
  /** Anti-entropy: how often one connected peer is asked; 0 for never (only while joining). */
  syncEveryMs: number
}

export class PeerExchange {
  readonly #c: PeerExchangeComponents
  readonly #init: PeerExchangeInit
  readonly #sync: ViewSync
  readonly #asked = new Map<string, number>()
  #joinSyncs = new JoinSyncs(-Infinity)
  #timer?: NodeJS.Timeout
  #started = false
  /** The view's size at the last schedule, and when it last grew: agents still joining. */
  #viewSize = 0
  #grewAtMs = -Infinity

  constructor (components: PeerExchangeComponents, init: PeerExchangeInit) {
    this.#c = components
    this.#init = init
    this.#sync = new ViewSync({
      libp2p: components.libp2p,
      timeoutMs: init.requestTimeoutMs,
      states: () => {
        components.metrics.viewSyncsAnswered.inc()
        return this.#held()
      },
      fresh: (state) => (this.#c.membership.view.get(state.peerId)?.stateSinceMs ?? -Infinity) > this.#c.clock.now() - RELAY_AFTER_MS,
      // From the peer itself, over its own connection: a sign of life (but no message of the gossip budget).
      onPeerState: (state) => {
        this.#c.gossip.seed(state)
        this.#c.membership.onState(state, true)
        this.#c.membership.heard(state.peerId)
      },
      onInvalid: (from, reason) => { components.invalid('view', from, reason) }
    })
  }

  async start (): Promise<void> {
    if (this.#started) return
    this.#started = true
    this.#joinSyncs = new JoinSyncs(this.#c.clock.now())
    await this.#sync.start()
    this.#c.libp2p.addEventListener('peer:connect', this.#onConnect)
    this.#schedule(0)
  }

  async stop (): Promise<void> {
    if (!this.#started) return
    this.#started = false
    if (this.#timer != null) clearTimeout(this.#timer)
    this.#timer = undefined
    this.#c.libp2p.removeEventListener('peer:connect', this.#onConnect)
    await this.#sync.stop()
  }

  /** Asks `peerId` for the states it holds newer than ours; merges them; returns how many were news here. Never throws. */
  async syncWith (peerId: string, why: ViewSyncReason): Promise<number> {
    return await this.#ask(peerId, why) ?? 0
  }

  /** `syncWith`, undefined when `peerId` was not asked (asked lately) or did not answer. */
  async #ask (peerId: string, why: ViewSyncReason): Promise<number | undefined> {
    const now = this.#c.clock.now()
    const last = this.#asked.get(peerId)
    if (last != null && now - last < ASK_AGAIN_AFTER_MS) return undefined
    this.#asked.set(peerId, now)
    if (this.#asked.size > 10_000) this.#asked.delete(this.#asked.keys().next().value!)
    this.#c.metrics.viewSyncs.inc({ why })
    try {
      const known = this.#c.membership.view.entries().map(e => e.state)
      const res = await this.#sync.ask(peerIdFromString(peerId), known, known.find(s => s.peerId === this.#c.self))
      let news = 0
      for (const state of res.states) {
        this.#c.gossip.seed(state)
        const result = this.#c.membership.onState(state, true)
        this.#c.metrics.viewSyncStates.inc({ result })
        if (result !== 'stale') news++
      }
      return news
    } catch (err: any) {
      this.#c.log.debug({ component: 'discovery:view-sync', peer: peerId, err: err.message }, 'view sync failed')
      return undefined
    }
  }

  /** The states we pass on: ours as last published, and those of the peers we believe alive. */
  * #held (): Iterable<NodeState> {
    for (const e of this.#c.membership.view.entries()) {
      if (e.peerId === this.#c.self || e.status === 'alive') yield e.state
    }
  }

  /** The next anti-entropy sync, after one that brought `brought` states this agent lacked or held older. */
  #schedule (brought: number): void {
    const now = this.#c.clock.now()
    const size = this.#c.membership.view.size
    if (size > this.#viewSize) this.#grewAtMs = now
    this.#viewSize = size
    const ms = nextViewSyncMs(brought, this.#init.syncEveryMs, now - this.#grewAtMs)
    if (!this.#started || ms == null) return
    this.#timer = setTimeout(() => { void this.#antiEntropy() }, ms)
    this.#timer.unref()
  }

  async #antiEntropy (): Promise<void> {
    const conns = this.#c.libp2p.getConnections()
    const brought = conns.length === 0 ? 0 : await this.syncWith(conns[Math.floor(this.#c.rng.next() * conns.length)].remotePeer.toString(), 'periodic')
    this.#schedule(brought)
  }

  readonly #onConnect = (evt: CustomEvent<{ toString: () => string }>): void => {
    const peer = evt.detail.toString()
    const joins = this.#joinSyncs
    if (joins.begin(this.#c.clock.now())) {
      void this.#ask(peer, 'join').then((news) => { joins.done(news) }, () => { joins.done(undefined) })
      return
    }
    setTimeout(() => {
      if (this.#started && this.#c.membership.view.get(peer) == null && this.#c.libp2p.getConnections(peerIdFromString(peer)).length > 0) void this.syncWith(peer, 'unknown')
    }, UNKNOWN_PEER_AFTER_MS).unref()
  }
}
