/**
 * The redialer against a fake libp2p (the three methods it uses) and a
 * manual clock: what is due is dialled, within the budget of a check; a
 * failed address waits out its back-off; warm connections are opened only
 * towards peers with a larger id than ours.
 */
import { describe, expect, it } from 'vitest'
import { ManualClock } from '../../src/core/clock.ts'
import { pairRank } from '../../src/core/fanout.ts'
import { DIAL_TIMEOUT_DOUBLINGS, Redialer, type RedialerInit } from '../../src/net/redialer.ts'

const SELF = '12D3KooWNodeM'
const addr = (tag: string, port = 4001): string => `/ip4/127.0.0.1/tcp/${port}/p2p/12D3KooWNode${tag}`

/** Records dials; a dial fails when its address is in `failing`, hangs when in `hanging`, else connects. */
class FakeLibp2p {
  readonly peerId = { toString: () => SELF }
  readonly connected = new Set<string>()
  readonly dials: string[] = []
  readonly failing = new Set<string>()
  readonly hanging = new Map<string, () => void>()
  /** Addresses whose dials never answer: they end only when their signal aborts (a peer on a saturated host). */
  readonly stalled = new Set<string>()
  /** Per peer: its connection's streams' protocols, direction and opening time (defaults: none, outbound, 0). */
  readonly details = new Map<string, { protocols?: string[], inbound?: boolean, openedAt?: number }>()

  getConnections (): Array<{ remotePeer: { toString: () => string }, streams: Array<{ protocol?: string }>, direction: string, timeline: { open: number } }> {
    return [...this.connected].map(id => {
      const d = this.details.get(id) ?? {}
      return { remotePeer: { toString: () => id }, streams: (d.protocols ?? []).map(protocol => ({ protocol })), direction: d.inbound === true ? 'inbound' : 'outbound', timeline: { open: d.openedAt ?? 0 } }
    })
  }

  async dial (ma: { toString: () => string }, options?: { signal?: AbortSignal }): Promise<unknown> {
    const a = ma.toString()
    this.dials.push(a)
    if (this.stalled.has(a)) {
      await new Promise((_resolve, reject) => { options?.signal?.addEventListener('abort', () => { reject(options.signal?.reason) }) })
    }
    if (this.hanging.has(a)) await new Promise<void>(resolve => { this.hanging.set(a, resolve) })
    if (this.failing.has(a)) throw new Error(`connection refused: ${a}`)
    const id = a.match(/\/p2p\/([^/]+)$/)?.[1]
    if (id != null) this.connected.add(id)
    return {}
  }

  /** Dials made since the last call. */
  take (): string[] {
    return this.dials.splice(0)
  }
}

function setup (init: Partial<Omit<RedialerInit, 'known'>> & { known?: string[] } = {}) {
  const libp2p = new FakeLibp2p()
  const clock = new ManualClock(0)
  const errors: string[] = []
  const messages: string[] = []
  const { known = [], ...rest } = init
  const redialer = new Redialer({
    minConnections: 2,
    minMs: 1_000,
    maxMs: 4_000,
    checkEveryMs: 1_000,
    bootstrap: [],
    ...rest,
    known: () => known,
    libp2p: libp2p as unknown as RedialerInit['libp2p'],
    clock,
    onDialError: (a, err) => { errors.push(a); messages.push(err.message) }
  })
  return { libp2p, clock, errors, messages, redialer }
}

