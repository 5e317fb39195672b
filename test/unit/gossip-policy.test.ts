/**
 * The gossip policy as a pure function of what it is fed and the time passed
 * in: coalescing, the threshold, the budget shared by need, and the refresh
 * with its jitter drawn from a seeded Rng. No timers: each case calls `tick`
 * at the times the policy asks for, as the agent's one timer would.
 */
import { describe, expect, it } from 'vitest'
import { type GossipConfig, GossipPolicy, type LoadSample } from '../../src/core/gossip-policy.ts'
import { PROFILE_GOSSIP } from '../../src/core/profiles.ts'
import { seededRng } from '../../src/core/rng.ts'

const config: GossipConfig = { minPublishIntervalMs: 100, refreshIntervalMs: 5_000, changeThreshold: 0.05, budgetPerSecond: 8, burst: 2, meshDegree: 3 }
const load = (cpu = 0, memMiB = 0): LoadSample => ({ cpu, memMiB, capCpu: 8, capMemMiB: 16_384 })

/** Drives a policy as its runtime would: publishes when `tick` says so, until `untilMs`; returns the publish times. */
function drive (p: GossipPolicy, fromMs: number, untilMs: number, peers: number, feed: (nowMs: number) => void = () => {}): number[] {
  const out: number[] = []
  let now = fromMs
  while (true) {
    const at = p.nextWakeAt
    if (at == null || at > untilMs) break
    now = Math.max(now, at)
    feed(now)
    if (p.tick(now, peers)) {
      out.push(now)
      p.published(now, load(), peers)
    }
  }
  return out
}

function started (peers: number, cfg = config, seed = 1): GossipPolicy {
  const p = new GossipPolicy(cfg, seededRng(seed), 0)
  p.published(0, load(), peers)
  return p
}

