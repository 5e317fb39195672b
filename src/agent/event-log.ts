/**
 * The agent's events, in order: each gets the next id and goes to every
 * listener at once, then into a bounded buffer that `GET /v1/events` replays
 * from (`Last-Event-ID`). The buffer keeps the last `capacity` events; a
 * client that asks for older ones learns how many it missed.
 */
import type { Clock } from '../core/clock.ts'
import type { AgentEvent, AgentEventMap, AgentEventType } from './events.ts'

export interface EventLogInit {
  clock: Clock
  /** Events kept for replay. Default 1,000: a few seconds of a busy agent, minutes of a quiet one. */
  capacity?: number
}

type Listener = (event: AgentEvent) => void

export interface Replay {
  events: AgentEvent[]
  /** Events after the asked id that are no longer buffered. */
  missed: number
}

export class EventLog {
  readonly #clock: Clock
  readonly #capacity: number
  readonly #buffer: AgentEvent[] = []
  readonly #byType = new Map<AgentEventType, Set<Listener>>()
  readonly #any = new Set<Listener>()
  #lastId = 0

  constructor (init: EventLogInit) {
    this.#clock = init.clock
    this.#capacity = init.capacity ?? 1_000
    if (!Number.isSafeInteger(this.#capacity) || this.#capacity < 1) {
      throw new RangeError(`Expected \`capacity\` to be a whole number >= 1, got \`${String(init.capacity)}\``)
    }
  }

  /** The id of the newest event (0 before the first). */
  get lastId (): number {
    return this.#lastId
  }

  emit<T extends AgentEventType> (type: T, data: AgentEventMap[T]): AgentEvent<T> {
    const event: AgentEvent<T> = { id: ++this.#lastId, type, atMs: this.#clock.now(), data }
    this.#buffer.push(event as AgentEvent)
    if (this.#buffer.length > this.#capacity) this.#buffer.shift()
    for (const l of this.#byType.get(type) ?? []) call(l, event as AgentEvent)
    for (const l of this.#any) call(l, event as AgentEvent)
    return event
  }

  /** Listeners now registered (by type and for every event): what a leak would make grow. */
  get listenerCount (): number {
    let n = this.#any.size
    for (const set of this.#byType.values()) n += set.size
    return n
  }

  /** Calls `listener` for each later event of `type`; returns what removes it. */
  on<T extends AgentEventType> (type: T, listener: (event: AgentEvent<T>) => void): () => void {
    let set = this.#byType.get(type)
    if (set == null) {
      set = new Set()
      this.#byType.set(type, set)
    }
    const l = listener as Listener
    set.add(l)
    return () => { set.delete(l) }
  }

  /** Calls `listener` for every later event; returns what removes it. */
  onAny (listener: Listener): () => void {
    this.#any.add(listener)
    return () => { this.#any.delete(listener) }
  }

  /** Buffered events after `afterId`, of the given types (all when none), and how many after it were dropped. */
  since (afterId: number, types?: ReadonlySet<string>): Replay {
    const oldest = this.#buffer[0]?.id ?? this.#lastId + 1
    const missed = Math.max(0, oldest - afterId - 1)
    const events: AgentEvent[] = []
    for (const e of this.#buffer) {
      if (e.id <= afterId) continue
      if (types == null || types.has(e.type)) events.push(e)
    }
    return { events, missed: afterId >= this.#lastId ? 0 : missed }
  }
}

/** A listener that throws must not stop the others, nor the agent. */
function call (listener: Listener, event: AgentEvent): void {
  try {
    listener(event)
  } catch {}
}
