/**
 * Bootstrap dialing with retry and back-off, re-dialling so that no agent
 * stays isolated, and warm connections:
 * - while this agent has fewer than `minConnections` connections, it dials
 *   the bootstrap addresses and peers it knows from gossip, each address on
 *   its own doubling back-off (core/backoff.ts);
 * - in the background it also opens connections to peers it knows from
 *   gossip, up to `warmConnections`, a few per check. Any alive peer may be
 *   asked to host a VM, and a first request to a peer otherwise pays for the
 *   connection (TCP, noise handshake, identify, gossipsub's streams: tens of
 *   milliseconds of CPU on each side) in the middle of a create. Of two peers
 *   only the one with the smaller id dials the other, so that they do not
 *   end up with two connections.
 * - until one of its bootstrap peers has been reached once, it keeps dialling
 *   them (on their back-off) whatever its connections: peers that dialled it
 *   first are no sign that it is joined to the rest. An agent whose own dial
 *   came too early (its bootstrap peer was still starting) and that then got
 *   a connection from a later agent stopped there: local agents each given
 *   the one before as bootstrap split into groups that never met (40 agents
 *   in waves of 8: groups of 6, 12 and 22, for good). Until then, once every
 *   bootstrap address has failed, it tells `onBootstrapUnreached` (the agent
 *   logs a warning), again every minute, and `onBootstrapReached` at last
 *   (bootstrap-reach.ts).
 * With `maxConnections` (a bounded fan-out, core/fanout.ts) it warms up to
 * `warmConnections` in an order of its own per pair of peers, avoiding for
 * a while the peers that closed a connection with us on purpose, and closes
 * idle connections beyond `maxConnections` through `close` (farewell.ts:
 * a bye first, so that the peer does not take it for a death).
 */
import type { Libp2p } from '@libp2p/interface'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { Backoff, stretchedTimeoutMs } from '../core/backoff.ts'
import type { Clock } from '../core/clock.ts'
import { type OpenConnection, pickCloses, pickDials } from '../core/fanout.ts'
import { expectNumber } from '../core/options.ts'
import { type AlignedTask, everyAligned } from './aligned-timers.ts'
import { BootstrapReach, type BootstrapUnreached } from './bootstrap-reach.ts'
import { withDeadline } from './deadline.ts'

export type { BootstrapUnreached }

/** A dial's deadline doubles at most this many times for an address whose dials keep timing out: 5 s becomes 40 s at most. */
export const DIAL_TIMEOUT_DOUBLINGS = 3

