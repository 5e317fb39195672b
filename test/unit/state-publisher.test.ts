import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { StatePublisher, UNHEARD_RETRIES, UNHEARD_RETRY_MS } from '../../src/agent/state-publisher.ts'
import type { GossipConfig } from '../../src/core/gossip-policy.ts'
import { RateWindow } from '../../src/core/rate-window.ts'
import { makeNode } from './fixtures.ts'

const config: GossipConfig = { minPublishIntervalMs: 100, refreshIntervalMs: 5_000, changeThreshold: 0.05, budgetPerSecond: 8, burst: 2, meshDegree: 3 }

/** `random` 0.5 is the middle of the refresh's spread: exactly the interval. */
function publisher (peers: number, cfg: GossipConfig = config, random = 0.5) {
  const published: number[] = []
  let seq = 0
  const p = new StatePublisher({
    config: cfg,
    build: () => makeNode({ tag: 'Me', seq: ++seq }),
    load: () => ({ cpu: 0, memMiB: 0, capCpu: 8, capMemMiB: 16384 }),
    peers: () => peers,
    publish: async () => { published.push(Date.now()) },
    onError: (err) => { throw err },
    clock: { now: () => Date.now() },
    rng: { next: () => random }
  })
  return { p, published }
}

describe('StatePublisher', () => {
  beforeEach(() => { vi.useFakeTimers({ now: 1_000_000 }) })
  afterEach(() => { vi.useRealTimers() })

  it.each([
    { peers: 1, want: 5_000 },
    { peers: 5, want: 5_000 },
    { peers: 21, want: 12_500 },
    { peers: 51, want: 31_250 }
  ])('refreshes every $want ms with $peers peers: all refreshes together take a fifth of the budget', ({ peers, want }) => {
    expect(publisher(peers).p.refreshIntervalMs()).toBe(want)
  })

  it.each([
    { peers: 5, want: 8 },
    { peers: 20, want: 8 },
    { peers: 50, want: 3.2 },
    { peers: 200, want: 0.8 }
  ])('with $peers agents sharing a host budget of 160 a second, each is willing to receive $want', ({ peers, want }) => {
    const { p } = publisher(peers, { ...config, hostBudgetPerSecond: 160 })
    expect(p.budgetPerSecond()).toBeCloseTo(want)
    expect(p.rate()).toBeCloseTo(want * 0.75)
    expect(p.refreshIntervalMs()).toBeCloseTo(Math.max(5_000, 1000 * (peers - 1) / (want / 5)))
  })

  it('takes three quarters of the budget left when its peers are quiet, its fair share when they use it all', () => {
    const { p } = publisher(51)
    expect(p.rate()).toBe(6)
    // Peers publishing 6 a second leave 2: this agent may take 1.5.
    for (let i = 0; i < 24; i++) p.heard()
    expect(p.rate()).toBeCloseTo(1.5)
    // Peers using the whole budget: the fair share, 8 / 50.
    for (let i = 0; i < 40; i++) p.heard()
    expect(p.rate()).toBeCloseTo(0.128)
    // Their messages age out of the window.
    vi.advanceTimersByTime(5_000)
    expect(p.rate()).toBe(6)
  })

  it('publishes a change at once, coalesces a burst of changes, and keeps within its rate', () => {
    const { p, published } = publisher(51)
    p.start()
    expect(published).toHaveLength(1)
    vi.advanceTimersByTime(1_000)
    for (let i = 0; i < 50; i++) p.changed('vms')
    vi.advanceTimersByTime(100)
    expect(published).toHaveLength(2)
    // Peers busy: the fair share of what refreshes leave, 0.128 a second.
    for (let i = 0; i < 40; i++) p.heard()
    for (let s = 0; s < 20; s++) {
      p.changed('vms')
      vi.advanceTimersByTime(500)
      if (s % 4 === 3) for (let i = 0; i < 16; i++) p.heard()
    }
    const changes = published.length - 2
    expect(changes).toBeGreaterThanOrEqual(1)
    expect(changes).toBeLessThanOrEqual(1 + Math.ceil(10 * 0.128) + 1)
    p.stop()
  })

  it('publishes a change of a VM\'s state alone only with a token to spare; otherwise it rides with the next publish', () => {
    const quiet = publisher(51)
    quiet.p.start()
    vi.advanceTimersByTime(1_000)
    quiet.p.changed('state')
    vi.advanceTimersByTime(100)
    expect(quiet.published).toHaveLength(2)
    quiet.p.stop()

    const { p, published } = publisher(51)
    p.start()
    // Quiet for 20 s: its fair share, 0.128 a second, banks the bucket's 2 tokens.
    vi.advanceTimersByTime(20_000)
    // Then its peers use the whole budget: nothing left to take, only the bank.
    for (let i = 0; i < 40; i++) p.heard()
    vi.advanceTimersByTime(200)
    p.changed('vms')
    vi.advanceTimersByTime(100)
    expect(published).toHaveLength(2)
    // One token left: kept for the next change of the VM set.
    p.changed('state')
    vi.advanceTimersByTime(1_000)
    expect(published).toHaveLength(2)
    p.changed('vms')
    vi.advanceTimersByTime(100)
    expect(published).toHaveLength(3)
    p.stop()
  })

  it('spreads the refreshes of agents started together over a whole interval', () => {
    const times = [0, 0.25, 0.5, 0.99].map(r => {
      vi.setSystemTime(1_000_000)
      const { p, published } = publisher(3, config, r)
      p.start()
      vi.advanceTimersByTime(8_000)
      p.stop()
      return published[1] - published[0]
    })
    expect(times).toEqual([2_500, 3_750, 5_000, 7_450])
  })

  it('refreshes only after a whole interval of silence', () => {
    const { p, published } = publisher(3)
    p.start()
    vi.advanceTimersByTime(3_000)
    p.changed('vms')
    vi.advanceTimersByTime(100)
    expect(published).toHaveLength(2)
    // The change counted as a refresh: the next one is due 5 s after it, not 5 s after the start.
    vi.advanceTimersByTime(4_800)
    expect(published).toHaveLength(2)
    vi.advanceTimersByTime(300)
    expect(published).toHaveLength(3)
    p.stop()
    vi.advanceTimersByTime(60_000)
    expect(published).toHaveLength(3)
  })
})

