/**
 * Bad input from a peer or the API: counted always
 * (`discovery_invalid_messages_total{source}`), logged once per source and
 * sender (a rogue's flood is one line, not a line per message).
 */
import type { Logger } from 'pino'
import type { Metrics } from './metrics.ts'

/** Distinct senders logged at most: beyond, only the count grows. */
const MAX_LOGGED_INVALID = 10_000

export class InvalidInput {
  readonly #metrics: Metrics
  readonly #log: Logger
  readonly #logged = new Set<string>()

  constructor (metrics: Metrics, log: Logger) {
    this.#metrics = metrics
    this.#log = log
  }

  readonly report = (source: string, from: string, reason: string): void => {
    this.#metrics.invalidMessages.inc({ source })
    const key = `${source}:${from}`
    if (this.#logged.has(key) || this.#logged.size > MAX_LOGGED_INVALID) return
    this.#logged.add(key)
    this.#log.warn({ component: `discovery:${source}`, from, reason }, 'invalid message dropped')
  }
}
