/**
 * Whether an agent has reached one of its bootstrap peers yet, for the
 * redialer (redialer.ts): the failed dials to them before that, and the
 * reports that say so — `onBootstrapUnreached` once every bootstrap address
 * has failed, again every `reportEveryMs` while it lasts, and
 * `onBootstrapReached` at last. Peers that dialled the agent first are no
 * sign that it is joined to the rest, so reaching counts only a bootstrap
 * peer.
 */

/** What `onBootstrapUnreached` is told. */
export interface BootstrapUnreached {
  /** Bootstrap addresses, all failed so far. */
  addrs: number
  /** Failed dials to them since the start. */
  failures: number
  /** The last dial error, and to which address. */
  lastError: string
  lastAddr: string
  /** Since the first failed dial to a bootstrap address, ms. */
  forMs: number
  /** Connections open anyway (peers that dialled us). */
  connections: number
}

export interface BootstrapReachInit {
  bootstrap: readonly string[]
  /** How often `onUnreached` is told again, ms (> 0). */
  reportEveryMs: number
  onUnreached?: (report: BootstrapUnreached) => void
  onReached?: (addr: string) => void
}

export class BootstrapReach {
  readonly #init: BootstrapReachInit
  /** A dial to a bootstrap address succeeded once (or there is none). */
  #reached: boolean
  /** Failed dials to bootstrap addresses before one was reached, and the last error (which have failed: the back-off says). */
  #failures = 0
  #lastError?: { addr: string, message: string }
  #firstFailureMs?: number
  #toldMs?: number

  constructor (init: BootstrapReachInit) {
    this.#init = init
    this.#reached = init.bootstrap.length === 0
  }

  /** Whether a bootstrap peer has been reached (always, with none). */
  get reached (): boolean {
    return this.#reached
  }

  /** A dial of `addr` failed at `now` (counted when it is a bootstrap address and none was reached yet). */
  failed (addr: string, err: any, now: number): void {
    if (this.#reached || !this.#init.bootstrap.includes(addr)) return
    this.#failures++
    this.#lastError = { addr, message: String(err?.message ?? err) }
    this.#firstFailureMs ??= now
  }

  /** `addr` was reached (a dial of it succeeded, or its peer is connected); nothing when it is not a bootstrap address. */
  reachedVia (addr: string): void {
    if (this.#reached || !this.#init.bootstrap.includes(addr)) return
    this.#reached = true
    if (this.#toldMs != null) this.#init.onReached?.(addr)
  }

  /** Tells `onUnreached` when `allFailed` (every bootstrap address has failed), then every `reportEveryMs`. */
  report (connections: number, now: number, allFailed: () => boolean): void {
    const last = this.#lastError
    if (this.#reached || last == null || this.#init.onUnreached == null) return
    if (!allFailed()) return
    if (this.#toldMs != null && now - this.#toldMs < this.#init.reportEveryMs) return
    this.#toldMs = now
    this.#init.onUnreached({
      addrs: this.#init.bootstrap.length,
      failures: this.#failures,
      lastError: last.message,
      lastAddr: last.addr,
      forMs: now - (this.#firstFailureMs ?? now),
      connections
    })
  }
}
