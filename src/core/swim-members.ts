/**
 * The failure detector's members and how their status is decided — the rules
 * that keep a one-way fault from making the membership flap:
 *
 * - An accusation is a fact about one member at one incarnation, with its
 *   accuser; updates carry the set of accusers, and every member applies the
 *   same rule to the set it has gathered (no member's verdict is taken on
 *   its word alone).
 * - Only accusers we believe alive count (and ourselves): a member whose
 *   messages cannot get in is soon dead to everyone, and whatever it accuses
 *   others of is void from then on.
 * - A member shows `suspect` here when we accused it ourselves (our probe
 *   failed, and a helper confirmed it could not reach it either) or when
 *   `suspectQuorum` accusers agree; one lone accuser, maybe the sick one,
 *   changes nothing here.
 * - It is declared `dead` once its suspicion timeout is over (Lifeguard: long
 *   for one accuser, down to the minimum with `deadQuorum`) and `deadQuorum`
 *   accusers agree (after Rapid), both capped by the members able to
 *   observe; a `dead` update carrying that many accusers we count is taken at
 *   once.
 * - With a monitoring topology (`observers`, core/monitor-rings.ts), only
 *   the member's observers are accusers that count, and the quorums are
 *   capped by its observers we believe alive: the members that probe it.
 * - A member refutes by raising its incarnation: any accusation at an older
 *   incarnation is void. Back alive in the same run after a death is a false
 *   positive; in a later run, a restart.
 */
import type { DetectorConfig } from './detector-config.ts'
import { compareIncarnation, type Incarnation } from './incarnation.ts'
import type { MemberDirectory } from './member-directory.ts'
import { type Member, MemberTable } from './member-table.ts'
import { Suspicion, suspicionTimeoutMs } from './suspicion.ts'
import { SWIM_LIMITS, type MemberStatus, type SwimUpdate } from './swim-messages.ts'

export { compareIncarnation, type Incarnation, type Member }


export interface StatusChange {
  peer: string
  from: MemberStatus
  to: MemberStatus
  run: number
  inc: number
  /** Back alive in the same run (it refuted); after `dead`, the death was a false positive. */
  refuted?: boolean
  /** Back alive in a later run: it restarted. */
  restarted?: boolean
}

/** What the member rules ask of the detector. */
export interface MemberSink {
  change: (c: StatusChange) => void
  /** Spread what we now know of a member; `urgent` pushes it without waiting for a probe. */
  queue: (u: SwimUpdate, urgent: boolean) => void
  /** We just heard the first accusation of `peer`: maybe probe it ourselves. */
  accused: (peer: string) => void
}

/** How many of its longest suspicion timeouts a member stays suspect without a quorum before a failed probe of ours decides it. */
const OVERDUE_MAX_TIMEOUTS = 2

const RANK: Readonly<Record<MemberStatus, number>> = { alive: 0, suspect: 1, dead: 2 }

/** Accusers listed in one update: enough for any quorum, and a message stays small. */
const ACCUSERS_PER_UPDATE = 8

export class SwimMembers extends MemberTable {
  readonly #config: DetectorConfig
  /** Whether the kernel last showed a member's process stopped or gone (the detector's probe timing knows). */
  readonly #stopped: (id: string) => boolean

  constructor (self: string, config: DetectorConfig, directory?: MemberDirectory, stopped: (id: string) => boolean = () => false) {
    super(self, config.observers, directory)
    this.#config = config
    this.#stopped = stopped
  }

