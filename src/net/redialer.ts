/**
 * Bootstrap dialing with retry and back-off, re-dialling so that no agent
 * stays isolated, and warm connections:
 * - while this agent has fewer than `minConnections` connections, it dials
 *   the bootstrap addresses and peers it knows from gossip, each address on
 *   its own doubling back-off;
 * - in the background it also opens connections to peers it knows from
 *   gossip, up to `warmConnections`, a few per check. Any alive peer may be
 *   asked to host a VM, and a first request to a peer otherwise pays for the
 *   connection (TCP, noise handshake, identify, gossipsub's streams: tens of
 *   milliseconds of CPU on each side) in the middle of a create. Of two peers
 *   only the one with the smaller id dials the other, so that they do not
 *   end up with two connections.
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
  /** Connections to keep warm to peers known from gossip. Default 32; 0 turns warming off. */
  warmConnections?: number
  /** Warming dials started per check, at most. Default 2. */
  warmDialsPerCheck?: number
  onDialError?: (addr: string, err: Error) => void
}

interface Backoff { nextAtMs: number, delayMs: number }

const PEER_ID = /\/p2p\/([^/]+)$/

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

  /** Dials what is due: bootstrap and known peers when we have too few connections, then a few warming dials. */
  check (): void {
    const { libp2p, minConnections } = this.#init
    const connected = new Set(libp2p.getConnections().map(c => c.remotePeer.toString()))
    const now = Date.now()
    const self = libp2p.peerId.toString()
    if (connected.size < minConnections) {
      const targets = [...this.#init.bootstrap, ...this.#init.known()]
      let budget = minConnections - connected.size
      for (const addr of targets) {
        if (budget <= 0) break
        const id = addr.match(PEER_ID)?.[1]
        if (id === self || (id != null && connected.has(id)) || !this.#due(addr, now)) continue
        budget--
        void this.#dial(addr)
      }
      return
    }
    this.#warm(connected, self, now)
  }

  #warm (connected: Set<string>, self: string, now: number): void {
    const want = this.#init.warmConnections ?? 32
    let budget = Math.min(this.#init.warmDialsPerCheck ?? 2, want - connected.size - this.#dialing.size)
    if (budget <= 0) return
    const dialingIds = new Set<string>()
    for (const addr of this.#dialing) {
      const id = addr.match(PEER_ID)?.[1]
      if (id != null) dialingIds.add(id)
    }
    for (const addr of this.#init.known()) {
      if (budget <= 0) break
      const id = addr.match(PEER_ID)?.[1]
      // The peer with the smaller id dials: one connection per pair, not two that cross.
      if (id == null || id <= self || connected.has(id) || dialingIds.has(id) || !this.#due(addr, now)) continue
      budget--
      dialingIds.add(id)
      void this.#dial(addr)
    }
  }

  #due (addr: string, now: number): boolean {
    if (this.#dialing.has(addr)) return false
    const b = this.#backoff.get(addr)
    return b == null || b.nextAtMs <= now
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
