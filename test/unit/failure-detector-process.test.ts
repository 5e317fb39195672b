/**
 * The kernel's word on a co-hosted peer's process (core/failure-detector.ts
 * `processState`, fed by agent/process-watch.ts): a subject shown stopped or
 * gone is probed at once on the plain probe timeout — not the one stretched
 * by the host's slowdown, local health or its measured round trips — and its
 * silence accuses it without helpers; the quorum and the suspicion timeout
 * still decide its death, and an answer still clears it.
 */
import { describe, expect, it } from 'vitest'
import { type DetectorConfig, DETECTOR_PROFILES } from '../../src/core/detector-config.ts'
import { type DetectorStep, FailureDetector } from '../../src/core/failure-detector.ts'
import { PROTOCOL_VERSION } from '../../src/core/messages.ts'
import { MonitorRings } from '../../src/core/monitor-rings.ts'
import { seededRng } from '../../src/core/rng.ts'
import { suspicionTimeoutMs } from '../../src/core/suspicion.ts'
import type { SwimMessage, SwimUpdate } from '../../src/core/swim-messages.ts'

const CONFIG: DetectorConfig = { ...DETECTOR_PROFILES.local, probeIntervalMs: 1000, probeTimeoutMs: 200, observers: null, hostProbesPerSecond: null }
const PEERS = ['a', 'b', 'c', 'd', 'e']

/** A detector on a slow host (slowdown 4) and sure of nothing (health at its worst), as on a saturated machine. */
function slowDetector (): FailureDetector {
  const d = new FailureDetector({ self: 'me', run: 1, config: CONFIG, rng: seededRng(3), nowMs: 0, joinGraceMs: 0 })
  for (const p of PEERS) d.add(p, 1, 0)
  d.hostSlowdown(4)
  return d
}

const pings = (s: DetectorStep): Array<{ to: string, seq: number }> =>
  s.send.filter(o => o.message.type === 'ping').map(o => ({ to: o.to, seq: (o.message as { seq: number }).seq }))
const ofType = (s: DetectorStep, type: SwimMessage['type']): string[] => s.send.filter(o => o.message.type === type).map(o => o.to)
const ack = (seq: number): SwimMessage => ({ v: PROTOCOL_VERSION, type: 'ack', seq, run: 1, inc: 0, updates: [] })

