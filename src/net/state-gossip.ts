/**
 * The gossip topic `/discovery/state/1`: each agent's NodeState, signed
 * (gossipsub's StrictSign, the default). A message that does not parse, or
 * whose NodeState names another peer than its signed origin, is rejected —
 * which also lowers the sender's gossipsub score — and reported.
 *
 * What a message costs grows with the VMs it lists, and a node's state lists
 * every VM it runs, while between two publishes only a few change. So:
 * - a publish is a delta (`delta` in core/messages.ts) against the state this
 *   agent published just before: the VMs added or changed, and the ids gone.
 *   A whole state goes out first, after a peer subscribed (it has nothing to
 *   apply a delta to), every FULL_EVERY_MS and every MAX_DELTAS publishes (so
 *   a peer that missed a message catches up), and when the delta would not
 *   be much smaller.
 * - the receiving edge keeps each peer's VMs as of its last state and
 *   rebuilds the whole state from a delta: the agent only ever sees whole
 *   states. A delta whose base it does not hold (a message was missed) still
 *   brings the peer's fresh capacity and usage, and its changes to the VM
 *   list held (VMs added, changed, gone); the list is exact again with the
 *   next whole state.
 * - a VM summary identical to the one already held for that peer is not
 *   validated again: every VM listed was checked against the schema once.
 */
import { TopicValidatorResult, type Message, type PeerId } from '@libp2p/interface'
import { z } from 'zod'
import type { Clock } from '../core/clock.ts'
import { describeIssues, LIMITS, stateMessageSchema, vmSummarySchema, type NodeState, type StateMessage, type VmSummary } from '../core/messages.ts'
import { encode, InvalidMessageError, parseJson } from './codec.ts'
import { STATE_TOPIC } from './protocols.ts'

/** A whole state at least this often, ms. */
export const FULL_EVERY_MS = 10_000
/** And at least every this many publishes. */
export const MAX_DELTAS = 8
/** Peers whose VM lists the receiving edge keeps. */
const MAX_PEERS = 10_000

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
  /** A delta came whose base this edge does not hold (a message lost or overtaken): counted. */
  onGap?: (from: string) => void
  /** When a whole state is due again (FULL_EVERY_MS): the agent's clock, a ManualClock in tests. */
  clock: Clock
}

/** The envelope is checked by the schema; the VMs it lists one by one (most are known already). */
const envelopeSchema = stateMessageSchema.extend({ vms: z.array(z.unknown()).max(LIMITS.maxVmsPerNode) })

/** A peer's VMs as of its state `seq`. */
interface Known {
  incarnation: number
  seq: number
  vms: Map<string, VmSummary>
  /** False once a delta could not be applied: later deltas wait for a whole state. */
  exact: boolean
}

/** What this agent published last, for the next delta. */
interface Published {
  incarnation: number
  seq: number
  vms: Map<string, VmSummary>
  fullAtMs: number
  deltas: number
}

export class StateGossip {
  readonly #init: StateGossipInit
  /** Whole states, handed from the validator to the message event without parsing twice. */
  readonly #validated = new WeakMap<Uint8Array, NodeState>()
  readonly #known = new Map<string, Known>()
  #published?: Published
  #fullNext = true
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

  /**
   * Publishes this agent's state: as a delta against the last one when that
   * is worth it. Resolves to how many peers it went to, when gossipsub says
   * (none: it had no stream open to any subscriber; the next one goes whole).
   */
  async publish (state: NodeState): Promise<number | undefined> {
    const message = this.encodeNext(state)
    let result: unknown
    try {
      result = await this.#init.pubsub.publish(STATE_TOPIC, message)
    } catch (err) {
      // Peers may not have it: the next one goes whole.
      this.#fullNext = true
      throw err
    }
    const recipients = (result as { recipients?: unknown } | undefined)?.recipients
    const sentTo = Array.isArray(recipients) ? recipients.length : undefined
    if (sentTo === 0) this.#fullNext = true
    return sentTo
  }

