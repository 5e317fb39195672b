/**
 * How often the detector probes (core/probe-timing.ts): the probe interval,
 * stretched in the `local` profile to the host's share when the agents that
 * share the host would together probe more than `hostProbesPerSecond` — so
 * that an idle agent's cost falls as agents are added — and by local health.
 */
import { describe, expect, it } from 'vitest'
import { DETECTOR_PROFILES } from '../../src/core/detector-config.ts'
import { processCheckEveryMs, ProbeTiming, syncEveryMs } from '../../src/core/probe-timing.ts'
import { SwimWorld } from '../../src/sim/swim-world.ts'
import { FailureDetector } from '../../src/core/failure-detector.ts'
import { PROTOCOL_VERSION } from '../../src/core/messages.ts'
import { seededRng } from '../../src/core/rng.ts'

const LOCAL = DETECTOR_PROFILES.local

describe('how often the process watch looks', () => {
  it('every processCheckMs, doubled while shorter than the host\'s probe share; never stretched for lan and wan; null when off', () => {
    const base = LOCAL.processCheckMs!
    const budget = LOCAL.hostProbesPerSecond!
    for (let live = 1; live <= 400; live++) {
      const every = processCheckEveryMs(LOCAL, live)!
      const share = 1000 * live / budget
      // A power-of-two multiple of the base, the smallest that is not shorter than the share.
      expect(Number.isInteger(Math.log2(every / base))).toBe(true)
      expect(every).toBeGreaterThanOrEqual(share)
      if (every > base) expect(every / 2).toBeLessThan(share)
    }
    // The figures the config's comment gives (100 probes a second, 250 ms): 250 ms up to 25 agents, 500 up to 50, 1 s up to 100.
    expect([1, 25, 26, 50, 51, 100, 101].map(n => processCheckEveryMs(LOCAL, n))).toEqual([250, 250, 500, 500, 1000, 1000, 2000])
    for (const live of [1, 100, 10_000]) {
      expect(processCheckEveryMs(DETECTOR_PROFILES.lan, live)).toBe(DETECTOR_PROFILES.lan.processCheckMs)
      expect(processCheckEveryMs(DETECTOR_PROFILES.wan, live)).toBe(DETECTOR_PROFILES.wan.processCheckMs)
    }
    expect(processCheckEveryMs({ ...LOCAL, processCheckMs: null }, 100)).toBeNull()
  })
})

describe('how often the detector syncs', () => {
  it('one with nothing to tell: every syncIntervalMs, stretched as the probe interval by the host\'s share of probes; never for lan and wan', () => {
    // The figures the config's comment gives (local: 2 s, 200 ms probes, 100 a second for the host): 2 s up to 20 agents, 5 s at 50, 10 s at 100.
    expect([1, 20, 21, 50, 100].map(n => syncEveryMs(LOCAL, n))).toEqual([2_000, 2_000, 2_100, 5_000, 10_000])
    const local = new ProbeTiming(LOCAL, 0)
    for (const live of [1, 20, 50, 100, 400]) expect(syncEveryMs(LOCAL, live) / local.intervalMs(live)).toBeCloseTo(LOCAL.syncIntervalMs / LOCAL.probeIntervalMs)
    for (const live of [1, 100, 10_000]) {
      expect(syncEveryMs(DETECTOR_PROFILES.lan, live)).toBe(DETECTOR_PROFILES.lan.syncIntervalMs)
      expect(syncEveryMs(DETECTOR_PROFILES.wan, live)).toBe(DETECTOR_PROFILES.wan.syncIntervalMs)
    }
  })

  it('a detector of 100 local members sends a sync with nothing to tell every 10 s, one that tells a death every 2 s', () => {
    const members = Array.from({ length: 99 }, (_, i) => `p${String(i).padStart(2, '0')}`)
    // All-to-all, so that three accusers make a quorum whoever the dead member is.
    const d = new FailureDetector({ self: 'me', run: 1, config: { ...LOCAL, observers: null }, rng: seededRng(3), nowMs: 0, startHealth: 0, joinGraceMs: 0 })
    for (const p of members) d.add(p, 1, 0)
    const run = (fromMs: number, toMs: number): number[] => {
      const at: number[] = []
      for (let now = fromMs; now <= toMs; now += 50) {
        for (const o of d.tick(now).send) {
          if (o.message.type === 'sync') at.push(now)
          // Every probe is answered: nobody is suspected, so the detector's pace is its round probes'.
          if (o.message.type === 'ping') d.receive(o.to, { v: PROTOCOL_VERSION, type: 'ack', seq: o.message.seq, run: 1, inc: 0, updates: [] }, now)
        }
      }
      return at
    }
    const quiet = run(0, 60_000)
    expect(quiet.length).toBeGreaterThanOrEqual(5)
    expect(quiet.length).toBeLessThanOrEqual(7)
    for (let i = 1; i < quiet.length; i++) expect(quiet[i] - quiet[i - 1]).toBeGreaterThanOrEqual(10_000)
    d.receive('p01', { v: PROTOCOL_VERSION, type: 'gossip', run: 1, inc: 0, updates: [{ peer: 'p98', run: 1, inc: 0, status: 'dead', accusers: ['p00', 'p01', 'p02'] }] }, 60_010)
    expect(d.status('p98')).toBe('dead')
    const telling = run(60_050, 80_000)
    expect(telling.length).toBeGreaterThanOrEqual(6)
    for (let i = 1; i < telling.length; i++) expect(telling[i] - telling[i - 1]).toBeLessThan(10_000)
  })
})