describe('RateWindow', () => {
  it('counts events per second over its window, and forgets older ones', () => {
    const w = new RateWindow(4_000)
    for (let t = 10_000; t < 14_000; t += 100) w.add(t)
    expect(w.perSecond(13_999)).toBeCloseTo(10)
    // Half the events fell out of the window, give or take a bucket (a tenth of it).
    expect(w.perSecond(16_000)).toBeGreaterThanOrEqual(4)
    expect(w.perSecond(16_000)).toBeLessThanOrEqual(5)
    expect(w.perSecond(30_000)).toBe(0)
  })
})

describe('StatePublisher, a publish that went to no peer', () => {
  beforeEach(() => { vi.useFakeTimers({ now: 1_000_000 }) })
  afterEach(() => { vi.useRealTimers() })

  /** A publisher whose publishes go to the numbers of peers `reach` gives, in turn (then the last one, again and again). */
  function reaching (reach: Array<number | undefined>) {
    const published: number[] = []
    const p = new StatePublisher({
      config,
      build: () => makeNode({ tag: 'Me', seq: published.length + 1 }),
      load: () => ({ cpu: 0, memMiB: 0, capCpu: 8, capMemMiB: 16384 }),
      peers: () => 5,
      publish: async () => { published.push(Date.now()); return reach[Math.min(published.length, reach.length) - 1] },
      onError: (err) => { throw err },
      clock: { now: () => Date.now() },
      rng: { next: () => 0.5 }
    })
    return { p, published }
  }

  it(`is tried again ${UNHEARD_RETRY_MS} ms later, until one goes to a peer`, async () => {
    const { p, published } = reaching([0, 0, 3])
    p.start()
    await vi.advanceTimersByTimeAsync(2_000)
    expect(published.map(t => t - 1_000_000)).toEqual([0, UNHEARD_RETRY_MS, 2 * UNHEARD_RETRY_MS])
    p.stop()
  })

  it(`is tried again at most ${UNHEARD_RETRIES} times in a row, and not when the count is unknown`, async () => {
    const never = reaching([0])
    never.p.start()
    await vi.advanceTimersByTimeAsync(4_000)
    expect(never.published).toHaveLength(1 + UNHEARD_RETRIES)
    never.p.stop()
    const unknown = reaching([undefined])
    unknown.p.start()
    await vi.advanceTimersByTimeAsync(4_000)
    expect(unknown.published).toHaveLength(1)
    unknown.p.stop()
  })

  it('is not tried again once stopped', async () => {
    const { p, published } = reaching([0])
    p.start()
    p.stop()
    await vi.advanceTimersByTimeAsync(2_000)
    expect(published).toHaveLength(1)
  })
})