  /** The bytes of the next message for `state` (a delta or the whole state), recorded as published. */
  encodeNext (state: NodeState): Uint8Array {
    const now = this.#init.clock.now()
    const prev = this.#published
    let delta: StateMessage | undefined
    if (prev != null && !this.#fullNext && prev.incarnation === state.incarnation && prev.seq < state.seq &&
      prev.deltas < MAX_DELTAS && now - prev.fullAtMs < FULL_EVERY_MS) {
      delta = makeDelta(prev, state)
    }
    const vms = new Map<string, VmSummary>()
    for (const vm of state.vms) vms.set(vm.id, vm)
    this.#published = {
      incarnation: state.incarnation,
      seq: state.seq,
      vms,
      fullAtMs: delta == null ? now : prev!.fullAtMs,
      deltas: delta == null ? 0 : prev!.deltas + 1
    }
    this.#fullNext = false
    return encode(delta ?? state)
  }

  readonly #validate = (_peer: PeerId, msg: Message): TopicValidatorResult => {
    if (msg.type !== 'signed') {
      this.#init.onInvalid('unknown', 'unsigned state message')
      return TopicValidatorResult.Reject
    }
    const origin = msg.from.toString()
    let state: NodeState | undefined
    try {
      state = this.receive(origin, msg.data)
    } catch (err: any) {
      this.#init.onInvalid(origin, err.message)
      return TopicValidatorResult.Reject
    }
    if (state != null) this.#validated.set(msg.data, state)
    return TopicValidatorResult.Accept
  }

  /**
   * Validates one message signed by `origin` and returns the whole state it
   * brings (undefined for a delta from a peer we hold nothing of yet).
   * Throws InvalidMessageError or MessageTooLargeError with the reason.
   */
  receive (origin: string, bytes: Uint8Array): NodeState | undefined {
    const parsed = envelopeSchema.safeParse(parseJson(bytes))
    if (!parsed.success) throw new InvalidMessageError(describeIssues(parsed.error))
    const { delta, vms: rawVms, ...rest } = parsed.data
    if (rest.peerId !== origin) throw new InvalidMessageError(`state names peer ${rest.peerId} but was signed by ${origin}`)
    if (delta != null && delta.base >= rest.seq) throw new InvalidMessageError(`delta.base: ${delta.base} is not before seq ${rest.seq}`)
    const known = this.#known.get(origin)
    const sameRun = known != null && known.incarnation === rest.incarnation
    const vms = checkVms(rawVms, sameRun ? known.vms : undefined)
    if (delta == null) {
      const state: NodeState = { ...rest, vms }
      if (known == null || rest.incarnation > known.incarnation || (sameRun && (rest.seq >= known.seq || !known.exact))) {
        this.#remember(origin, { incarnation: rest.incarnation, seq: rest.seq, vms: new Map(vms.map(v => [v.id, v])), exact: true })
      }
      return state
    }
    if (!sameRun) return undefined
    if (rest.seq > known.seq) {
      if (!known.exact || known.seq !== delta.base) {
        // A message between was lost or overtaken: the list is exact again with the next whole state. Until then the
        // changes of each newer delta still apply — a VM created shows now, not at the next whole state (up to FULL_EVERY_MS).
        if (known.exact) this.#init.onGap?.(origin)
        known.exact = false
      }
      for (const id of delta.removed) known.vms.delete(id)
      for (const vm of vms) known.vms.set(vm.id, vm)
      known.seq = rest.seq
      // A check that both sides hold the same list; if not, wait for a whole state.
      if (known.vms.size !== delta.count) known.exact = false
    }
    return { ...rest, vms: [...known.vms.values()] }
  }

  /** A whole state learnt another way (a view sync, net/view-sync.ts): the deltas published after it apply to it. */
  seed (state: NodeState): void {
    const known = this.#known.get(state.peerId)
    if (known != null && known.exact && (known.incarnation > state.incarnation || (known.incarnation === state.incarnation && known.seq >= state.seq))) return
    this.#remember(state.peerId, { incarnation: state.incarnation, seq: state.seq, vms: new Map(state.vms.map(v => [v.id, v])), exact: true })
  }

  #remember (peerId: string, known: Known): void {
    this.#known.delete(peerId)
    this.#known.set(peerId, known)
    if (this.#known.size > MAX_PEERS) this.#known.delete(this.#known.keys().next().value!)
  }

  readonly #onSubscriptionChange = (evt: CustomEvent<{ peerId: PeerId, subscriptions: Array<{ topic: string, subscribe: boolean }> }>): void => {
    if (evt.detail.subscriptions.some(s => s.topic === STATE_TOPIC && s.subscribe)) {
      // It holds nothing to apply a delta to.
      this.#fullNext = true
      this.#init.onPeerSubscribed?.(evt.detail.peerId.toString())
    }
  }

  readonly #onMessage = (evt: CustomEvent<Message>): void => {
    const msg = evt.detail
    if (msg.topic !== STATE_TOPIC || msg.type !== 'signed') return
    const state = this.#validated.get(msg.data)
    if (state == null) return
    this.#init.onState(state, msg.from.toString())
  }
}

/** The delta from what was published last to `state`, or undefined when the whole state is about as small. */
function makeDelta (prev: Published, state: NodeState): StateMessage | undefined {
  const changed: VmSummary[] = []
  let kept = 0
  for (const vm of state.vms) {
    const before = prev.vms.get(vm.id)
    if (before == null) {
      changed.push(vm)
      continue
    }
    kept++
    if (before !== vm && !sameSummary(vm, before)) changed.push(vm)
  }
  const removed: string[] = []
  if (kept < prev.vms.size) {
    const now = new Set<string>()
    for (const vm of state.vms) now.add(vm.id)
    for (const id of prev.vms.keys()) if (!now.has(id)) removed.push(id)
  }
  if (2 * (changed.length + removed.length) > state.vms.length) return undefined
  return { ...state, vms: changed, delta: { base: prev.seq, removed, count: state.vms.length } }
}

/** Each listed VM checked against the schema, or taken as the identical summary already checked for this peer. */
function checkVms (raw: unknown[], known: Map<string, VmSummary> | undefined): VmSummary[] {
  const out: VmSummary[] = new Array(raw.length)
  for (let i = 0; i < raw.length; i++) {
    const r = raw[i]
    const id = typeof r === 'object' && r !== null ? (r as { id?: unknown }).id : undefined
    const held = typeof id === 'string' ? known?.get(id) : undefined
    if (held != null && sameSummary(r as Record<string, unknown>, held)) {
      out[i] = held
      continue
    }
    const vm = vmSummarySchema.safeParse(r)
    if (!vm.success) {
      for (const issue of vm.error.issues) issue.path.unshift('vms', i)
      throw new InvalidMessageError(describeIssues(vm.error))
    }
    out[i] = vm.data
  }
  return out
}

/** The same own keys with the same (primitive) values. */
function sameSummary (a: Record<string, unknown> | VmSummary, b: VmSummary): boolean {
  if (Array.isArray(a)) return false
  let n = 0
  for (const k of Object.keys(a)) {
    n++
    if ((a as Record<string, unknown>)[k] !== (b as Record<string, unknown>)[k]) return false
  }
  return n === Object.keys(b).length
}