describe('GossipPolicy', () => {
  it.each([
    { name: 'a change of the VM set is published at once', change: 'vms' as const, sample: load(), at: 1_000 },
    { name: 'a change of free capacity past the threshold is published', change: 'load' as const, sample: load(1), at: 1_000 },
    { name: 'a VM\'s state alone, with tokens to spare, is published', change: 'state' as const, sample: load(), at: 1_000 }
  ])('$name', ({ change, sample, at }) => {
    const p = started(5)
    p.changed(change, at, sample, 5)
    expect(p.nextWakeAt).toBe(at)
    expect(p.tick(at, 5)).toBe(true)
  })

  it('waits for the refresh with a drift under the threshold', () => {
    const p = started(5)
    p.changed('load', 1_000, load(0, 500), 5)
    // 500 MiB of 16 GiB is 3 %: nothing but the refresh is due.
    expect(p.nextWakeAt).toBeGreaterThan(3_000)
  })

  it('coalesces a burst of changes into one publish, at most one per minPublishIntervalMs', () => {
    const p = started(5)
    for (let t = 1_000; t < 1_050; t += 1) p.changed('vms', t, load(), 5)
    const times = drive(p, 1_000, 1_100, 5)
    expect(times).toEqual([1_000])
    p.changed('vms', 1_010, load(), 5)
    expect(p.nextWakeAt).toBe(1_100)
  })

  it('keeps within its fair share once its peers use the budget, and takes three quarters of what is left when they are quiet', () => {
    const busy = started(51)
    expect(busy.rate(1_000, 51)).toBe(6)
    for (let i = 0; i < 32; i++) busy.heard(1_000)
    // Peers publish 8 a second: the whole budget, so the fair share of what refreshes leave, 0.8 × 8 / 50.
    expect(busy.rate(1_000, 51)).toBeCloseTo(0.128)
    // A change every 100 ms for a minute, peers publishing 8 a second all along.
    const times: number[] = []
    for (let now = 1_000; now < 61_000; now += 100) {
      busy.heard(now, 1)
      busy.changed('vms', now, load(), 51)
      const at = busy.nextWakeAt
      if (at != null && at <= now && busy.tick(now, 51)) {
        times.push(now)
        busy.published(now, load(), 51)
      }
    }
    // 60 s at 0.128 a second (the bucket starts empty).
    expect(times.length).toBeGreaterThanOrEqual(6)
    expect(times.length).toBeLessThanOrEqual(9)
    // Alone in a quiet cluster, the same changes go out several times a second.
    const quiet = started(51)
    let n = 0
    for (let now = 1_000; now < 11_000; now += 100) {
      quiet.changed('vms', now, load(), 51)
      const at = quiet.nextWakeAt
      if (at != null && at <= now && quiet.tick(now, 51)) {
        n++
        quiet.published(now, load(), 51)
      }
    }
    expect(n / 10).toBeGreaterThanOrEqual(5)
  })

  it.each([
    { peers: 1, want: 5_000 },
    { peers: 21, want: 12_500 },
    { peers: 51, want: 31_250 }
  ])('refreshes every $want ms with $peers peers: all refreshes together take a fifth of the budget', ({ peers, want }) => {
    expect(started(peers).refreshIntervalMs(peers)).toBe(want)
  })

  it.each([21, 51, 100])('in the local profile, refreshes take a twentieth of the host\'s budget, not a fifth (%i peers; the view sync repairs there)', (peers) => {
    const local = PROFILE_GOSSIP.local
    expect(local.refreshShare).toBe(0.05)
    const perAgent = Math.min(local.budgetPerSecond, local.hostBudgetPerSecond! / peers)
    expect(started(peers, local).refreshIntervalMs(peers)).toBeCloseTo(1000 * (peers - 1) / (perAgent * 0.05))
    // Four times the interval of the default share, and so a quarter of the messages.
    expect(started(peers, local).refreshIntervalMs(peers)).toBeCloseTo(4 * started(peers, { ...local, refreshShare: undefined }).refreshIntervalMs(peers))
  })

  it('draws each refresh between 1/2 and 3/2 of the interval from its Rng: the same seed, the same times', () => {
    const times = (seed: number): number[] => drive(started(3, config, seed), 0, 60_000, 3)
    expect(times(7)).toEqual(times(7))
    expect(times(7)).not.toEqual(times(8))
    const gaps = times(7).map((t, i, all) => t - (i === 0 ? 0 : all[i - 1]))
    for (const g of gaps) {
      expect(g).toBeGreaterThanOrEqual(2_500)
      expect(g).toBeLessThan(7_500)
    }
  })

  it('spreads the first refreshes of agents that published together over a whole interval: no denser than the steady state', () => {
    // 400 agents (seeds 1-400) published at 0 with 5 peers: a 5 s interval. Their first refreshes, in ten bins of 0.5 s from 2.5 s.
    const bins = new Array(10).fill(0)
    for (let seed = 1; seed <= 400; seed++) {
      const first = drive(started(5, config, seed), 0, 10_000, 5)[0]
      expect(first).toBeGreaterThanOrEqual(2_500)
      expect(first).toBeLessThan(7_500)
      bins[Math.floor((first - 2_500) / 500)]++
    }
    // The steady state: 400 refreshes every 5 s, 40 per 0.5 s bin. Between 3/4 and 5/4, the outer bins would be empty and the inner ones hold 80.
    for (const n of bins) {
      expect(n).toBeGreaterThanOrEqual(20)
      expect(n).toBeLessThanOrEqual(60)
    }
  })

  it('refreshes after the interval of the cluster\'s size when the refresh falls due, not at the last publish', () => {
    // Published with 5 peers (a 5 s interval); by the time that falls due, 51 are known: 31.25 s, with the same draw.
    const grown = drive(started(5, config, 7), 0, 120_000, 51)
    const stayed = drive(started(5, config, 7), 0, 10_000, 5)
    expect(stayed.length).toBeGreaterThan(0)
    const jitter = stayed[0] / 5_000
    expect(grown[0]).toBe(Math.ceil(31_250 * jitter))
    for (const [i, t] of grown.entries()) expect(t - (i === 0 ? 0 : grown[i - 1])).toBeGreaterThanOrEqual(0.5 * 31_250)
  })

  it('keeps one token for the next change of the VM set: a state change alone waits when only one is left', () => {
    const p = started(51)
    // Quiet for 20 s: the fair share, 8 / 50 a second, banks the bucket's 2 tokens. Then the peers use the whole budget.
    for (let i = 0; i < 40; i++) p.heard(20_000)
    p.changed('vms', 20_010, load(), 51)
    expect(drive(p, 20_010, 20_200, 51)).toEqual([20_010])
    // One token left after that publish.
    p.changed('state', 20_300, load(), 51)
    expect(p.nextWakeAt).toBeGreaterThan(25_000)
    p.changed('vms', 20_400, load(), 51)
    expect(p.nextWakeAt).toBe(20_400)
  })

  it('banks only its fair share: agents idle together and then all busy at once send the same per second whatever their number', () => {
    /** N agents idle for 30 s, then a change at every agent every 100 ms for 20 s; what each receives a second. */
    const receivedPerS = (peers: number): number => {
      const agents = Array.from({ length: peers }, (_, i) => started(peers, { ...config, budgetPerSecond: 40 }, i + 1))
      let total = 0
      let lastStep = 0
      for (let now = 30_000; now < 50_000; now += 100) {
        let step = 0
        for (const p of agents) {
          // What the others sent in the last step reached every agent.
          if (lastStep > 0) p.heard(now, lastStep)
          p.changed('vms', now, load(), peers)
          const at = p.nextWakeAt
          if (at != null && at <= now && p.tick(now, peers)) {
            step++
            p.published(now, load(), peers)
          }
        }
        total += step
        lastStep = step
      }
      return total / 20
    }
    const small = receivedPerS(200)
    const large = receivedPerS(2_000)
    console.log(`received per agent per second: ${small.toFixed(1)} at 200 agents, ${large.toFixed(1)} at 2,000`)
    // The old bucket (full at start, refilled by the left share) sent 2 × N at once: 4,000 to every agent at 2,000.
    expect(large).toBeLessThan(1.5 * small)
    expect(large).toBeLessThan(3 * 40)
  })

  it('shares a host-wide budget among the agents of one host', () => {
    const p = started(50, { ...config, hostBudgetPerSecond: 160 })
    expect(p.budgetPerSecond(50)).toBeCloseTo(3.2)
    expect(p.budgetPerSecond(10)).toBe(8)
  })
})
