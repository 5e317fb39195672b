/**
 * Each member's round-trip time as the failure detector sees it, RFC 6298's
 * way (TCP's retransmission timer): a smoothed mean and a mean deviation of
 * the time from a ping to its direct ack, late acks included (a probe that
 * already failed still teaches how slow the member has become). A probe of a
 * member waits `srtt + 4 × rttvar` when that is longer than the configured
 * timeout, up to a bound: on a machine whose CPU is saturated every agent
 * answers late, and a fixed 150 ms would accuse healthy, slow peers.
 */

/** RFC 6298's gains: 1/8 for the mean, 1/4 for the deviation. */
const ALPHA = 1 / 8
const BETA = 1 / 4
/** Pings remembered for their late acks, and members estimated: beyond, the oldest go first. */
const MAX_SENT = 4096
const MAX_PEERS = 4096

interface Estimate { srtt: number, rttvar: number }

export class RttEstimates {
  readonly #peers = new Map<string, Estimate>()
  /** Our direct pings by seq: to whom, when. */
  readonly #sent = new Map<number, { to: string, atMs: number }>()

  /** A direct ping `seq` went to `to`. */
  sent (seq: number, to: string, nowMs: number): void {
    this.#sent.set(seq, { to, atMs: nowMs })
    if (this.#sent.size > MAX_SENT) this.#sent.delete(this.#sent.keys().next().value!)
  }

  /** `from`'s direct ack of our ping `seq` came: one sample. */
  acked (seq: number, from: string, nowMs: number): void {
    const s = this.#sent.get(seq)
    if (s == null || s.to !== from) return
    this.#sent.delete(seq)
    const r = Math.max(0, nowMs - s.atMs)
    const e = this.#peers.get(from)
    if (e == null) {
      this.#peers.set(from, { srtt: r, rttvar: r / 2 })
      if (this.#peers.size > MAX_PEERS) this.#peers.delete(this.#peers.keys().next().value!)
      return
    }
    e.rttvar = (1 - BETA) * e.rttvar + BETA * Math.abs(e.srtt - r)
    e.srtt = (1 - ALPHA) * e.srtt + ALPHA * r
  }

  /** How long to wait for `peer`'s ack: `srtt + 4 × rttvar`, or 0 before any sample. */
  timeoutMs (peer: string): number {
    const e = this.#peers.get(peer)
    return e == null ? 0 : e.srtt + 4 * e.rttvar
  }

  /** How long to wait for `peer`: `baseMs`, or its measured `timeoutMs` when longer, up to `maxMs`. */
  waitMs (peer: string, baseMs: number, maxMs: number): number {
    return Math.max(baseMs, Math.min(this.timeoutMs(peer), maxMs))
  }

  forget (peer: string): void {
    this.#peers.delete(peer)
  }
}
