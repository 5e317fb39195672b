/**
 * SWIM with Lifeguard, sans I/O (after caio/foca's shape): the caller hands
 * in what arrived (`receive`), what failed to leave (`sendFailed`), hints
 * (`hint`, `heard`, `processState`) and the time (`tick`, when the last step
 * asked); each call returns a step — messages to send, status changes, the
 * next wake. The agent runs it over `/discovery/swim/1.0.0`, the simulator
 * over its simulated network. Probes, indirect probes, Lifeguard's health and
 * Rapid's rings: docs/architecture.md; what accusations mean: swim-members.ts.
 */
import { DetectionTargets } from './detection-targets.ts'
import { type DetectorConfig, validateDetectorConfig } from './detector-config.ts'
import { countChange, type DetectorInit, type DetectorStats, type DetectorStep, emptyStats, JOIN_GRACE_PERIODS } from './detector-step.ts'
import { DirectoryOrder, type ProbeOrder, ShuffledOrder } from './probe-order.ts'
import type { Rng } from './rng.ts'
import type { MemberStatus, SwimMessage, SwimUpdate } from './swim-messages.ts'
import { compareIncarnation, type Incarnation, type Member, type MemberSink, type StatusChange, SwimMembers } from './swim-members.ts'
import { refutation } from './incarnation.ts'
import { type Draft, Outbox } from './swim-outbox.ts'
import { Syncs } from './swim-sync.ts'
import { processCheckEveryMs, ProbeTiming } from './probe-timing.ts'
import { MAX_RELAYS, type Probe, type ProbeKind, ProbeTable, RelayTable } from './swim-probes.ts'

export type { DetectorInit, DetectorStats, DetectorStep, StatusChange }; export { JOIN_GRACE_PERIODS, type Outgoing } from './detector-step.ts'

export class FailureDetector {
  readonly self: string
  readonly stats: DetectorStats = emptyStats()
  readonly #c: DetectorConfig
  readonly #rng: Rng
  readonly #members: SwimMembers
  readonly #order: ProbeOrder
  readonly #targets: DetectionTargets
  readonly #timing: ProbeTiming
  readonly #syncs: Syncs
  readonly #probes = new ProbeTable()
  readonly #relays = new RelayTable()
  /** Members with accusations not yet decided, with when to look at them again. */
  readonly #watch = new Map<string, number>()
  readonly #sink: MemberSink
  readonly #joinGraceMs: number
  readonly #out: Outbox
  #seq = 0
  #nextProbeMs: number
  #wakeMs?: number
  #now = 0

