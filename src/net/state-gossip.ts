/**
 * The gossip topic `/discovery/state/1`: each agent's NodeState, signed
 * (gossipsub's StrictSign, the default). A message that does not parse, or
 * whose NodeState names another peer than its signed origin, is rejected —
 * which also lowers the sender's gossipsub score — and reported.
 */
import { TopicValidatorResult, type Message, type PeerId } from '@libp2p/interface'
import type { NodeState } from '../core/messages.ts'
import { nodeStateSchema } from '../core/messages.ts'
import { decode, encode } from './codec.ts'

export const STATE_TOPIC = '/discovery/state/1'

export interface PubSubLike {
  subscribe (topic: string): void
  unsubscribe (topic: string): void
  publish (topic: string, data: Uint8Array): Promise<unknown>
  readonly topicValidators: Map<string, (peer: PeerId, msg: Message) => TopicValidatorResult | Promise<TopicValidatorResult>>
  addEventListener (type: 'message' | 'subscription-change', listener: (evt: CustomEvent<any>) => void): void
  removeEventListener (type: 'message' | 'subscription-change', listener: (evt: CustomEvent<any>) => void): void
}

export interface StateGossipInit {
  pubsub: PubSubLike
  onState: (state: NodeState, from: string) => void
  onInvalid: (from: string, reason: string) => void
  /** A peer subscribed to the topic: it has none of our state yet. */
  onPeerSubscribed?: (peerId: string) => void
}

export class StateGossip {
  readonly #init: StateGossipInit
  /** Validated states, handed from the validator to the message event without parsing twice. */
  readonly #validated = new WeakMap<Uint8Array, NodeState>()
  #started = false

  constructor (init: StateGossipInit) {
    this.#init = init
  }

  start (): void {
    if (this.#started) return
    this.#started = true
    const { pubsub } = this.#init
    pubsub.topicValidators.set(STATE_TOPIC, this.#validate)
    pubsub.addEventListener('message', this.#onMessage)
    pubsub.addEventListener('subscription-change', this.#onSubscriptionChange)
    pubsub.subscribe(STATE_TOPIC)
  }

  stop (): void {
    if (!this.#started) return
    this.#started = false
    const { pubsub } = this.#init
    pubsub.unsubscribe(STATE_TOPIC)
    pubsub.removeEventListener('message', this.#onMessage)
    pubsub.removeEventListener('subscription-change', this.#onSubscriptionChange)
    pubsub.topicValidators.delete(STATE_TOPIC)
  }

  async publish (state: NodeState): Promise<void> {
    await this.#init.pubsub.publish(STATE_TOPIC, encode(state))
  }

  readonly #validate = (_peer: PeerId, msg: Message): TopicValidatorResult => {
    if (msg.type !== 'signed') {
      this.#init.onInvalid('unknown', 'unsigned state message')
      return TopicValidatorResult.Reject
    }
    const origin = msg.from.toString()
    let state: NodeState
    try {
      state = decode(nodeStateSchema, msg.data)
    } catch (err: any) {
      this.#init.onInvalid(origin, err.message)
      return TopicValidatorResult.Reject
    }
    if (state.peerId !== origin) {
      this.#init.onInvalid(origin, `state names peer ${state.peerId} but was signed by ${origin}`)
      return TopicValidatorResult.Reject
    }
    this.#validated.set(msg.data, state)
    return TopicValidatorResult.Accept
  }

  readonly #onSubscriptionChange = (evt: CustomEvent<{ peerId: PeerId, subscriptions: Array<{ topic: string, subscribe: boolean }> }>): void => {
    if (evt.detail.subscriptions.some(s => s.topic === STATE_TOPIC && s.subscribe)) this.#init.onPeerSubscribed?.(evt.detail.peerId.toString())
  }

  readonly #onMessage = (evt: CustomEvent<Message>): void => {
    const msg = evt.detail
    if (msg.topic !== STATE_TOPIC || msg.type !== 'signed') return
    const state = this.#validated.get(msg.data)
    if (state == null) return
    this.#init.onState(state, msg.from.toString())
  }
}
