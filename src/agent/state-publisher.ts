/**
 * Runs the gossip policy (core/gossip-policy.ts) on a real clock: it feeds the
 * policy every change and every message heard, keeps the one timer the policy
 * asks for, and publishes when the policy says so. When to publish is the
 * policy's decision, not this file's.
 */
import type { Clock } from '../core/clock.ts'
import { type Change, type GossipConfig, GossipPolicy, type LoadSample } from '../core/gossip-policy.ts'
import type { NodeState } from '../core/messages.ts'
import type { Rng } from '../core/rng.ts'

export interface StatePublisherInit {
  config: GossipConfig
  /** The current state; with `next` true, under a new sequence number (to be published). */
  build: (next: boolean) => NodeState
  /** Committed plus reserved resources and capacity, cheaply: for the threshold. */
  load: () => LoadSample
  /** How many peers share the budget (the size of the view, this agent included). */
  peers: () => number
  /** Resolves to how many peers it went to, when known: 0 is tried again (UNHEARD_RETRY_MS). */
  publish: (state: NodeState) => Promise<number | undefined>
  onError: (err: Error) => void
  clock: Clock
  /** Spreads the refreshes. */
  rng: Rng
}

/**
 * A publish that went to no peer is tried again this soon, up to
 * UNHEARD_RETRIES times in a row. gossipsub learns that a peer subscribed
 * from the peer's own stream, before its stream to that peer is open, and a
 * message for a peer without one is dropped: a newcomer's first publish, made
 * at its first subscriber, often reached no one, and the cluster heard of it
 * 2–3 s later, at its next publish (2 of 3 agents joining 60, 2026-12-02).
 */
export const UNHEARD_RETRY_MS = 250
export const UNHEARD_RETRIES = 8

export class StatePublisher {
  readonly #init: StatePublisherInit
  readonly #policy: GossipPolicy
  #started = false
  #timer?: NodeJS.Timeout
  #timerAt?: number
  /** Publishes in a row that went to no peer, and the retry armed. */
  #unheard = 0
  #retry?: NodeJS.Timeout

  constructor (init: StatePublisherInit) {
    this.#init = init
    this.#policy = new GossipPolicy(init.config, init.rng, init.clock.now())
  }

  start (): void {
    if (this.#started) return
    this.#started = true
    this.#publishNow()
    this.#arm()
  }

  stop (): void {
    this.#started = false
    if (this.#timer != null) clearTimeout(this.#timer)
    if (this.#retry != null) clearTimeout(this.#retry)
    this.#timer = undefined
    this.#timerAt = undefined
    this.#retry = undefined
  }

  /** Something changed (local-node.ts says what). */
  changed (change: Change): void {
    if (!this.#started) return
    this.#policy.changed(change, this.#init.clock.now(), this.#init.load(), this.#init.peers())
    this.#arm()
  }

  /** A peer's state message arrived. */
  heard (): void {
    this.#policy.heard(this.#init.clock.now())
  }

  budgetPerSecond (): number {
    return this.#policy.budgetPerSecond(this.#init.peers())
  }

  rate (): number {
    return this.#policy.rate(this.#init.clock.now(), this.#init.peers())
  }

  refreshIntervalMs (): number {
    return this.#policy.refreshIntervalMs(this.#init.peers())
  }

  #arm (): void {
    const at = this.#policy.nextWakeAt
    if (!this.#started || at === this.#timerAt) return
    if (this.#timer != null) clearTimeout(this.#timer)
    this.#timer = undefined
    this.#timerAt = at
    if (at == null) return
    this.#timer = setTimeout(() => { this.#wake() }, Math.max(0, at - this.#init.clock.now()))
    this.#timer.unref()
  }

  #wake (): void {
    this.#timer = undefined
    this.#timerAt = undefined
    if (!this.#started) return
    if (this.#policy.tick(this.#init.clock.now(), this.#init.peers())) this.#publishNow()
    this.#arm()
  }

  #publishNow (): void {
    const state = this.#init.build(true)
    this.#policy.published(this.#init.clock.now(), { cpu: state.used.cpu + state.reserved.cpu, memMiB: state.used.memMiB + state.reserved.memMiB }, this.#init.peers())
    this.#init.publish(state).then(sentTo => { this.#afterPublish(sentTo) }, err => { this.#init.onError(err) })
  }

  #afterPublish (sentTo: number | undefined): void {
    if (sentTo !== 0) {
      this.#unheard = 0
      return
    }
    if (!this.#started || this.#retry != null) return
    if (++this.#unheard > UNHEARD_RETRIES) {
      // Given up on this one; a later publish that reaches no one tries again.
      this.#unheard = 0
      return
    }
    this.#retry = setTimeout(() => {
      this.#retry = undefined
      if (this.#started) this.#publishNow()
    }, UNHEARD_RETRY_MS)
    this.#retry.unref()
  }
}
