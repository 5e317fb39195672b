/**
 * The failure detector's runtime in the agent: core/failure-detector.ts fed
 * with what arrives on `/discovery/swim/1.0.0` (net/swim-transport.ts), with
 * the transport's failures, with hints from libp2p (a connection closed or
 * opened) and gossip (a peer's state heard), and with the system clock at the
 * times it asks to be woken. Its verdicts go to membership, which applies
 * them to the view. Its counters become metrics.
 */
import type { Libp2p, PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Logger } from 'pino'
import type { Clock } from '../core/clock.ts'
import type { DetectorConfig } from '../core/detector-config.ts'
import { type DetectorStats, type DetectorStep, FailureDetector, type StatusChange } from '../core/failure-detector.ts'
import type { Signer } from '../core/ownership.ts'
import type { Rng } from '../core/rng.ts'
import { type MemberStatus, namesUnknown } from '../core/swim-messages.ts'
import { SwimTransport } from '../net/index.ts'
import { HostLoad } from './host-load.ts'
import { ProcessWatch, thisProcess } from './process-watch.ts'
import type { ProcessIdentity } from '../core/messages.ts'
import type { Metrics } from './metrics.ts'
import { SwimProofs } from './swim-proofs.ts'
import { type AlignedTask, everyAligned } from '../net/aligned-timers.ts'

export interface FailureDetectionComponents {
  self: string
  clock: Clock
  rng: Rng
  log: Logger
  metrics: Metrics
  libp2p: Libp2p
}

export interface FailureDetectionInit {
  config: DetectorConfig
  /** This run's incarnation: the `incarnation` of the state we gossip, read at start. */
  run: () => number
  /** Where to dial a peer. */
  dialTarget: (peer: string) => PeerId | Multiaddr[]
  /** Status changes, in the order decided. */
  onChanges: (changes: StatusChange[]) => void
  onInvalid: (from: string, reason: string) => void
  /** Signs our claims (accusations, our incarnations) and checks our peers' (agent/swim-proofs.ts). */
  signer: Signer
  /** A message came with claims whose signatures were missing or wrong: they were dropped, the rest applied. */
  onForged: (from: string, reason: string) => void
  /** Where a peer says its process runs (its gossiped state's `process`). */
  processOf?: (peer: string) => ProcessIdentity | undefined
  /** A message from `from` named a peer we do not watch, whose state `from` holds (core/swim-messages.ts `namesUnknown`). */
  onUnknown?: (from: string) => void
}

/** Counters of DetectorStats that become Prometheus counters, by metric. */
const COUNTED: Array<[keyof DetectorStats, keyof Metrics]> = [
  ['probes', 'detectorProbes'],
  ['indirectProbes', 'detectorIndirectProbes'],
  ['failedProbes', 'detectorFailedProbes'],
  ['suspicions', 'detectorSuspicions'],
  ['refutations', 'detectorRefutations'],
  ['deaths', 'detectorDeaths'],
  ['falsePositives', 'detectorFalsePositives'],
  ['syncs', 'detectorSyncs'],
  ['syncNews', 'detectorSyncNews']
]

/**
 * A swim stream we have not written on for this long is closed, so that its
 * connection can become idle and a bounded fan-out close it: long beside the
 * detection peers' traffic, short beside the life of a connection. A subject
 * is probed every `subjects` probe intervals, and with the host's probe
 * budget and slowdown (100 agents: 1 s, stretched up to 4 times) that is up
 * to 16 s: at 10 s (before) the streams to the subjects closed between their
 * probes, their connections went idle, the bounded fan-out closed them and
 * the next probe dialled again — a noise handshake, identify and gossipsub's
 * streams on both sides, 6 new connections a second for 100 idle agents.
 */
const IDLE_STREAM_MS = 60_000
const SWEEP_EVERY_MS = 1_000

export class FailureDetection {
  readonly #c: FailureDetectionComponents
  readonly #init: FailureDetectionInit
  readonly #transport: SwimTransport
  readonly #proofs: SwimProofs
  #detector?: FailureDetector
  /** Peers given before start: added then. */
  readonly #early = new Map<string, number>()
  #timer?: NodeJS.Timeout
  #timerAtMs = Infinity
  #sampled: Partial<DetectorStats> = {}
  #sweptAtMs = 0
  readonly #hostLoad?: HostLoad
  readonly #processes?: ProcessWatch
  #processTimer?: AlignedTask
  #processEveryMs?: number

