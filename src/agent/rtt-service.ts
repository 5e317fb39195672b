/**
 * Round trips to our peers, kept per peer (core/locality.ts: the least of
 * the recent samples), for placement and rebalancing by locality. Measured
 * with libp2p's ping protocol: as soon as a peer connects and then each
 * second until it has three samples (placement right after the cluster
 * forms needs them), then whenever libp2p's
 * connection monitor has pinged the connection (its `rtt`, at no cost of
 * ours), and by a ping of our own when the last sample is older than
 * `intervalMs` (profiles whose monitor pings rarely).
 */
import type { Libp2p, PeerId } from '@libp2p/interface'
import type { Logger } from 'pino'
import type { Clock } from '../core/clock.ts'
import { addRttSample, rttOf } from '../core/locality.ts'
import { probeRtt } from '../net/index.ts'
import type { Metrics } from './metrics.ts'
import { type AlignedTask, everyAligned } from '../net/aligned-timers.ts'
import { withDeadline } from '../net/deadline.ts'

/** How long a ping may take: longer, and the peer is too far or too busy to be measured now. */
const PROBE_TIMEOUT_MS = 5_000
/** How often connections are looked at (the monitor's `rtt`, stale samples). */
const CHECK_EVERY_MS = 1_000
/** A new peer is pinged once a second until it has this many samples: one taken on a busy machine may be far off. */
const FIRST_SAMPLES = 3
/** A peer not connected for this many intervals is forgotten. */
const FORGET_AFTER_INTERVALS = 10

export interface RttComponents {
  libp2p: Libp2p
  clock: Clock
  log: Logger
  metrics: Metrics
}

interface PeerRtt {
  samples: number[]
  lastAtMs: number
  /** The connection monitor's last figure read, so that one figure is one sample. */
  monitorRtt?: number
}

export class RttService {
  readonly #c: RttComponents
  readonly #intervalMs: number
  readonly #peers = new Map<string, PeerRtt>()
  readonly #probing = new Set<string>()
  #timer?: AlignedTask
  #stopped = true

  constructor (components: RttComponents, init: { intervalMs: number }) {
    this.#c = components
    this.#intervalMs = init.intervalMs
  }

  start (): void {
    if (!this.#stopped) return
    this.#stopped = false
    this.#c.libp2p.addEventListener('peer:connect', this.#onConnect)
    this.#c.libp2p.addEventListener('peer:disconnect', this.#onDisconnect)
    this.#timer = everyAligned(CHECK_EVERY_MS, () => { this.#check() })
    for (const conn of this.#c.libp2p.getConnections()) void this.#probe(conn.remotePeer.toString())
  }

  stop (): void {
    this.#stopped = true
    this.#timer?.clear()
    this.#c.libp2p.removeEventListener('peer:connect', this.#onConnect)
    this.#c.libp2p.removeEventListener('peer:disconnect', this.#onDisconnect)
  }

  /** The round trip to `peerId`, ms, or undefined when it was never measured. */
  rttMs (peerId: string): number | undefined {
    const p = this.#peers.get(peerId)
    return p != null ? rttOf(p.samples) : undefined
  }

  /** A sample measured elsewhere (tests, or another probe). */
  add (peerId: string, ms: number): void {
    const p = this.#peers.get(peerId) ?? { samples: [], lastAtMs: 0 }
    p.samples = addRttSample(p.samples, ms)
    p.lastAtMs = this.#c.clock.now()
    this.#peers.set(peerId, p)
    const rtt = rttOf(p.samples)
    if (rtt != null) this.#c.metrics.peerRtt.set({ peer: peerId }, rtt / 1000)
  }

  #check (): void {
    const now = this.#c.clock.now()
    const connected = new Set<string>()
    for (const conn of this.#c.libp2p.getConnections()) {
      connected.add(conn.remotePeer.toString())
      const id = conn.remotePeer.toString()
      const p = this.#peers.get(id)
      const monitor = conn.rtt
      if (typeof monitor === 'number' && monitor !== p?.monitorRtt) {
        this.add(id, monitor)
        const q = this.#peers.get(id)
        if (q != null) q.monitorRtt = monitor
      } else if (p == null || p.samples.length < FIRST_SAMPLES || now - p.lastAtMs >= this.#intervalMs) {
        void this.#probe(id)
      }
    }
    // Peers gone for long are forgotten: the map stays as large as the peers we meet.
    for (const [id, p] of this.#peers) if (!connected.has(id) && now - p.lastAtMs > FORGET_AFTER_INTERVALS * this.#intervalMs) this.#peers.delete(id)
  }

  async #probe (peerId: string): Promise<void> {
    if (this.#stopped || this.#probing.has(peerId)) return
    const conn = this.#c.libp2p.getConnections().find(c => c.remotePeer.toString() === peerId && c.status === 'open')
    if (conn == null) return
    this.#probing.add(peerId)
    try {
      this.add(peerId, await withDeadline(PROBE_TIMEOUT_MS, async signal => await probeRtt(conn, this.#c.clock, signal)))
    } catch (err: any) {
      // Not asked again before the interval: a peer that cannot answer a ping now is not helped by more of them.
      const p = this.#peers.get(peerId) ?? { samples: [], lastAtMs: 0 }
      p.lastAtMs = this.#c.clock.now()
      this.#peers.set(peerId, p)
      this.#c.log.debug({ component: 'discovery:rtt', peer: peerId, err: err.message }, 'ping failed')
    } finally {
      this.#probing.delete(peerId)
    }
  }

  readonly #onConnect = (evt: CustomEvent<PeerId>): void => {
    void this.#probe(evt.detail.toString())
  }

  readonly #onDisconnect = (evt: CustomEvent<PeerId>): void => {
    // Kept: a peer that comes back is usually as far as it was. Its gauge goes, it is no longer connected.
    this.#c.metrics.peerRtt.remove({ peer: evt.detail.toString() })
  }
}