  /** Whether others would show `m` suspect too: dead, or accused by a suspect quorum (not by our word alone, which may be our own fault). */
  agreed (m: Member): boolean {
    return m.status === 'dead' || (m.suspicion != null && m.suspicion.count(this.counter(m)) >= this.#quorum(this.#config.suspectQuorum, m))
  }

  /** Whether `u` tells less than we know of `m`: an older incarnation, or the same one with a weaker status. */
  behind (u: SwimUpdate, m: Member): boolean {
    const cmp = compareIncarnation(u, m)
    if (cmp !== 0) return cmp < 0
    return RANK[u.status] < RANK[m.status]
  }

  /** What we know of `m`, as an update to spread. */
  updateOf (m: Member): SwimUpdate {
    const u: SwimUpdate = { peer: m.id, run: m.run, inc: m.inc, status: m.status }
    if (m.status !== 'alive' && m.suspicion != null) u.accusers = m.suspicion.list(this.counter(m), ACCUSERS_PER_UPDATE)
    return u
  }

  /** The accusation we tell `m` itself about, so that it refutes: any we hold at its incarnation. */
  accusationFor (m: Member): SwimUpdate | undefined {
    if (m.suspicion == null) return undefined
    const accusers = m.suspicion.list(this.counter(m), ACCUSERS_PER_UPDATE)
    if (accusers.length === 0) accusers.push(...m.suspicion.accusers.keys())
    return { peer: m.id, run: m.run, inc: m.inc, status: m.status === 'dead' ? 'dead' : 'suspect', accusers: accusers.slice(0, SWIM_LIMITS.maxAccusers) }
  }

  /** Our own probe of `m` failed (and was confirmed): we accuse it. */
  accuse (m: Member, nowMs: number, sink: MemberSink): void {
    if (m.status === 'dead') return
    const s = this.#suspicionOf(m, nowMs)
    if (!s.add(this.self, nowMs)) return
    this.evaluate(m, nowMs, sink)
    sink.queue(this.updateOf(m), true)
  }

  /**
   * A member we hold dead did not answer our ping: our own word that it is
   * gone, named among its accusers from now on (when we observe it). A
   * member declared dead under a smaller quorum than another member uses
   * (their views of who is alive differed) is thus confirmed by those that
   * hold it dead, for a member that holds it suspect for want of accusers.
   */
  confirmDead (id: string, nowMs: number): void {
    const m = this.peek(id)
    if (m?.status !== 'dead' || m.suspicion == null || !this.observes(m.id)) return
    m.suspicion.add(this.self, nowMs)
  }

  /**
   * Our own probe of `m` failed too: if it has been shown suspect for twice
   * its longest suspicion timeout, with the accusers that made it suspect,
   * the quorum that would decide it is not coming, and it is declared dead. Views
   * of who observes whom differ while members die (the rings skip the dead
   * ones), and a partition can leave a member whose observers, in our view,
   * hold it dead without having accused it, or do not see themselves as its
   * observers: it would stay suspect here for as long as the partition lasts
   * (the simulator: 3 of 300 seeded partitions, after syncs).
   */
  declareOverdue (m: Member, nowMs: number, sink: MemberSink): void {
    const s = m.suspicion
    if (m.status !== 'suspect' || s == null || nowMs < s.startMs + OVERDUE_MAX_TIMEOUTS * s.maxMs) return
    if (s.count(this.counter(m)) >= this.#quorum(this.#config.suspectQuorum, m)) this.#declareDead(m, nowMs, sink)
  }

  /** The member itself showed an incarnation (a message's header, a gossiped state's run). */
  seen (m: Member, inc: Incarnation, nowMs: number, sink: MemberSink): void {
    if (compareIncarnation(inc, m) <= 0) return
    this.#newer(m, inc, nowMs, sink)
    sink.queue(this.updateOf(m), true)
  }

  /** An update about another member, piggy-backed or gossiped. */
  apply (u: SwimUpdate, nowMs: number, sink: MemberSink): void {
    const known = this.incarnation(u.peer)
    if (known == null || compareIncarnation(u, known) < 0 || (u.status === 'alive' && compareIncarnation(u, known) === 0)) return
    const m = this.get(u.peer)!
    const cmp = compareIncarnation(u, m)
    if (u.status === 'alive') {
      if (cmp > 0) this.seen(m, u, nowMs, sink)
      return
    }
    if (cmp > 0) this.#newer(m, u, nowMs, sink)
    else if (m.status === 'dead') {
      // Held dead here: the accusers named still go into what we tell of it. The observers of a member change as
      // the rings skip the dead, and a node whose view of who observes it is not ours counts none of the accusers that
      // declared it dead here, only those of its observers it believes alive, who confirm the death later
      // (`confirmDead`): unless those names travel on through the members that hold it dead already, that node holds
      // it alive for as long as the partition lasts (the simulator: 60 nodes seed 3).
      if (m.suspicion != null) this.#addAccusers(m.suspicion, u, nowMs)
      return
    }
    const first = m.suspicion == null
    const s = this.#suspicionOf(m, nowMs)
    if (!this.#addAccusers(s, u, nowMs)) return
    if (first && !s.has(this.self)) sink.accused(m.id)
    // A death with enough accusers we count is taken at once: its declarer's timeout is over.
    if (u.status === 'dead' && s.count(this.counter(m)) >= this.#quorum(this.#config.deadQuorum, m)) this.#declareDead(m, nowMs, sink)
    else this.evaluate(m, nowMs, sink)
    sink.queue(this.updateOf(m), false)
  }

  /** Adds the accusers `u` names (never the accused itself) to `s`; whether any was new. */
  #addAccusers (s: Suspicion, u: SwimUpdate, nowMs: number): boolean {
    let added = false
    for (const a of u.accusers ?? []) if (a !== u.peer && s.add(a, nowMs)) added = true
    return added
  }

  /**
   * Applies the rules to `m`'s accusations at `nowMs`: shown suspect, declared
   * dead, or as it was. Returns when to look again (its suspicion deadline),
   * if that is still ahead.
   */
  evaluate (m: Member, nowMs: number, sink: MemberSink): number | undefined {
    const s = m.suspicion
    if (s == null || m.status === 'dead') return undefined
    const counts = this.counter(m)
    const n = s.count(counts)
    if (m.status === 'alive' && (s.has(this.self) || n >= this.#quorum(this.#config.suspectQuorum, m))) this.#set(m, 'suspect', nowMs, sink)
    const deadline = this.deadlineOf(m)!
    if (nowMs < deadline) return deadline
    if (n >= this.#quorum(this.#config.deadQuorum, m)) this.#declareDead(m, nowMs, sink)
    return undefined
  }

  /**
   * When `m`'s suspicion is over here: Lifeguard's timeout, or — when the
   * kernel showed us its process stopped (`stopped`, from the detector) —
   * one probe interval after the first accusation heard: the timeout is the
   * time a live member has to refute, and a stopped one cannot. The quorum
   * still decides.
   */
  deadlineOf (m: Member): number | undefined {
    const s = m.suspicion
    if (s == null) return undefined
    const deadline = s.deadlineMs(this.counter(m))
    return this.#stopped(m.id) ? Math.min(deadline, s.startMs + this.#config.probeIntervalMs) : deadline
  }

  #quorum (q: number, m: Member): number {
    return Math.max(1, Math.min(q, this.observers(m)))
  }

  #declareDead (m: Member, nowMs: number, sink: MemberSink): void {
    this.#set(m, 'dead', nowMs, sink)
    sink.queue(this.updateOf(m), true)
  }

  /**
   * The suspicion of `m`, started now if none: its timeouts from the formula,
   * not stretched by our own health (as in memberlist) — a node that has just
   * started or is starved probes slowly, but must not take longer to accept
   * what its peers agree on.
   */
  #suspicionOf (m: Member, nowMs: number): Suspicion {
    if (m.suspicion != null) return m.suspicion
    const c = this.#config
    const minMs = suspicionTimeoutMs(c.suspicionMult, this.liveCount, c.probeIntervalMs)
    // Lifeguard's k: confirmations that bring the timeout to its minimum; none expected in a cluster too small for them.
    const k = Math.min(c.deadQuorum - 1, this.observers(m) - 1)
    m.suspicion = new Suspicion({ startMs: nowMs, k: Math.max(0, k), minMs, maxMs: c.suspicionMaxTimeoutMult * minMs })
    return m.suspicion
  }

  /** `m` showed a newer incarnation: every accusation of the older one is void, and it is alive again. */
  #newer (m: Member, inc: Incarnation, nowMs: number, sink: MemberSink): void {
    const sameRun = inc.run === m.run
    m.run = inc.run
    m.inc = inc.inc
    delete m.suspicion
    this.#set(m, 'alive', nowMs, sink, sameRun ? { refuted: true } : { restarted: true })
  }

  #set (m: Member, status: MemberStatus, nowMs: number, sink: MemberSink, why: { refuted?: true, restarted?: true } = {}): void {
    if (m.status === status) return
    const from = m.status
    this.setStatus(m, status, nowMs)
    sink.change({ peer: m.id, from, to: status, run: m.run, inc: m.inc, ...why })
  }
}