  constructor (components: FailureDetectionComponents, init: FailureDetectionInit) {
    this.#c = components
    this.#init = init
    if (init.config.hostLoadMaxMult != null) this.#hostLoad = new HostLoad()
    if (init.config.processCheckMs != null && init.processOf != null) {
      this.#processes = new ProcessWatch({ self: thisProcess(), processOf: init.processOf, onChange: (peer, running) => {
        if (!running) components.metrics.detectorProcessesStopped.inc()
        this.#run(d => d.processState(peer, running, this.#now()))
      } })
    }
    this.#proofs = new SwimProofs({ signer: init.signer, onForged: init.onForged })
    this.#transport = new SwimTransport({
      libp2p: components.libp2p,
      dialTarget: init.dialTarget,
      // Long enough for a busy peer's noise handshake; what waits meanwhile is judged by the probe's own timeouts.
      dialTimeoutMs: Math.max(5_000, 10 * init.config.probeTimeoutMs),
      now: () => this.#now(),
      onMessage: (from, received) => {
        const msg = this.#proofs.check(from, received)
        components.metrics.detectorMessages.inc({ direction: 'received', type: msg.type })
        this.#run(d => {
          if (init.onUnknown != null && namesUnknown(components.self, from, msg, p => d.status(p))) init.onUnknown(from)
          return d.receive(from, msg, this.#now())
        })
      },
      // Reported asynchronously: a failure met while sending a step's messages is a step of its own.
      onSendFailed: (to, msg) => { queueMicrotask(() => { this.#run(d => d.sendFailed(to, msg, this.#now())) }) },
      onInvalid: init.onInvalid
    })
  }

  async start (): Promise<void> {
    if (this.#detector != null) return
    this.#detector = new FailureDetector({ self: this.#c.self, run: this.#init.run(), config: this.#init.config, rng: this.#c.rng, nowMs: this.#now() })
    await this.#transport.start()
    for (const [peer, run] of this.#early) this.#run(d => d.add(peer, run, this.#now()))
    this.#early.clear()
    this.#watchProcesses()
  }

  /** The process watch's task, at the period the detector asks for now; set again when that changes (the cluster grew or shrank). */
  #watchProcesses (): void {
    const every = this.#detector?.processCheckEveryMs()
    if (this.#processes == null || every == null || every === this.#processEveryMs) return
    this.#processTimer?.clear()
    this.#processEveryMs = every
    this.#processTimer = everyAligned(every, () => {
      if (this.#detector == null) return
      this.#processes!.check(this.#detector.watched())
      this.#watchProcesses()
    })
  }

  async stop (): Promise<void> {
    this.#processTimer?.clear()
    this.#processTimer = undefined
    this.#processEveryMs = undefined
    this.#processes?.stop()
    this.#hostLoad?.close()
    clearTimeout(this.#timer)
    this.#timer = undefined
    await this.#transport.stop()
    this.#detector = undefined
  }

  /** A peer entered the view, gossiping `run` as its incarnation. */
  add (peer: string, run: number): void {
    if (this.#detector == null) this.#early.set(peer, run)
    else this.#run(d => d.add(peer, run, this.#now()))
  }

  /** The view forgot a dead peer. */
  remove (peer: string): void {
    this.#early.delete(peer)
    this.#detector?.remove(peer)
  }

  /** A state from the peer itself was heard. */
  heard (peer: string, run: number): void {
    this.#run(d => d.heard(peer, run, this.#now()))
  }

  hint (peer: string, kind: 'connected' | 'disconnected'): void {
    this.#run(d => d.hint(peer, kind, this.#now()))
  }

  /** The agent's own tick ran `ms` late. */
  late (ms: number): void {
    this.#run(d => d.late(ms, this.#now()))
  }

  status (peer: string): MemberStatus | undefined {
    return this.#detector?.status(peer)
  }

  /** On every agent tick: how busy the host keeps us, to the detector (when it shares a host); its counters to the metrics. */
  tick (): void {
    const d = this.#detector
    if (d == null) return
    if (this.#hostLoad != null) {
      const slowdown = this.#hostLoad.sample()
      if (slowdown != null) d.hostSlowdown(slowdown)
    }
    this.#sampleMetrics(d)
  }

  /** Copies the detector's counters into the metrics (they only grow: each sample adds what is new). */
  #sampleMetrics (d: FailureDetector): void {
    const m = this.#c.metrics
    for (const [stat, metric] of COUNTED) {
      const delta = d.stats[stat] - (this.#sampled[stat] ?? 0)
      if (delta > 0) (m[metric] as { inc: (n: number) => void }).inc(delta)
    }
    m.detectorHealth.set(d.health)
    m.detectorHostSlowdown.set(d.hostFactor)
    this.#sampled = { ...d.stats }
  }

  #now (): number {
    return this.#c.clock.now()
  }

  #run (f: (d: FailureDetector) => DetectorStep): void {
    const d = this.#detector
    if (d == null) return
    const step = f(d)
    for (const { to, message } of step.send) {
      this.#c.metrics.detectorMessages.inc({ direction: 'sent', type: message.type })
      this.#transport.send(to, this.#proofs.stamp(message))
    }
    if (step.changes.length > 0) this.#init.onChanges(step.changes)
    if (step.wakeAtMs != null) this.#arm(step.wakeAtMs)
    const now = this.#now()
    if (now - this.#sweptAtMs >= SWEEP_EVERY_MS) {
      this.#sweptAtMs = now
      this.#transport.closeIdle(IDLE_STREAM_MS)
    }
  }

  /**
   * One timer, at the time the last step asked for: each step's wake is the
   * earliest the detector needs (a probe, a deadline, a suspicion's end).
   * Moved later when the need for an earlier one went away — an ack ended its
   * probe before the probe's deadline — rather than left to wake the agent
   * for nothing: half of an idle agent's detector wake-ups.
   */
  #arm (atMs: number): void {
    if (this.#timer != null && this.#timerAtMs === atMs) return
    clearTimeout(this.#timer)
    this.#timerAtMs = atMs
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      this.#timerAtMs = Infinity
      // Node runs timers before reading sockets: after a stall, the ack of a probe may be waiting unread. The tick
      // comes after what has arrived (setImmediate runs after the poll phase), so no probe is judged on stale silence.
      setImmediate(() => { this.#run(d => d.tick(this.#now())) })
    }, Math.max(0, atMs - this.#now()))
    this.#timer.unref()
  }
}