export interface RedialerInit {
  libp2p: Pick<Libp2p, 'peerId' | 'getConnections' | 'dial'>
  /** The time the back-off is measured on. */
  clock: Clock
  bootstrap: string[]
  /** Addresses of peers known from gossip, as `/ip4/…/tcp/…/p2p/ID` strings. */
  known: () => readonly string[]
  /** Below this many connections, bootstrap and known peers are dialled until there are enough. */
  minConnections: number
  /** Back-off of an address after its first failed dial, ms; doubles on each further failure. */
  minMs: number
  /** Longest back-off of an address, ms. */
  maxMs: number
  /** How often `start()` runs `check()`, ms. */
  checkEveryMs: number
  /** Connections to keep warm to peers known from gossip. Default 32; 0 turns warming off. */
  warmConnections?: number
  /** Warming dials started per check, at most. Default 2: a few handshakes a second, never a burst. */
  warmDialsPerCheck?: number
  /**
   * How long one dial of an address may take at first. Default 5 s. Doubled
   * for an address after each of its dials that timed out, up to
   * 2 ** DIAL_TIMEOUT_DOUBLINGS times (40 s), and back to the first after a
   * success: on a saturated host a handshake that always timed out at 5 s
   * never joined an agent (core/backoff.ts `stretchedTimeoutMs`).
   */
  dialTimeoutMs?: number
  onDialError?: (addr: string, err: Error) => void
  /** A bounded fan-out: idle connections beyond this many are closed (through `close`). Default none. */
  maxConnections?: number
  /** Closes every connection with a peer on purpose (farewell.ts). Needed with `maxConnections`. */
  close?: (peerId: string) => Promise<void>
  /** Whether the peer is in our gossipsub mesh: those are closed last. */
  inMesh?: (peerId: string) => boolean
  /** Peers not to warm a connection to now (they closed one with us on purpose lately). */
  avoid?: (peerId: string) => boolean
  /** A connection younger than this is never closed as idle: it has its first work to do (a view sync, gossipsub's subscriptions). Default 10 s. */
  minIdleAgeMs?: number
  /**
   * When a stream of ours was last opened with a peer, either way
   * (net/stream-activity.ts): a connection is idle only after `minQuietMs`
   * without one, not whenever a check finds no request under way on it.
   */
  lastActivity?: (peerId: string) => number | undefined
  /**
   * How long a connection must go without a new stream to be closed as idle.
   * Default 10 s: under load a connection is used every second or so and
   * stays (the bound holds at rest, not under a burst of requests); a
   * connection used once is closed a few seconds after the request, as before.
   */
  minQuietMs?: number
  /**
   * Bounded: peers whose connections are kept — dialled when missing (whatever
   * the warming budget) and never closed as idle. The agent keeps its two
   * neighbours on the replica ring (replica-service.ts `neighbours`): a
   * restarter asks its ring successor, the other holder of the dead owner's
   * VMs, for tombstones before it restarts them, and a dial then cost
   * 0.2–0.45 s of the restart at 50 agents on this machine.
   */
  keep?: () => readonly string[]
  /**
   * No bootstrap address has been reached yet, and each has failed at least
   * once: told right away, then every `unreachedReportEveryMs` while it lasts
   * (the agent logs it as a warning: alone, it places VMs only on itself).
   * The dials go on, each address on its back-off: a bootstrap peer that
   * starts later is still joined.
   */
  onBootstrapUnreached?: (report: BootstrapUnreached) => void
  /** A bootstrap peer was reached after `onBootstrapUnreached` had been told. */
  onBootstrapReached?: (addr: string) => void
  /** How often `onBootstrapUnreached` is told again, ms. Default 60 s. */
  unreachedReportEveryMs?: number
}

/** Streams of libp2p's and gossipsub's own: a connection with only these is idle. */
const UPKEEP_PROTOCOL = /^\/(meshsub|floodsub|ipfs\/(id|ping))\//
/** Idle connections closed per check at most: a few byes a second, never a burst. */
const CLOSES_PER_CHECK = 2

const PEER_ID = /\/p2p\/([^/]+)$/

/** Peer ids parsed from addresses: the same hundred addresses are looked at every check. */
const idCache = new Map<string, string | undefined>()
const ID_CACHE_MAX = 10_000

function peerIdOf (addr: string): string | undefined {
  if (idCache.has(addr)) return idCache.get(addr)
  if (idCache.size >= ID_CACHE_MAX) idCache.clear()
  const id = addr.match(PEER_ID)?.[1]
  idCache.set(addr, id)
  return id
}

export class Redialer {
  readonly #init: RedialerInit
  readonly #backoff: Backoff<string>
  readonly #dialing = new Set<string>()
  readonly #warmConnections: number
  readonly #warmDialsPerCheck: number
  readonly #dialTimeoutMs: number
  readonly #maxConnections: number
  readonly #minIdleAgeMs: number
  readonly #minQuietMs: number
  readonly #closing = new Set<string>()
  readonly #reach: BootstrapReach
  #timer?: AlignedTask

  constructor (init: RedialerInit) {
    this.#init = init
    expectNumber('minConnections', init.minConnections, { min: 0, integer: true })
    expectNumber('checkEveryMs', init.checkEveryMs, { above: 0 })
    this.#backoff = new Backoff({ minMs: init.minMs, maxMs: init.maxMs })
    this.#warmConnections = expectNumber('warmConnections', init.warmConnections ?? 32, { min: 0, integer: true })
    this.#warmDialsPerCheck = expectNumber('warmDialsPerCheck', init.warmDialsPerCheck ?? 2, { min: 0, integer: true })
    this.#dialTimeoutMs = expectNumber('dialTimeoutMs', init.dialTimeoutMs ?? 5_000, { above: 0 })
    this.#maxConnections = init.maxConnections == null ? Infinity : expectNumber('maxConnections', init.maxConnections, { min: 1, integer: true })
    this.#minIdleAgeMs = expectNumber('minIdleAgeMs', init.minIdleAgeMs ?? 10_000, { min: 0 })
    this.#minQuietMs = expectNumber('minQuietMs', init.minQuietMs ?? 10_000, { min: 0 })
    if (Number.isFinite(this.#maxConnections) && init.close == null) throw new TypeError('Expected `close` with `maxConnections`, got none')
    this.#reach = new BootstrapReach({
      bootstrap: init.bootstrap,
      reportEveryMs: expectNumber('unreachedReportEveryMs', init.unreachedReportEveryMs ?? 60_000, { above: 0 }),
      onUnreached: init.onBootstrapUnreached,
      onReached: init.onBootstrapReached
    })
  }

