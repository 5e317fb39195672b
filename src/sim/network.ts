/**
 * The simulated network: each message is delivered after the link's latency
 * (a base plus uniform jitter), or lost with the given probability, and
 * counted against its sender. Its randomness is its own stream, so the
 * demand trace is the same whatever the network does.
 */
import type { Rng } from '../core/rng.ts'
import type { EventQueue } from './event-queue.ts'

export interface LinkModel {
  /** One-way latency, ms. LAN 0.1 ms, WAN 20–50 ms. */
  baseMs: number
  /** Uniform extra latency, 0..jitterMs. */
  jitterMs: number
  /** Probability that a message is lost, 0..1. */
  loss: number
}

export const LINKS: Record<string, LinkModel> = {
  lan: { baseMs: 0.1, jitterMs: 0.05, loss: 0 },
  wan: { baseMs: 20, jitterMs: 30, loss: 0 }
}

export class SimNetwork {
  readonly #queue: EventQueue
  readonly #rng: Rng
  readonly #link: LinkModel
  readonly #now: () => number
  sent = 0
  lost = 0

  constructor (queue: EventQueue, rng: Rng, link: LinkModel, now: () => number) {
    this.#queue = queue
    this.#rng = rng
    this.#link = link
    this.#now = now
  }

  /** Sends one message; `deliver` runs at the receiver when it arrives. False when it is lost. */
  send (deliver: () => void): boolean {
    this.sent++
    if (this.#link.loss > 0 && this.#rng.next() < this.#link.loss) {
      this.lost++
      return false
    }
    this.#queue.push(this.#now() + this.latency(), deliver)
    return true
  }

  latency (): number {
    return this.#link.baseMs + this.#rng.next() * this.#link.jitterMs
  }
}
