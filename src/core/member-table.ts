/**
 * The failure detector's members as a table (swim-members.ts decides what
 * their accusations mean): each member's status and incarnation, the counts
 * the formulas and quorums read (members alive, members not dead), the
 * members not alive (what a sync tells), and — with Rapid's rings
 * (`observers`, monitor-rings.ts) — who observes whom. With the simulator's
 * shared directory, a member is taken into the table only once something is
 * learnt of it; until then it is alive at (0, 0).
 */
import type { Incarnation } from './incarnation.ts'
import type { MemberDirectory } from './member-directory.ts'
import { MonitorRings, sharedRings, type Walk } from './monitor-rings.ts'
import type { Suspicion } from './suspicion.ts'
import type { MemberStatus } from './swim-messages.ts'

export interface Member extends Incarnation {
  id: string
  status: MemberStatus
  /** Accusations at this incarnation, if any. */
  suspicion?: Suspicion
  changedAtMs: number
  /** When it was added (not for a directory's members): a newcomer has a grace period. */
  addedAtMs?: number
  /** Last probe sent to revive a dead member (rate-limited). */
  revivalProbeMs?: number
  /** Last time its suspicion, past its deadline without a quorum, was asked about (rate-limited). */
  syncedAtMs?: number
}

export class MemberTable {
  readonly self: string
  /** Every member, or (with a directory) those we learnt something of beyond the directory's baseline. */
  readonly #map = new Map<string, Member>()
  readonly #directory?: MemberDirectory
  /** Who observes whom, when the topology is on (`observers` set). */
  readonly #rings?: MonitorRings
  /** Members (not us) shown alive, kept up to date: the observers a quorum may count on. */
  #alive = 0
  /** Members not dead (not us). */
  #live = 0
  /** Members shown suspect or dead: what a sync tells (the others are alive by default). */
  readonly #notAlive = new Set<string>()
  /** Changes whenever a member is added, removed, or dies or comes back: what the rings' walks are given. */
  #liveness = 0
  /** Our walk and detection peers, kept until the rings or the liveness change (they were walked again at every probe and process check). */
  #walked?: { rings: number, liveness: number, walk: Walk, peers: string[] }

  /** `observers`: the rings' k (detector-config.ts), or null for none. */
  constructor (self: string, observers: number | null, directory?: MemberDirectory) {
    this.self = self
    this.#directory = directory
    if (observers != null) {
      this.#rings = directory != null ? sharedRings(directory, directory.ids, observers) : new MonitorRings(observers)
      // Ourselves too (the directory may not list us): every walk starts from our place on the rings.
      if (directory == null || !directory.has(self)) this.#rings.add(self)
    }
    if (directory != null) {
      const others = directory.size - (directory.has(self) ? 1 : 0)
      this.#alive = others
      this.#live = others
    }
  }