describe('Redialer', () => {
  it('dials bootstrap then known peers while under minConnections, no more per check than are missing, skipping itself and peers it has', async () => {
    const { libp2p, redialer } = setup({ minConnections: 3, bootstrap: ['/ip4/10.0.0.1/tcp/4001', `/ip4/10.0.0.2/tcp/4001/p2p/${SELF}`, addr('A')], known: [addr('B'), addr('C'), addr('D')] })
    libp2p.connected.add('12D3KooWNodeA')
    await redialer.check()
    expect(libp2p.take()).toEqual(['/ip4/10.0.0.1/tcp/4001', addr('B')])
    // A and B connected (an address without a peer id names no peer); with one more, nothing is missing.
    libp2p.connected.add('12D3KooWNodeX')
    await redialer.check()
    expect(libp2p.take()).toEqual([])
  })

  it('waits out the back-off of an address that failed, doubling up to the maximum, and starts over after a success', async () => {
    const { libp2p, clock, errors, redialer } = setup({ minConnections: 1, bootstrap: [addr('B')] })
    libp2p.failing.add(addr('B'))
    const table: Array<{ at: number, dials: boolean }> = [
      { at: 0, dials: true }, // fails: next at 1 s
      { at: 999, dials: false },
      { at: 1_000, dials: true }, // fails: next at 3 s
      { at: 2_999, dials: false },
      { at: 3_000, dials: true }, // fails: next at 7 s
      { at: 6_999, dials: false },
      { at: 7_000, dials: true }, // fails: next at 11 s (capped at 4 s)
      { at: 10_999, dials: false },
      { at: 11_000, dials: true }
    ]
    for (const { at, dials } of table) {
      clock.set(at)
      await redialer.check()
      expect(libp2p.take().length > 0, `a dial at ${at} ms`).toBe(dials)
    }
    expect(errors).toHaveLength(5)
    // A success forgets the back-off: the next failure waits the minimum again.
    libp2p.failing.clear()
    clock.set(15_000)
    await redialer.check()
    expect(libp2p.take()).toEqual([addr('B')])
    libp2p.connected.clear()
    libp2p.failing.add(addr('B'))
    await redialer.check()
    expect(libp2p.take()).toEqual([addr('B')])
    clock.set(15_999)
    await redialer.check()
    expect(libp2p.take()).toEqual([])
    clock.set(16_000)
    await redialer.check()
    expect(libp2p.take()).toEqual([addr('B')])
  })

  it('doubles the deadline of an address whose dials time out, up to 2 ** DIAL_TIMEOUT_DOUBLINGS times, not for a refusal, and starts over after a success', async () => {
    const { libp2p, clock, messages, redialer } = setup({ minConnections: 1, bootstrap: [addr('B')], dialTimeoutMs: 10, minMs: 1, maxMs: 1 })
    const dialOnce = async (): Promise<string | undefined> => {
      clock.set(clock.now() + 1)
      const before = messages.length
      await redialer.check()
      expect(libp2p.take()).toEqual([addr('B')])
      return messages.length > before ? messages[messages.length - 1] : undefined
    }
    libp2p.stalled.add(addr('B'))
    const seen: Array<string | undefined> = []
    for (let i = 0; i < DIAL_TIMEOUT_DOUBLINGS + 2; i++) seen.push(await dialOnce())
    expect(seen).toEqual(['timed out after 10 ms', 'timed out after 20 ms', 'timed out after 40 ms', 'timed out after 80 ms', 'timed out after 80 ms'])
    // A refusal is not a timeout: the deadline stays where it is.
    libp2p.stalled.delete(addr('B'))
    libp2p.failing.add(addr('B'))
    expect(await dialOnce()).toMatch(/^connection refused/)
    libp2p.failing.delete(addr('B'))
    libp2p.stalled.add(addr('B'))
    expect(await dialOnce()).toBe('timed out after 80 ms')
    // A success forgets the timeouts.
    libp2p.stalled.delete(addr('B'))
    expect(await dialOnce()).toBeUndefined()
    libp2p.connected.clear()
    libp2p.stalled.add(addr('B'))
    expect(await dialOnce()).toBe('timed out after 10 ms')
  })

  it('opens warm connections only towards peers with a larger id, a few per check, up to warmConnections', async () => {
    const known = [addr('A'), addr('N'), addr('B'), addr('P'), addr('Q'), addr('R'), addr('S')]
    const { libp2p, redialer } = setup({ minConnections: 1, warmConnections: 4, warmDialsPerCheck: 2, known })
    libp2p.connected.add('12D3KooWNodeA')
    await redialer.check()
    // A and B are smaller than M: they dial us, not we them.
    expect(libp2p.take()).toEqual([addr('N'), addr('P')])
    await redialer.check()
    // Four connections wanted, three there (A, N, P): one more.
    expect(libp2p.take()).toEqual([addr('Q')])
    await redialer.check()
    expect(libp2p.take()).toEqual([])
  })

  it('does not dial an address again while its dial is in progress, and counts it towards the warm connections', async () => {
    const { libp2p, redialer } = setup({ minConnections: 1, warmConnections: 3, warmDialsPerCheck: 2, known: [addr('N'), addr('P'), addr('Q')] })
    libp2p.connected.add('12D3KooWNodeA')
    libp2p.hanging.set(addr('N'), () => {})
    const first = redialer.check()
    expect(libp2p.take()).toEqual([addr('N'), addr('P')])
    await redialer.check()
    // A, P connected and N on its way: three, the most wanted.
    expect(libp2p.take()).toEqual([])
    libp2p.hanging.get(addr('N'))?.()
    await first
    expect(libp2p.connected.has('12D3KooWNodeN')).toBe(true)
  })

  it('reports an address that does not parse once, and never tries it again', async () => {
    const { libp2p, clock, errors, redialer } = setup({ minConnections: 1, bootstrap: ['not-a-multiaddr'] })
    await redialer.check()
    clock.set(1e12)
    await redialer.check()
    expect(errors).toEqual(['not-a-multiaddr'])
    expect(libp2p.take()).toEqual([])
  })

  it('says when no bootstrap peer was reached, once every one failed, again every unreachedReportEveryMs, and when one is reached', async () => {
    const reports: Array<{ addrs: number, failures: number, lastError: string, forMs: number, connections: number }> = []
    const reached: string[] = []
    const bootstrap = [addr('B'), addr('C')]
    const { libp2p, clock, redialer } = setup({
      minConnections: 2,
      bootstrap,
      unreachedReportEveryMs: 60_000,
      onBootstrapUnreached: (r) => { reports.push(r) },
      onBootstrapReached: (a) => { reached.push(a) }
    })
    libp2p.failing.add(addr('B'))
    libp2p.failing.add(addr('C'))
    expect(redialer.joined).toBe(false)
    await redialer.check()
    // Both dialled and failed; told at the next check (the dials end after the check that started them).
    expect(reports).toEqual([])
    clock.set(500)
    await redialer.check()
    expect(reports).toEqual([{ addrs: 2, failures: 2, lastError: `connection refused: ${addr('C')}`, lastAddr: addr('C'), forMs: 500, connections: 0 }])
    // Not again within the minute, though the dials go on.
    for (let at = 1_000; at < 60_500; at += 1_000) {
      clock.set(at)
      await redialer.check()
    }
    expect(reports).toHaveLength(1)
    expect(libp2p.take().length).toBeGreaterThan(10)
    // A peer that dialled us is counted, not taken for a bootstrap peer.
    libp2p.connected.add('12D3KooWNodeZ')
    clock.set(60_500)
    await redialer.check()
    expect(reports).toHaveLength(2)
    expect(reports[1]).toMatchObject({ addrs: 2, connections: 1 })
    expect(reports[1].failures).toBeGreaterThan(10)
    expect(reports[1].forMs).toBe(60_500)
    // C starts: reached, said once, and no report after.
    libp2p.failing.delete(addr('C'))
    for (let at = 61_000; at < 200_000 && !redialer.joined; at += 1_000) {
      clock.set(at)
      await redialer.check()
    }
    expect(redialer.joined).toBe(true)
    expect(reached).toEqual([addr('C')])
    clock.set(300_000)
    await redialer.check()
    expect(reports).toHaveLength(2)
  })

  it('never reports an unreached bootstrap when it has none, and is joined from the start', async () => {
    const reports: unknown[] = []
    const { clock, redialer } = setup({ minConnections: 1, known: [addr('B')], onBootstrapUnreached: (r) => { reports.push(r) } })
    expect(redialer.joined).toBe(true)
    for (let at = 0; at < 120_000; at += 10_000) {
      clock.set(at)
      await redialer.check()
    }
    expect(reports).toEqual([])
  })

  it('refuses options out of range with a message that says what was expected', () => {
    expect(() => setup({ warmDialsPerCheck: -1 })).toThrow('Expected `warmDialsPerCheck` to be an integer >= 0, got `-1` (number)')
    expect(() => setup({ minMs: 5_000, maxMs: 1_000 })).toThrow('Expected `maxMs` to be a finite number >= 5000, got `1000` (number)')
    expect(() => setup({ maxConnections: 0, close: async () => {} })).toThrow('Expected `maxConnections` to be an integer >= 1, got `0` (number)')
    expect(() => setup({ maxConnections: 8 })).toThrow('Expected `close` with `maxConnections`, got none')
  })

  describe('with a bounded fan-out (maxConnections)', () => {
    const tags = ['A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'J', 'K']
    const id = (t: string): string => `12D3KooWNode${t}`

    it('warms connections to peers of either side of its id, best ranked for the pair first, skipping those to avoid', async () => {
      const closed: string[] = []
      const avoid = id('C')
      const { libp2p, redialer } = setup({ minConnections: 1, warmConnections: 4, warmDialsPerCheck: 2, maxConnections: 8, known: tags.map(t => addr(t)), close: async (p) => { closed.push(p) }, avoid: (p) => p === avoid })
      libp2p.connected.add(id('A'))
      await redialer.check()
      await redialer.check()
      const dialled = libp2p.take().map(a => a.match(/\/p2p\/(.+)$/)![1])
      expect(dialled).toHaveLength(3)
      expect(dialled).not.toContain(avoid)
      const expected = tags.map(id).filter(p => p !== id('A') && p !== avoid).sort((x, y) => pairRank(SELF, x) - pairRank(SELF, y)).slice(0, 3)
      expect(dialled).toEqual(expected)
      // Some of them have a smaller id than ours: with a bound, either side dials.
      expect(dialled.some(p => p < SELF) || expected.every(p => p > SELF)).toBe(true)
      expect(closed).toEqual([])
    })

    it('closes idle connections beyond maxConnections, two per check at most, never a busy or a young one', async () => {
      const closed: string[] = []
      const { libp2p, clock, redialer } = setup({ minConnections: 1, warmConnections: 2, maxConnections: 3, minIdleAgeMs: 10_000, close: async (p) => { closed.push(p); libp2p.connected.delete(p) } })
      clock.set(60_000)
      for (const t of tags.slice(0, 7)) libp2p.connected.add(id(t))
      libp2p.details.set(id('A'), { protocols: ['/discovery/place/1.1.0', '/meshsub/1.2.0'] })
      libp2p.details.set(id('B'), { openedAt: 55_000 })
      libp2p.details.set(id('C'), { protocols: ['/meshsub/1.2.0', '/ipfs/ping/1.0.0', '/ipfs/id/1.0.0'] })
      await redialer.check()
      expect(closed).toHaveLength(2)
      await redialer.check()
      expect(closed).toHaveLength(4)
      await redialer.check()
      // Three left: A (busy), B (young) and one idle one.
      expect(closed).toHaveLength(4)
      expect(closed).not.toContain(id('A'))
      expect(closed).not.toContain(id('B'))
      expect(libp2p.connected.size).toBe(3)
      expect(libp2p.take()).toEqual([])
    })

    it('dials the kept peers (the ring neighbours) whatever the warming budget, the one with the smaller id dialling, and never closes them as idle', async () => {
      const closed: string[] = []
      let keep = [id('N'), id('B'), id('P')]
      const { libp2p, clock, redialer } = setup({ minConnections: 1, warmConnections: 0, maxConnections: 2, known: [...tags, 'N', 'P'].map(t => addr(t)), keep: () => keep, avoid: (p) => p === id('P'), close: async (p) => { closed.push(p); libp2p.connected.delete(p) } })
      clock.set(60_000)
      for (const t of ['B', 'C', 'D', 'E']) libp2p.connected.add(id(t))
      libp2p.details.set(id('B'), { inbound: true })
      await redialer.check()
      // N has a larger id than ours: we dial it. B dials us (and did). P closed a connection with us on purpose lately: not now.
      expect(libp2p.take()).toEqual([addr('N')])
      for (let i = 0; i < 3; i++) await redialer.check()
      expect(closed.sort()).toEqual([id('C'), id('D'), id('E')].sort())
      expect([...libp2p.connected].sort()).toEqual([id('B'), id('N')])
      // Once they are neighbours no more, they are connections like the others.
      keep = []
      await redialer.check()
      expect(libp2p.take()).toEqual([])
      expect(libp2p.connected.size).toBe(2)
      keep = [id('N')]
      libp2p.connected.add(id('C'))
      await redialer.check()
      // Three connections for a bound of two: one idle one goes, never N.
      expect(closed).toHaveLength(4)
      expect([id('B'), id('C')]).toContain(closed[3])
      expect(libp2p.connected.has(id('N'))).toBe(true)
    })

    it('keeps a connection that had a stream opened within minQuietMs, though none is under way at the check', async () => {
      const closed: string[] = []
      const lastStream = new Map<string, number>()
      const { libp2p, clock, redialer } = setup({ minConnections: 1, warmConnections: 0, maxConnections: 2, minQuietMs: 5_000, lastActivity: (p) => lastStream.get(p), close: async (p) => { closed.push(p); libp2p.connected.delete(p) } })
      clock.set(60_000)
      for (const t of tags.slice(0, 6)) libp2p.connected.add(id(t))
      // A, B, C, D had requests 1–4.9 s ago; E 5 s ago, F never: only those two are idle.
      for (const [t, ago] of [['A', 1_000], ['B', 2_000], ['C', 3_000], ['D', 4_900], ['E', 5_000]] as const) lastStream.set(id(t), 60_000 - ago)
      await redialer.check()
      await redialer.check()
      expect(closed.sort()).toEqual([id('E'), id('F')].sort())
      // Once they too have gone quiet, they are closed down to the bound.
      clock.set(70_000)
      await redialer.check()
      await redialer.check()
      expect(libp2p.connected.size).toBe(2)
    })
  })
})