  constructor (init: DetectorInit) {
    this.self = init.self
    this.#c = validateDetectorConfig(init.config)
    this.#rng = init.rng
    this.#timing = new ProbeTiming(this.#c, init.startHealth)
    this.#members = new SwimMembers(init.self, this.#c, init.directory, id => this.#timing.stopped(id))
    this.#order = init.directory != null ? new DirectoryOrder(init.rng, init.directory, init.self) : new ShuffledOrder(init.rng)
    this.#targets = new DetectionTargets(this.#members, this.#order, init.rng)
    this.#out = new Outbox({ config: this.#c, members: this.#members, targets: this.#targets, stats: this.stats, run: init.run })
    this.#joinGraceMs = init.joinGraceMs ?? JOIN_GRACE_PERIODS * this.#c.probeIntervalMs
    // A random phase, so that agents started together do not probe in step (memberlist's stagger).
    this.#nextProbeMs = init.nowMs + Math.floor(init.rng.next() * this.#c.probeIntervalMs)
    this.#syncs = new Syncs(this.#members, this.#targets, this.#c, init.nowMs)
    this.#sink = {
      change: c => {
        this.#out.change(c)
        countChange(this.stats, c)
      },
      queue: (u, urgent) => { this.#out.update(u, urgent, this.#now) },
      accused: peer => { this.#verify(peer) }
    }
  }

  get incarnation (): Incarnation { return { ...this.#out.incarnation } }

  /** Lifeguard's local health score: 0 when healthy, up to `awarenessMax` − 1. */
  get health (): number { return this.#timing.awareness.score }

  status (peer: string): MemberStatus | undefined { return this.#members.status(peer) }

  /** Every member with its status and incarnation (for tests, metrics and the simulator). */
  members (): Array<{ peer: string, status: MemberStatus, run: number, inc: number }> {
    return [...this.#members.values()].map(m => ({ peer: m.id, status: m.status, run: m.run, inc: m.inc }))
  }

  /** A peer to watch, alive at `run` (its gossiped state's), until `remove`. */
  add (peer: string, run: number, nowMs: number): DetectorStep {
    this.#begin(nowMs)
    if (this.#members.add(peer, run, nowMs) != null) this.#order.add(peer)
    return this.#finish()
  }

  remove (peer: string): void {
    this.#members.remove(peer)
    this.#order.remove(peer)
    this.#out.queue.delete(peer)
    this.#watch.delete(peer)
    this.#timing.rtt.forget(peer)
    this.#timing.processState(peer, true)
    this.#probes.endFor(peer)
  }

  /** The peer's own state was heard, naming its run: a later run is a restart; a dead peer still gossiping is pinged, to learn of its death and refute. */
  heard (peer: string, run: number, nowMs: number): DetectorStep {
    this.#begin(nowMs)
    const known = this.#members.incarnation(peer)
    if (known != null) {
      if (run > known.run) this.#members.seen(this.#members.get(peer)!, { run, inc: 0 }, nowMs, this.#sink)
      else if (this.#members.status(peer) === 'dead') this.#revive(peer)
    }
    return this.#finish()
  }

  /** A closed connection gets the peer probed at once (a killed process is found in one probe, not a pass); a new one from a suspect or dead peer too, so it refutes. */
  hint (peer: string, kind: 'connected' | 'disconnected', nowMs: number): DetectorStep {
    this.#begin(nowMs)
    const status = this.#members.status(peer)
    if (status != null && !this.#probes.probing(peer)) {
      if (status === 'dead') this.#revive(peer)
      // A connection closed is news for the peer's observers only (with a bounded fan-out, others may close theirs on purpose).
      else if ((kind === 'disconnected' && this.#members.observes(peer)) || status === 'suspect') this.#extraProbe(peer)
    }
    return this.#finish()
  }

  /** A co-hosted member's process as the kernel shows it (agent/process-watch.ts): one stopped or gone is probed now on the plain timeout, and its silence accuses it without helpers. */
  processState (peer: string, running: boolean, nowMs: number): DetectorStep {
    this.#begin(nowMs)
    const status = this.#members.status(peer)
    if (this.#timing.processState(peer, running) && !running && status != null && status !== 'dead') {
      const p = this.#probes.of(peer)
      if (p == null) this.#startProbe(peer, 'extra')
      else if (p.indirect) this.#goIndirect(p)
      else p.directDeadlineMs = Math.min(p.directDeadlineMs, nowMs + this.#timing.timeoutMs(peer))
    }
    // Its suspicion's end moved (members' `deadlineOf`).
    if (this.#members.peek(peer)?.suspicion != null) this.#recheck(peer)
    return this.#finish()
  }

  /** The members whose processes are worth watching: those we observe, dead ones too (a resumed one is then seen running). */
  watched (): string[] { return this.#targets.watched() }
  /** How often to look at their processes now (probe-timing.ts `processCheckEveryMs`). */
  processCheckEveryMs (): number | null { return processCheckEveryMs(this.#c, this.#members.liveCount) }

  /** How much slower than its CPU needs this node runs, its host being busy (probe-timing.ts `hostSlowdown`). */
  hostSlowdown (factor: number): void { this.#timing.hostSlowdown(factor) }
  get hostFactor (): number { return this.#timing.hostFactor }

  /** This node's timers ran `lateMs` late (the agent measures its own tick): its judgement is less sure. */
  late (lateMs: number, nowMs: number): DetectorStep {
    this.#begin(nowMs)
    this.#onLate(lateMs)
    return this.#finish()
  }

  receive (from: string, msg: SwimMessage, nowMs: number): DetectorStep {
    this.#begin(nowMs)
    this.stats.messagesReceived++
    // The header is the sender's incarnation (its connection authenticates it). A helper's relayed ack carries the target's in
    // the helper's words: not taken, or a peer could refute for another — the target's own signed updates bring its refutation.
    const known = msg.type === 'ack' && msg.of != null ? undefined : this.#members.incarnation(from)
    if (known != null && compareIncarnation(msg, known) > 0) this.#members.seen(this.#members.get(from)!, msg, nowMs, this.#sink)
    for (const u of msg.updates) this.#apply(u)
    switch (msg.type) {
      case 'ping': this.#send(from, { type: 'ack', seq: msg.seq }); break
      case 'ack': this.#onAck(from, msg); break
      case 'ping-req': this.#onPingReq(from, msg.seq, msg.target); break
      case 'nack': this.#onNack(from, msg.seq, msg.unreachable === true); break
      case 'gossip': break
      case 'sync': this.#out.sync(this.#syncs.answer(from, msg.updates)); break
    }
    return this.#finish()
  }

  /** A message could not be delivered (no connection could be made, the stream broke). */
  sendFailed (to: string, msg: SwimMessage, nowMs: number): DetectorStep {
    this.#begin(nowMs)
    if (msg.type === 'ping') {
      const p = this.#probes.get(msg.seq)
      if (p != null && p.target === to && !p.indirect) {
        p.unsent = true
        this.#goIndirect(p)
      }
      const r = this.#relays.take(msg.seq, to)
      if (r != null && !r.nacked) this.#send(r.requester, { type: 'nack', seq: r.requesterSeq, unreachable: true })
      // Relayed for another observer of the target, and refused: we observe it too, our word is needed — probe it now.
      if (r != null && this.#members.topology && this.#members.observes(to) && this.#members.status(to) !== 'dead' && !this.#probes.probing(to)) this.#extraProbe(to)
    } else if (msg.type === 'ping-req') {
      const p = this.#probes.get(msg.seq)
      if (p != null && p.helpers.delete(to) && this.#probes.allUnreachable(p)) this.#conclude(p)
    }
    return this.#finish()
  }

  tick (nowMs: number): DetectorStep {
    this.#begin(nowMs)
    if (this.#wakeMs != null && nowMs > this.#wakeMs) this.#onLate(nowMs - this.#wakeMs)
    for (const r of this.#relays.due(nowMs)) this.#send(r.requester, { type: 'nack', seq: r.requesterSeq })
    for (const p of this.#probes.all()) {
      if (!p.indirect && nowMs >= p.directDeadlineMs) this.#goIndirect(p)
      else if (p.indirect && nowMs >= p.endDeadlineMs) this.#conclude(p)
    }
    for (const [peer, at] of this.#watch) if (at <= nowMs) this.#recheck(peer)
    if (nowMs >= this.#nextProbeMs) {
      this.#nextProbeMs = nowMs + this.#timing.intervalMs(this.#members.liveCount)
      this.#roundProbe()
      this.#out.sync(this.#syncs.periodic(nowMs, this.#members.liveCount))
    }
    return this.#finish()
  }

  #begin (nowMs: number): void {
    this.#now = nowMs
    this.#out.begin()
  }

  #finish (): DetectorStep {
    const step = this.#out.finish(this.#now)
    step.wakeAtMs = this.#nextWake()
    this.#wakeMs = step.wakeAtMs
    return step
  }

  #nextWake (): number {
    let at = Math.min(this.#nextProbeMs, this.#out.nextPushMs ?? Infinity, this.#probes.nextDeadlineMs(), this.#relays.nextDeadlineMs())
    for (const d of this.#watch.values()) at = Math.min(at, d)
    return at
  }

  #onLate (lateMs: number): void {
    // Only a pause as long as several periods makes what is in flight meaningless (probe-timing.ts).
    if (!this.#timing.late(lateMs, this.#now)) return
    for (const p of this.#probes.all()) this.#probes.end(p)
    this.#relays.clear()
    for (const peer of this.#watch.keys()) {
      this.#members.peek(peer)?.suspicion?.delay(lateMs)
      this.#recheck(peer)
    }
  }

  #apply (u: SwimUpdate): void {
    if (u.peer === this.self) return this.#aboutSelf(u)
    this.#members.apply(u, this.#now, this.#sink)
    if (this.#members.peek(u.peer)?.suspicion != null) this.#recheck(u.peer, false)
  }

  /** When to look at a member's accusations again: at its suspicion's deadline, or past it without a quorum, a period later. */
  #recheck (peer: string, evaluate = true): void {
    const m = this.#members.peek(peer)
    if (m?.suspicion == null || m.status === 'dead') {
      this.#watch.delete(peer)
      return
    }
    const next = evaluate ? this.#members.evaluate(m, this.#now, this.#sink) : this.#members.deadlineOf(m)
    if ((m.status as MemberStatus) === 'dead') return void this.#watch.delete(peer)
    // Past its deadline with no quorum, ask the suspect: its answer carries a refutation that went round before we
    // heard the accusation (with the rings nothing else brings it to a non-observer, who accuses nobody on silence).
    if (evaluate && m.suspicion != null && (next == null || next <= this.#now)) {
      this.#extraProbe(peer)
      this.#out.sync(this.#syncs.about(m, this.#now))
    }
    this.#watch.set(peer, next != null && next > this.#now ? next : this.#now + this.#c.probeIntervalMs)
  }

  /** An update about us: an accusation at our incarnation or above is refuted by raising it. */
  #aboutSelf (u: SwimUpdate): void {
    const next = refutation(u, this.incarnation)
    if (next == null) return
    this.#out.incarnation = next
    this.stats.refutations++
    // Lifeguard: having to refute is a sign we are the slow one.
    this.#timing.awareness.apply(1)
    this.#sink.queue({ peer: this.self, ...next, status: 'alive' }, true)
  }

  #onAck (from: string, msg: Extract<SwimMessage, { type: 'ack' }>): void {
    if (msg.of == null) this.#timing.rtt.acked(msg.seq, from, this.#now)
    const r = msg.of == null ? this.#relays.take(msg.seq, from) : undefined
    if (r != null) return this.#send(r.requester, { type: 'ack', seq: r.requesterSeq, of: r.target, run: msg.run, inc: msg.inc })
    const p = this.#probes.get(msg.seq)
    if (p == null || (msg.of ?? from) !== p.target) return
    this.#probes.end(p)
    this.#timing.awareness.apply(-1)
  }

  #onPingReq (from: string, seq: number, target: string): void {
    if (target === this.self) return this.#send(from, { type: 'ack', seq, of: this.self })
    if (this.#relays.size >= MAX_RELAYS) return this.#send(from, { type: 'nack', seq })
    const ours = ++this.#seq
    this.#relays.add(ours, from, seq, target, this.#now, this.#timing.timeoutMs(target))
    this.#timing.rtt.sent(ours, target, this.#now)
    this.#send(target, { type: 'ping', seq: ours })
  }

  #onNack (from: string, seq: number, unreachable: boolean): void {
    const p = this.#probes.get(seq)
    // Only when every helper could not even send its ping (the target is gone) is it over before its end: a helper that timed out may still pass on a late ack.
    if (p != null && this.#probes.nack(p, from, unreachable)) this.#conclude(p)
  }

  #startProbe (target: string, kind: ProbeKind): void {
    const seq = ++this.#seq
    this.#probes.start(seq, target, kind, this.#now + this.#timing.timeoutMs(target))
    this.#timing.rtt.sent(seq, target, this.#now)
    this.stats.probes++
    this.#send(target, { type: 'ping', seq })
  }

  /** The next live member of the round-robin is probed; dead ones on the way get a revival ping (after a partition heals, both sides refute). */
  #roundProbe (): void {
    for (const target of this.#targets.turn(id => !this.#probes.probing(id))) {
      if (this.#members.status(target) !== 'dead') return this.#startProbe(target, 'round')
      this.#revive(target)
    }
  }

  /** A dead member is pinged, directly only, at most once a period: it learns of its death and refutes, or stays dead. */
  #revive (peer: string): void {
    const m = this.#members.get(peer)!
    if (this.#probes.probing(peer) || (m.revivalProbeMs != null && this.#now - m.revivalProbeMs < this.#c.probeIntervalMs)) return
    m.revivalProbeMs = this.#now
    this.#startProbe(peer, 'revival')
  }

  /** With probability verifyProbes / observers, probe a member we just heard accused, to confirm or not (with the topology: each of its observers, at once). */
  #verify (peer: string): void {
    const status = this.#members.status(peer)
    if (status == null || status === 'dead' || this.#probes.probing(peer) || this.#c.verifyProbes <= 0) return
    if (this.#targets.verifies(peer, status, this.#c.verifyProbes)) this.#extraProbe(peer)
  }

  /** Out of turn: at most once a period per member (a flapping connection would otherwise flood it). */
  #extraProbe (peer: string): void {
    if (this.#probes.outOfTurnAllowed(peer, this.#now, this.#c.probeIntervalMs)) this.#startProbe(peer, 'extra')
  }

  #goIndirect (p: Probe): void {
    if (p.kind === 'revival') {
      this.#probes.end(p)
      return this.#members.confirmDead(p.target, this.#now)
    }
    // The kernel shows its process stopped or gone: no helper can get an answer from it, and the fault is not ours.
    if (this.#timing.stopped(p.target)) {
      this.#probes.end(p)
      const m = this.#members.get(p.target)
      if (m != null && m.status !== 'dead' && this.#members.observes(m.id)) this.#accuse(m, true)
      return
    }
    p.indirect = true
    this.stats.indirectProbes++
    // The helper's own timeout, the time it still passes on a late ack, and the way back.
    p.endDeadlineMs = this.#now + 2.5 * this.#timing.timeoutMs(p.target)
    const helpers = this.#targets.helpers(p.target, this.#c.indirectChecks)
    for (const h of helpers) p.helpers.add(h)
    for (const h of helpers) this.#send(h, { type: 'ping-req', seq: p.seq, target: p.target })
  }

  #conclude (p: Probe): void {
    this.#probes.end(p)
    if (this.#members.status(p.target) == null || p.kind === 'revival') return
    const asked = p.helpers.size
    const nacks = p.nacks.size
    // A member suspect for long without a quorum, that we could not reach either (a helper confirmed it): decided.
    const m = this.#members.get(p.target)!
    if (asked === 0 || nacks > 0) this.#members.declareOverdue(m, this.#now, this.#sink)
    // Only a member's observers accuse it: the rings say whose word counts, and we are not among them.
    if (!this.#members.observes(p.target)) return
    if (asked > 0 && nacks === 0 && !this.#timing.awareness.atMax) {
      this.stats.inconclusiveProbes++
      this.#timing.awareness.apply(asked)
      return
    }
    // Helpers not heard from count against our own health, unless two refused connections decided it before they could answer.
    this.#timing.awareness.apply(asked === 0 ? 1 : this.#probes.refusedTwice(p) ? 0 : asked - nacks)
    if (this.#members.status(p.target) === 'dead') return
    const added = this.#members.peek(p.target)?.addedAtMs
    if (p.unsent !== true && added != null && this.#now - added < this.#joinGraceMs) {
      this.stats.inconclusiveProbes++
      return
    }
    this.#accuse(m)
  }

  /** `certain`: the kernel showed its process stopped — its other observers hear of our accusation at once. */
  #accuse (m: Member, certain = false): void {
    this.stats.failedProbes++
    this.#members.accuse(m, this.#now, this.#sink)
    this.#recheck(m.id, false)
    // Told at once, the accused refutes sooner than at our next probe of it.
    this.#send(m.id, { type: 'gossip' })
    // Its other observers' words and ours make the quorum: they hear ours now, not when a push or a piggy-back happens
    // to reach them (a lone accusation is not passed on by those who hold the member alive). Only on the kernel's
    // word: a lone accusation of a probe (maybe our own fault) is left to spread as SWIM spreads it.
    if (!certain) return
    const update = this.#members.updateOf(m)
    for (const o of this.#members.observersOf(m.id) ?? []) if (o !== this.self && o !== m.id && this.#members.status(o) === 'alive') this.#send(o, { type: 'gossip' }, [update])
  }

  #send<T extends SwimMessage> (to: string, draft: Draft<T>, first: SwimUpdate[] = []): void { this.#out.send(to, draft, first) }
}
