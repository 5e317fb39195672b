/**
 * The failure detector's bookkeeping of probes in flight: its own probes
 * (direct phase, then through helpers, with the helpers' nacks) and the
 * ping-reqs it serves for others (a ping to the target, whose ack it passes
 * on, or a nack when it does not come). What a probe's outcome means is
 * decided in failure-detector.ts; here is only what is pending and when.
 */

/** Why a probe was sent: its turn in the round-robin, out of turn (a hint, a verification), or to tell a dead member. */
export type ProbeKind = 'round' | 'extra' | 'revival'

export interface Probe {
  seq: number
  target: string
  kind: ProbeKind
  directDeadlineMs: number
  endDeadlineMs: number
  indirect: boolean
  /** The ping could not even be sent (a refused dial): no newcomer's grace. */
  unsent?: boolean
  helpers: Set<string>
  /** Helpers that nacked, and whether their ping could not even be sent. */
  nacks: Map<string, boolean>
}

export class ProbeTable {
  readonly #bySeq = new Map<number, Probe>()
  readonly #byTarget = new Map<string, number>()
  /** When each member was last probed out of turn. */
  readonly #outOfTurn = new Map<string, number>()

  /** Whether `target` may be probed out of turn now (once per `intervalMs`); if so, recorded. */
  outOfTurnAllowed (target: string, nowMs: number, intervalMs: number): boolean {
    const last = this.#outOfTurn.get(target)
    if (last != null && nowMs - last < intervalMs) return false
    if (this.#outOfTurn.size > 4096) for (const [t, at] of this.#outOfTurn) if (nowMs - at >= intervalMs) this.#outOfTurn.delete(t)
    this.#outOfTurn.set(target, nowMs)
    return true
  }

  start (seq: number, target: string, kind: ProbeKind, directDeadlineMs: number): Probe {
    const p: Probe = { seq, target, kind, directDeadlineMs, endDeadlineMs: Infinity, indirect: false, helpers: new Set(), nacks: new Map() }
    this.#bySeq.set(seq, p)
    this.#byTarget.set(target, seq)
    return p
  }

  get (seq: number): Probe | undefined {
    return this.#bySeq.get(seq)
  }

  /** The probe of `target` in flight, if any. */
  of (target: string): Probe | undefined {
    const seq = this.#byTarget.get(target)
    return seq == null ? undefined : this.#bySeq.get(seq)
  }

  /** Whether a probe of `target` is in flight. */
  probing (target: string): boolean {
    return this.#byTarget.has(target)
  }

  /** Ends the probe of `target` in flight, if any (the member is forgotten). */
  endFor (target: string): void {
    const seq = this.#byTarget.get(target)
    const p = seq == null ? undefined : this.#bySeq.get(seq)
    if (p != null) this.end(p)
  }

  end (p: Probe): void {
    this.#bySeq.delete(p.seq)
    if (this.#byTarget.get(p.target) === p.seq) this.#byTarget.delete(p.target)
  }

  /** Every probe in flight, as a list (ending one while walking it is safe). */
  all (): Probe[] {
    return [...this.#bySeq.values()]
  }

  /**
   * Records a helper's nack; whether the probe is decided: every helper
   * asked has nacked for want of even sending its ping, or one has and our
   * own ping could not be sent either (`unsent`) — two peers refused a
   * connection by the target: nothing listens there any more. A helper
   * slowed by a busy host is not waited for then (its nack would come after
   * its own timeout, stretched by the target's round trip and the host).
   */
  nack (p: Probe, helper: string, unreachable: boolean): boolean {
    if (!p.indirect || !p.helpers.has(helper)) return false
    p.nacks.set(helper, unreachable)
    return this.refusedTwice(p) || this.allUnreachable(p)
  }

  /** Decided before every helper answered: our ping and a helper's could not be sent. */
  refusedTwice (p: Probe): boolean {
    if (p.unsent !== true) return false
    for (const unreachable of p.nacks.values()) if (unreachable) return true
    return false
  }

  allUnreachable (p: Probe): boolean {
    if (!p.indirect || p.helpers.size === 0 || p.nacks.size < p.helpers.size) return false
    for (const unreachable of p.nacks.values()) if (!unreachable) return false
    return true
  }

  nextDeadlineMs (): number {
    let at = Infinity
    for (const p of this.#bySeq.values()) at = Math.min(at, p.indirect ? p.endDeadlineMs : p.directDeadlineMs)
    return at
  }
}

/** A ping-req we serve: our ping to `target`, whose ack we pass on to `requester`. */
export interface Relay {
  requester: string
  requesterSeq: number
  target: string
  /** When we nack if no ack came. */
  deadlineMs: number
  /** Until when a late ack is still passed on: the asker waits that long. */
  expireMs: number
  nacked: boolean
}

/** Ping-reqs served at once; beyond, a request is nacked at once (a flood from a hostile peer costs nothing). */
export const MAX_RELAYS = 1024

export class RelayTable {
  readonly #bySeq = new Map<number, Relay>()

  get size (): number {
    return this.#bySeq.size
  }

  /** A ping-req we take on: our ping `seq` to `target`, nacked after `timeoutMs`, a late ack passed on until twice that. */
  add (seq: number, requester: string, requesterSeq: number, target: string, nowMs: number, timeoutMs: number): void {
    this.#bySeq.set(seq, { requester, requesterSeq, target, deadlineMs: nowMs + timeoutMs, expireMs: nowMs + 2 * timeoutMs, nacked: false })
  }

  /** The relay our ping `seq` to `target` belongs to, taken out (its ack came, or the ping could not be sent). */
  take (seq: number, target: string): Relay | undefined {
    const r = this.#bySeq.get(seq)
    if (r == null || r.target !== target) return undefined
    this.#bySeq.delete(seq)
    return r
  }

  /** The relays whose time to nack has come (marked nacked), and those past passing a late ack on (dropped). */
  due (nowMs: number): Relay[] {
    const out: Relay[] = []
    for (const [seq, r] of this.#bySeq) {
      if (nowMs >= r.expireMs) this.#bySeq.delete(seq)
      else if (!r.nacked && nowMs >= r.deadlineMs) {
        r.nacked = true
        out.push(r)
      }
    }
    return out
  }

  clear (): void {
    this.#bySeq.clear()
  }

  nextDeadlineMs (): number {
    let at = Infinity
    for (const r of this.#bySeq.values()) at = Math.min(at, r.nacked ? r.expireMs : r.deadlineMs)
    return at
  }
}
