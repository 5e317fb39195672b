/**
 * The failure detector waits for a member's measured round trip
 * (core/rtt-estimate.ts): a member whose acks take 300 ms, past the 200 ms
 * probe timeout, is probed through helpers at first (ping-req: the step
 * before an accusation), and no longer once its round trip is known; with
 * `rttTimeoutMaxMult: 1` the timeout stays fixed and every probe of it goes
 * indirect. A member that stops answering is still accused, within the bound.
 */
import { describe, expect, it } from 'vitest'
import { type DetectorConfig, DETECTOR_PROFILES } from '../../src/core/detector-config.ts'
import { type DetectorStep, FailureDetector } from '../../src/core/failure-detector.ts'
import { PROTOCOL_VERSION } from '../../src/core/messages.ts'
import { seededRng } from '../../src/core/rng.ts'
import { RttEstimates } from '../../src/core/rtt-estimate.ts'
import type { SwimMessage } from '../../src/core/swim-messages.ts'

const CONFIG: DetectorConfig = { ...DETECTOR_PROFILES.lan, probeIntervalMs: 1000, probeTimeoutMs: 200, suspicionMult: 3, gossipIntervalMs: 100 }

/**
 * Runs a detector that knows a, b and c for `periods` probe periods; `a`
 * answers its pings after `slowMs` (or never), the others after 10 ms, and
 * the helpers answer ping-reqs with nothing. Returns, for each probe of a,
 * whether it went indirect (those sent early enough for it to be known by
 * the end), and the detector. Helpers pass a's ack on when it
 * comes within their own 200 ms, and nack otherwise.
 */
function run (config: Partial<DetectorConfig>, slowMs: number | null, periods: number): { indirect: boolean[], d: FailureDetector } {
  const d = new FailureDetector({ self: 'me', run: 1, config: { ...CONFIG, ...config }, rng: seededRng(3), nowMs: 0, startHealth: 0, joinGraceMs: 0 })
  let wake = 0
  for (const p of ['a', 'b', 'c']) wake = d.add(p, 1, 0).wakeAtMs ?? 0
  const due: Array<{ at: number, from: string, message: SwimMessage }> = []
  const probesOfA = new Map<number, { indirect: boolean, atMs: number }>()
  const take = (step: DetectorStep, now: number): void => {
    wake = step.wakeAtMs ?? Infinity
    for (const { to, message } of step.send) {
      if (message.type === 'ping') {
        if (to === 'a') probesOfA.set(message.seq, { indirect: false, atMs: now })
        const after = to === 'a' ? slowMs : 10
        if (after != null) due.push({ at: now + after, from: to, message: { v: PROTOCOL_VERSION, type: 'ack', seq: message.seq, run: 1, inc: 0, updates: [] } as SwimMessage })
      } else if (message.type === 'ping-req' && message.target === 'a') {
        const probe = probesOfA.get(message.seq)
        if (probe != null) probe.indirect = true
        // The helper's own ping to a: passed on if a answers within the helper's 200 ms, else a nack then.
        const relayed = slowMs != null && slowMs < 200
        due.push({ at: now + (relayed ? 10 + slowMs : 200), from: to, message: { v: PROTOCOL_VERSION, type: relayed ? 'ack' : 'nack', seq: message.seq, ...(relayed ? { of: 'a' } : {}), run: 1, inc: 0, updates: [] } as SwimMessage })
      }
    }
  }
  const end = periods * CONFIG.probeIntervalMs
  let now = 0
  while (now < end) {
    due.sort((x, y) => x.at - y.at)
    const next = Math.min(wake, due[0]?.at ?? Infinity)
    if (next === Infinity) break
    now = next
    if (due.length > 0 && due[0].at <= wake) {
      const m = due.shift()!
      take(d.receive(m.from, m.message, now), now)
    } else take(d.tick(now), now)
  }
  return { indirect: [...probesOfA.values()].filter(p => p.atMs <= end - CONFIG.probeTimeoutMs).map(p => p.indirect), d }
}

describe('probe timeouts from measured round trips', () => {
  it('probes a slow member indirectly only until its round trip is known', () => {
    const { indirect, d } = run({}, 300, 30)
    expect(indirect.length).toBeGreaterThanOrEqual(8)
    expect(indirect[0]).toBe(true)
    expect(indirect.slice(2)).not.toContain(true)
    expect(d.stats.suspicions).toBe(0)
  })

  it('with the bound at 1 (off), every probe of the slow member goes indirect', () => {
    const { indirect } = run({ rttTimeoutMaxMult: 1 }, 300, 30)
    expect(indirect.length).toBeGreaterThanOrEqual(8)
    expect(indirect.every(x => x)).toBe(true)
  })

  it('still accuses a member that stops answering, and one slower than the bound', () => {
    expect(run({}, null, 12).d.status('a')).not.toBe('alive')
    // Acks after 5 s: past the bound (8 × 200 ms) and the indirect phase after it (2.5 × 1.6 s).
    expect(run({}, 5_000, 20).d.status('a')).not.toBe('alive')
  })
})

describe('RttEstimates', () => {
  it('follows RFC 6298: the first sample sets srtt and rttvar = r/2; later ones move them by 1/8 and 1/4; late acks count, strangers do not', () => {
    const e = new RttEstimates()
    expect(e.timeoutMs('a')).toBe(0)
    e.sent(1, 'a', 0)
    e.acked(1, 'a', 100)
    expect(e.timeoutMs('a')).toBe(100 + 4 * 50)
    e.sent(2, 'a', 1000)
    e.acked(2, 'b', 1500) // not the member pinged: ignored
    e.acked(2, 'a', 1300)
    // rttvar = 3/4·50 + 1/4·|100 − 300| = 87.5; srtt = 7/8·100 + 1/8·300 = 125
    expect(e.timeoutMs('a')).toBeCloseTo(125 + 4 * 87.5)
    e.acked(2, 'a', 5000) // the same ack twice: one sample
    expect(e.timeoutMs('a')).toBeCloseTo(125 + 4 * 87.5)
    e.forget('a')
    expect(e.timeoutMs('a')).toBe(0)
  })
})