  /** Whether a bootstrap peer has been reached (always, with none): the agent has joined the others. */
  get joined (): boolean {
    return this.#reach.reached
  }

  /** Whether the fan-out is bounded. */
  get bounded (): boolean {
    return Number.isFinite(this.#maxConnections)
  }

  start (): void {
    if (this.#timer != null) return
    void this.check()
    this.#timer = everyAligned(this.#init.checkEveryMs, () => { void this.check() })
  }

  stop (): void {
    this.#timer?.clear()
    this.#timer = undefined
  }

  /**
   * Dials what is due: bootstrap and known peers when there are too few
   * connections, else a few warming dials. Resolves once the dials it started
   * have ended (they never reject: failures go to `onDialError`).
   */
  async check (): Promise<void> {
    const { libp2p, minConnections } = this.#init
    const connected = new Set(libp2p.getConnections().map(c => c.remotePeer.toString()))
    const now = this.#init.clock.now()
    const self = libp2p.peerId.toString()
    const dials: Array<Promise<void>> = []
    // The kept peers, asked once a check (the agent builds its ring for them).
    const keep = this.bounded ? this.#init.keep?.() ?? [] : []
    if (!this.#reach.reached) {
      this.#dialBootstrap(connected, self, now, dials)
      this.#reach.report(connected.size, now, () => this.#init.bootstrap.every(a => this.#backoff.nextAtMs(a) != null))
    }
    if (connected.size < minConnections) {
      let budget = minConnections - connected.size
      for (const addr of [...this.#init.bootstrap, ...this.#init.known()]) {
        if (budget <= 0) break
        const id = peerIdOf(addr)
        if (id === self || (id != null && connected.has(id)) || !this.#due(addr, now)) continue
        budget--
        dials.push(this.#dial(addr))
      }
    } else if (this.bounded) {
      this.#dialKept(keep, connected, self, now, dials)
      this.#warmSpread(connected, self, now, dials)
    } else {
      this.#warm(connected, self, now, dials)
    }
    if (connected.size > this.#maxConnections) dials.push(this.#trim(keep, self, now))
    await Promise.all(dials)
  }

  /** One bootstrap address due, until one has been reached (a peer connected to it already counts when its id is known). */
  #dialBootstrap (connected: Set<string>, self: string, now: number, dials: Array<Promise<void>>): void {
    for (const addr of this.#init.bootstrap) {
      const id = peerIdOf(addr)
      if (id != null && (id === self || connected.has(id))) {
        this.#reach.reachedVia(addr)
        return
      }
    }
    if (connected.size < this.#init.minConnections) return
    const addr = this.#init.bootstrap.find(a => this.#due(a, now))
    if (addr != null) dials.push(this.#dial(addr))
  }

  /** Bounded: dials the kept peers not connected (one dial per pair: the kept peer with the larger id waits to be dialled). */
  #dialKept (keep: readonly string[], connected: Set<string>, self: string, now: number, dials: Array<Promise<void>>): void {
    // Nothing to dial (the usual case): the known addresses are not walked.
    if (keep.every(id => id <= self || connected.has(id))) return
    const dialingIds = this.#dialingIds()
    for (const addr of this.#init.known()) {
      const id = peerIdOf(addr)
      if (id == null || id <= self || !keep.includes(id) || connected.has(id) || dialingIds.has(id) || this.#closing.has(id) || this.#init.avoid?.(id) === true || !this.#due(addr, now)) continue
      dialingIds.add(id)
      dials.push(this.#dial(addr))
    }
  }

  /** Bounded: warms up to `warmConnections`, in the pair's order, any direction (core/fanout.ts). */
  #warmSpread (connected: Set<string>, self: string, now: number, dials: Array<Promise<void>>): void {
    const budget = Math.min(this.#warmDialsPerCheck, this.#warmConnections - connected.size - this.#dialing.size)
    if (budget <= 0) return
    const addrOf = new Map<string, string>()
    for (const addr of this.#init.known()) {
      const id = peerIdOf(addr)
      if (id != null && !addrOf.has(id) && this.#due(addr, now)) addrOf.set(id, addr)
    }
    const dialingIds = this.#dialingIds()
    const skip = (id: string): boolean => connected.has(id) || dialingIds.has(id) || this.#closing.has(id) || this.#init.avoid?.(id) === true
    for (const id of pickDials(self, addrOf.keys(), skip, budget)) dials.push(this.#dial(addrOf.get(id)!))
  }

  /** Bounded: closes idle connections beyond `maxConnections`, a few per check. */
  async #trim (keep: readonly string[], self: string, now: number): Promise<void> {
    const open: OpenConnection[] = []
    for (const c of this.#init.libp2p.getConnections()) {
      const peer = c.remotePeer.toString()
      if (this.#closing.has(peer)) continue
      const last = this.#init.lastActivity?.(peer)
      open.push({
        peer,
        idle: !keep.includes(peer) && c.streams.every(s => s.protocol == null || UPKEEP_PROTOCOL.test(s.protocol)) && (last == null || now - last >= this.#minQuietMs),
        inMesh: this.#init.inMesh?.(peer) === true,
        inbound: c.direction === 'inbound',
        ageMs: now - c.timeline.open
      })
    }
    const closes = pickCloses(self, open, this.#maxConnections, this.#minIdleAgeMs).slice(0, CLOSES_PER_CHECK)
    await Promise.all(closes.map(async peer => {
      this.#closing.add(peer)
      try {
        await this.#init.close!(peer)
      } catch {} finally {
        this.#closing.delete(peer)
      }
    }))
  }

  #warm (connected: Set<string>, self: string, now: number, dials: Array<Promise<void>>): void {
    let budget = Math.min(this.#warmDialsPerCheck, this.#warmConnections - connected.size - this.#dialing.size)
    if (budget <= 0) return
    const dialingIds = this.#dialingIds()
    for (const addr of this.#init.known()) {
      if (budget <= 0) break
      const id = peerIdOf(addr)
      // The peer with the smaller id dials: one connection per pair, not two that cross.
      if (id == null || id <= self || connected.has(id) || dialingIds.has(id) || !this.#due(addr, now)) continue
      budget--
      dialingIds.add(id)
      dials.push(this.#dial(addr))
    }
  }

  /** The peers being dialled now (addresses without a peer id name none). */
  #dialingIds (): Set<string> {
    const ids = new Set<string>()
    for (const addr of this.#dialing) {
      const id = peerIdOf(addr)
      if (id != null) ids.add(id)
    }
    return ids
  }

  #due (addr: string, now: number): boolean {
    return !this.#dialing.has(addr) && this.#backoff.isDue(addr, now)
  }

  async #dial (addr: string): Promise<void> {
    let ma: Multiaddr
    try {
      ma = multiaddr(addr)
    } catch (err: any) {
      this.#reach.failed(addr, err, this.#init.clock.now())
      this.#init.onDialError?.(addr, err)
      this.#backoff.never(addr)
      return
    }
    this.#dialing.add(addr)
    let deadlineSignal: AbortSignal | undefined
    try {
      await withDeadline(stretchedTimeoutMs(this.#dialTimeoutMs, this.#backoff.timeoutsOf(addr), DIAL_TIMEOUT_DOUBLINGS), async signal => {
        deadlineSignal = signal
        return await this.#init.libp2p.dial(ma, { signal })
      })
      this.#backoff.succeeded(addr)
      this.#reach.reachedVia(addr)
    } catch (err: any) {
      const now = this.#init.clock.now()
      this.#backoff.failed(addr, now, deadlineSignal?.aborted === true)
      this.#reach.failed(addr, err, now)
      this.#init.onDialError?.(addr, err)
    } finally {
      this.#dialing.delete(addr)
    }
  }
}