  /** The member, to read or change; with a directory, one of its members is taken into our own table here. */
  get (id: string): Member | undefined {
    const m = this.#map.get(id)
    if (m != null || this.#directory?.has(id) !== true || id === this.self) return m
    const fresh: Member = { id, run: 0, inc: 0, status: 'alive', changedAtMs: 0 }
    this.#map.set(id, fresh)
    return fresh
  }

  /** The member if we hold anything of it beyond the directory's baseline (a suspicion, an incarnation). */
  peek (id: string): Member | undefined {
    return this.#map.get(id)
  }

  status (id: string): MemberStatus | undefined {
    const m = this.#map.get(id)
    if (m != null) return m.status
    return id !== this.self && this.#directory?.has(id) === true ? 'alive' : undefined
  }

  /** The incarnation we know of a member (the directory's baseline unless we learnt better). */
  incarnation (id: string): Incarnation | undefined {
    const m = this.#map.get(id)
    if (m != null) return m
    return this.status(id) != null ? { run: 0, inc: 0 } : undefined
  }

  /** Every member: ours, and the directory's we never learnt anything of. */
  * values (): IterableIterator<Member> {
    yield * this.#map.values()
    if (this.#directory == null) return
    for (const id of this.#directory.ids) if (id !== this.self && !this.#map.has(id)) yield { id, run: 0, inc: 0, status: 'alive', changedAtMs: 0 }
  }

  /** Members not dead, ourselves included: the n of the formulas. */
  get liveCount (): number {
    return this.#live + 1
  }

  get aliveCount (): number {
    return this.#alive
  }

  add (id: string, run: number, nowMs: number): Member | undefined {
    if (id === this.self || this.#map.has(id) || this.#directory?.has(id) === true) return undefined
    const m: Member = { id, run, inc: 0, status: 'alive', changedAtMs: nowMs, addedAtMs: nowMs }
    this.#map.set(id, m)
    this.#rings?.add(id)
    this.#alive++
    this.#live++
    this.#liveness++
    return m
  }

  remove (id: string): void {
    const m = this.#map.get(id)
    if (m == null || this.#directory?.has(id) === true) return
    if (m.status === 'alive') this.#alive--
    if (m.status !== 'dead') this.#live--
    this.#notAlive.delete(id)
    this.#map.delete(id)
    this.#rings?.remove(id)
    this.#liveness++
  }

  /** Whether `accuser`'s accusations count here: ourselves, or a member we believe alive. */
  counts = (accuser: string): boolean => accuser === this.self || this.status(accuser) === 'alive'

  /** Whether a member is on the rings' walks: ourselves, or a member not dead. */
  readonly #onRings = (id: string): boolean => id === this.self || (this.status(id) ?? 'dead') !== 'dead'

  /** Whether the monitoring topology is on now: set, and enough members not dead for it to bound anything. */
  get topology (): boolean {
    return this.#rings != null && this.liveCount > 2 * this.#rings.k + 1
  }

  /** The members that observe `id` (ourselves maybe among them); undefined when everyone does (no topology). */
  observersOf (id: string): string[] | undefined {
    return this.topology ? this.#rings!.observers(id, this.#onRings) : undefined
  }

  /** Whether we observe `id`: probe it in turn, and our accusation of it counts. */
  observes (id: string): boolean {
    return this.observersOf(id)?.includes(this.self) ?? true
  }

  /** Our subjects, and the dead members we would observe if they were alive; undefined when we observe everyone. Not to be changed. */
  walk (): Readonly<Walk> | undefined {
    return this.topology ? this.#ownWalk().walk : undefined
  }

  /** The peers we talk to for detection: our subjects and our observers; undefined when we talk to everyone. Not to be changed. */
  peers (): readonly string[] | undefined {
    return this.topology ? this.#ownWalk().peers : undefined
  }

  /** Our walk and detection peers, walked again only when the rings or who is dead changed since. */
  #ownWalk (): { walk: Walk, peers: string[] } {
    const rings = this.#rings!
    const w = this.#walked
    if (w != null && w.rings === rings.version && w.liveness === this.#liveness) return w
    const walk = rings.walk(this.self, this.#onRings)
    Object.freeze(walk.subjects)
    Object.freeze(walk.passed)
    const peers = Object.freeze([...new Set([...walk.subjects, ...rings.observers(this.self, this.#onRings)])]) as string[]
    this.#walked = { rings: rings.version, liveness: this.#liveness, walk: Object.freeze(walk), peers }
    return this.#walked
  }

  /** Whose accusations of `m` count: those that count at all and, with the topology, observe `m`. */
  counter (m: Member): (accuser: string) => boolean {
    const observers = this.observersOf(m.id)
    if (observers == null) return this.counts
    const set = new Set(observers)
    return a => set.has(a) && this.counts(a)
  }

  /** Members able to observe `m`: ourselves and the others we believe alive (with the topology: its observers among them). */
  observers (m: Member): number {
    const observers = this.observersOf(m.id)
    if (observers != null) return observers.filter(this.counts).length
    return 1 + this.#alive - (m.status === 'alive' ? 1 : 0)
  }

  /** The members shown suspect or dead, in the order they stopped being alive. */
  notAlive (): IterableIterator<string> {
    return this.#notAlive.values()
  }

  /** Sets `m`'s status, keeping the counts and the set of members not alive; the rules that decide it are SwimMembers'. */
  protected setStatus (m: Member, status: MemberStatus, nowMs: number): void {
    const from = m.status
    if (from === 'alive') this.#alive--
    if (status === 'alive') this.#alive++
    if (status === 'alive') this.#notAlive.delete(m.id)
    else this.#notAlive.add(m.id)
    if (from === 'dead') this.#live++
    if (status === 'dead') this.#live--
    if ((from === 'dead') !== (status === 'dead')) this.#liveness++
    m.status = status
    m.changedAtMs = nowMs
  }
}