describe('FailureDetector: a co-hosted peer the kernel shows stopped', () => {
  it('is probed at once on the plain timeout and accused at its end without helpers, where a running peer is waited for 4 × 8 times longer', () => {
    const d = slowDetector()
    expect(d.health).toBe(CONFIG.awarenessMax - 1)
    const step = d.processState('c', false, 100)
    expect(pings(step).map(p => p.to)).toEqual(['c'])
    expect(step.wakeAtMs).toBe(100 + CONFIG.probeTimeoutMs)
    const end = d.tick(100 + CONFIG.probeTimeoutMs)
    expect(ofType(end, 'ping-req')).toEqual([])
    expect(ofType(end, 'gossip')).toContain('c')
    expect(d.status('c')).toBe('suspect')
    expect(d.stats.failedProbes).toBe(1)
    // A running peer, probed in turn by a detector in the same state, is waited for as the host and its health say.
    const other = slowDetector().tick(100_000)
    expect(pings(other)).toHaveLength(1)
    expect(other.wakeAtMs).toBe(100_000 + 4 * CONFIG.awarenessMax * CONFIG.probeTimeoutMs)
  })

  it('is not declared dead on its lone accuser: the quorum still decides', () => {
    const d = slowDetector()
    d.processState('c', false, 100)
    d.tick(100 + CONFIG.probeTimeoutMs)
    // Long past the longest suspicion timeout, probes of others answered meanwhile.
    for (let t = 1_000; t < 60_000; t += 500) for (const p of pings(d.tick(t))) if (p.to !== 'c') d.receive(p.to, ack(p.seq), t)
    expect(d.status('c')).toBe('suspect')
    expect(d.stats.deaths).toBe(0)
  })

  it('cuts the deadline of a probe already in flight to the plain timeout', () => {
    const d = slowDetector()
    const first = d.tick(5_000)
    const [p] = pings(first)
    expect(first.wakeAtMs).toBe(5_000 + 4 * CONFIG.awarenessMax * CONFIG.probeTimeoutMs)
    const step = d.processState(p.to, false, 5_050)
    expect(pings(step)).toEqual([])
    expect(step.wakeAtMs).toBe(5_050 + CONFIG.probeTimeoutMs)
    d.tick(5_050 + CONFIG.probeTimeoutMs)
    expect(d.status(p.to)).toBe('suspect')
  })

  it('is not accused when it answers in time (it resumed), and once shown running again is waited for as before', () => {
    const d = slowDetector()
    const [p] = pings(d.processState('c', false, 100))
    d.receive('c', ack(p.seq), 150)
    d.tick(100 + CONFIG.probeTimeoutMs)
    expect(d.status('c')).toBe('alive')
    expect(d.stats.failedProbes).toBe(0)
    // Running again: told once, nothing sent for it; its next probe waits the stretched time.
    expect(d.processState('c', true, 200).send).toEqual([])
    expect(d.processState('c', true, 210).send).toEqual([])
    let t = 1_000
    for (; t < 100_000; t += 100) {
      const s = d.tick(t)
      const q = pings(s).find(x => x.to === 'c')
      if (q != null) {
        expect(s.wakeAtMs).toBe(t + 4 * CONFIG.awarenessMax * CONFIG.probeTimeoutMs)
        break
      }
      for (const x of pings(s)) d.receive(x.to, ack(x.seq), t)
    }
    expect(t).toBeLessThan(100_000)
  })

  it('changes nothing for a member we do not know or hold dead, and a repeated report sends nothing', () => {
    const d = slowDetector()
    expect(d.processState('zz', false, 100).send).toEqual([])
    expect(pings(d.processState('c', false, 100))).toHaveLength(1)
    expect(d.processState('c', false, 120).send).toEqual([])
  })

  it('watches every member without the rings, and only its subjects (and the dead it would observe) with them', () => {
    const d = slowDetector()
    expect(d.watched().sort()).toEqual(PEERS)
    const ring = new FailureDetector({ self: 'me', run: 1, config: { ...CONFIG, observers: 2 }, rng: seededRng(3), nowMs: 0, joinGraceMs: 0 })
    const many = Array.from({ length: 30 }, (_, i) => `p${i}`)
    for (const p of many) ring.add(p, 1, 0)
    const watched = ring.watched()
    expect(watched.length).toBeGreaterThan(0)
    expect(watched.length).toBeLessThan(10)
    for (const w of watched) expect(many).toContain(w)
  })

  it('with the rings, tells its other observers of our accusation at once, so that their quorum forms without waiting for a push to reach them', () => {
    const config: DetectorConfig = { ...CONFIG, observers: 4 }
    const d = new FailureDetector({ self: 'me', run: 1, config, rng: seededRng(5), nowMs: 0, joinGraceMs: 0, startHealth: 0 })
    for (let i = 0; i < 40; i++) d.add(`p${i}`, 1, 0)
    const [target] = d.watched()
    d.processState(target, false, 100)
    const end = d.tick(100 + CONFIG.probeTimeoutMs)
    const told = end.send.filter(o => o.to !== target && o.message.type === 'gossip' &&
      o.message.updates.some(u => u.peer === target && u.status === 'suspect' && u.accusers?.includes('me') === true)).map(o => o.to)
    // Its observers, from the same rings: every other one is told (the urgent push may reach a few more).
    const ids = ['me', ...Array.from({ length: 40 }, (_, i) => `p${i}`)]
    const observers = new MonitorRings(4, ids).observers(target, () => true).filter(o => o !== 'me')
    expect(observers.length).toBeGreaterThanOrEqual(2)
    for (const o of observers) expect(told).toContain(o)
  })

  it('lasts as suspect one probe interval once the quorum accuses it, not the suspicion timeout meant for a live member to refute', () => {
    const gossip = (updates: SwimUpdate[]): SwimMessage => ({ v: PROTOCOL_VERSION, type: 'gossip', run: 1, inc: 0, updates })
    const accused = (stoppedToTheEnd: boolean): FailureDetector => {
      const d = slowDetector()
      d.processState('c', false, 100)
      d.tick(100 + CONFIG.probeTimeoutMs)
      expect(d.status('c')).toBe('suspect')
      d.receive('a', gossip([{ peer: 'c', run: 1, inc: 0, status: 'suspect', accusers: ['a', 'b'] }]), 400)
      if (!stoppedToTheEnd) d.processState('c', true, 450)
      d.tick(100 + CONFIG.probeTimeoutMs + CONFIG.probeIntervalMs)
      return d
    }
    expect(accused(true).status('c')).toBe('dead')
    // Shown running again before then: Lifeguard's timeout, 3 s at this size, applies.
    const resumed = accused(false)
    expect(resumed.status('c')).toBe('suspect')
    const min = suspicionTimeoutMs(CONFIG.suspicionMult, PEERS.length, CONFIG.probeIntervalMs)
    expect(min).toBeGreaterThan(2 * CONFIG.probeIntervalMs)
    resumed.tick(100 + CONFIG.probeTimeoutMs + min)
    expect(resumed.status('c')).toBe('dead')
  })
})