describe('the probe interval', () => {
  it('is the profile\'s up to hostProbesPerSecond probes for the host, the host\'s share beyond; never for lan and wan', () => {
    const local = new ProbeTiming(LOCAL, 0)
    // Up to this many agents the host's budget allows the profile's interval (20 with 100 probes a second and 200 ms).
    const knee = LOCAL.hostProbesPerSecond! * LOCAL.probeIntervalMs / 1000
    expect(local.intervalMs(10)).toBe(LOCAL.probeIntervalMs)
    expect(local.intervalMs(knee)).toBe(LOCAL.probeIntervalMs)
    expect(local.intervalMs(2 * knee)).toBe(2 * LOCAL.probeIntervalMs)
    expect(local.intervalMs(100)).toBe(1000 * 100 / LOCAL.hostProbesPerSecond!)
    expect(local.intervalMs(200)).toBe(2 * local.intervalMs(100))
    const lan = new ProbeTiming(DETECTOR_PROFILES.lan, 0)
    expect(lan.intervalMs(1_000)).toBe(DETECTOR_PROFILES.lan.probeIntervalMs)
    // Local health stretches the share too.
    const slow = new ProbeTiming(LOCAL, 1)
    expect(slow.intervalMs(100)).toBe(2 * local.intervalMs(100))
  })

  it('keeps the probes of a simulated one-host cluster within the host\'s budget as it grows from 40 to 100 agents', () => {
    const perSecond: number[] = []
    for (const nodes of [40, 100]) {
      const w = new SwimWorld({ nodes, seed: 1, config: LOCAL, link: { baseMs: 1, jitterMs: 2, loss: 0 } })
      w.run(10_000)
      const before = Array.from({ length: nodes }, (_, i) => w.detector(i).stats.probes)
      w.run(w.now + 20_000)
      const probes = Array.from({ length: nodes }, (_, i) => w.detector(i).stats.probes - before[i]).reduce((a, b) => a + b, 0)
      perSecond.push(probes / 20)
    }
    // 40 agents: the host's budget shared (100 a second: 2.5 each), or 5 each at 200 ms if it allows; 100: 1 each.
    expect(perSecond[0]).toBeGreaterThan(0.8 * Math.min(40 * 1000 / LOCAL.probeIntervalMs, LOCAL.hostProbesPerSecond!))
    expect(perSecond[1]).toBeLessThan(1.1 * LOCAL.hostProbesPerSecond!)
    expect(perSecond[1] / 100).toBeLessThan(0.6 * perSecond[0] / 40)
  })
})

describe('the host\'s slowdown', () => {
  it('stretches timeouts and the interval by how much slower than its CPU needs the node runs, between 1 and hostLoadMaxMult; not at all for lan', () => {
    const t = new ProbeTiming(LOCAL, 0)
    const timeout = t.timeoutMs('p')
    const interval = t.intervalMs(10)
    t.hostSlowdown(1)
    expect(t.hostFactor).toBe(1)
    expect(t.timeoutMs('p')).toBe(timeout)
    t.hostSlowdown(3)
    expect(t.hostFactor).toBe(3)
    expect(t.timeoutMs('p')).toBe(3 * timeout)
    expect(t.intervalMs(10)).toBe(3 * interval)
    t.hostSlowdown(30)
    expect(t.hostFactor).toBe(LOCAL.hostLoadMaxMult)
    t.hostSlowdown(Number.NaN)
    expect(t.hostFactor).toBe(LOCAL.hostLoadMaxMult)
    t.hostSlowdown(0.5)
    expect(t.hostFactor).toBe(1)
    const lan = new ProbeTiming(DETECTOR_PROFILES.lan, 0)
    const lanTimeout = lan.timeoutMs('p')
    lan.hostSlowdown(10)
    expect(lan.hostFactor).toBe(1)
    expect(lan.timeoutMs('p')).toBe(lanTimeout)
  })

  it('a measured round trip is waited for up to hostFactor times its bound', () => {
    const t = new ProbeTiming(LOCAL, 0)
    for (let seq = 1; seq <= 20; seq++) {
      t.rtt.sent(seq, 'slow', seq * 10_000)
      t.rtt.acked(seq, 'slow', seq * 10_000 + 5_000)
    }
    const capped = t.timeoutMs('slow')
    expect(capped).toBe(LOCAL.rttTimeoutMaxMult * LOCAL.probeTimeoutMs)
    t.hostSlowdown(2)
    expect(t.timeoutMs('slow')).toBe(2 * capped)
  })
})
