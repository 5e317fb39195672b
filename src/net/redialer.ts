/**
 * Bootstrap dialing with retry and back-off, and re-dialling so that no agent
 * stays isolated: while this agent has fewer than `minConnections`
 * connections, it dials the bootstrap addresses and peers it knows from
 * gossip, each address on its own doubling back-off.
 */
import type { Libp2p } from '@libp2p/interface'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'

export interface RedialerInit {
  libp2p: Libp2p
  bootstrap: string[]
  /** Addresses of peers known from gossip, as `/ip4/…/tcp/…/p2p/ID` strings. */
  known: () => string[]
  minConnections: number
  minMs: number
  maxMs: number
  checkEveryMs: number
  onDialError?: (addr: string, err: Error) => void
}

interface Backoff { nextAtMs: number, delayMs: number }

export class Redialer {
  readonly #init: RedialerInit
  readonly #backoff = new Map<string, Backoff>()
  readonly #dialing = new Set<string>()
  #timer?: NodeJS.Timeout

  constructor (init: RedialerInit) {
    this.#init = init
  }

  start (): void {
    if (this.#timer != null) return
    this.check()
    this.#timer = setInterval(() => { this.check() }, this.#init.checkEveryMs)
    this.#timer.unref()
  }

  stop (): void {
    if (this.#timer != null) clearInterval(this.#timer)
    this.#timer = undefined
  }

  /** Dials what is due when we have too few connections. */
  check (): void {
    const { libp2p, minConnections } = this.#init
    const connected = new Set(libp2p.getConnections().map(c => c.remotePeer.toString()))
    if (connected.size >= minConnections) return
    const now = Date.now()
    const self = libp2p.peerId.toString()
    const targets = [...this.#init.bootstrap, ...this.#init.known()]
    let budget = minConnections - connected.size
    for (const addr of targets) {
      if (budget <= 0) break
      const id = addr.match(/\/p2p\/([^/]+)$/)?.[1]
      if (id === self || (id != null && connected.has(id)) || this.#dialing.has(addr)) continue
      const b = this.#backoff.get(addr)
      if (b != null && b.nextAtMs > now) continue
      budget--
      void this.#dial(addr)
    }
  }

  async #dial (addr: string): Promise<void> {
    this.#dialing.add(addr)
    let ma: Multiaddr
    try {
      ma = multiaddr(addr)
    } catch (err: any) {
      this.#init.onDialError?.(addr, err)
      this.#backoff.set(addr, { nextAtMs: Number.MAX_SAFE_INTEGER, delayMs: this.#init.maxMs })
      this.#dialing.delete(addr)
      return
    }
    try {
      await this.#init.libp2p.dial(ma, { signal: AbortSignal.timeout(5_000) })
      this.#backoff.delete(addr)
    } catch (err: any) {
      const prev = this.#backoff.get(addr)
      const delayMs = prev == null ? this.#init.minMs : Math.min(prev.delayMs * 2, this.#init.maxMs)
      this.#backoff.set(addr, { nextAtMs: Date.now() + delayMs, delayMs })
      this.#init.onDialError?.(addr, err)
    } finally {
      this.#dialing.delete(addr)
    }
  }
}
