/**
 * The failure detector as a pure state machine: messages and ticks in, with
 * the time; messages, status changes and a wake time out. Each case feeds
 * what a real run would, in order, and checks what the detector sends and
 * decides: probe order, indirect probes, the helper's side, how a probe ends,
 * suspicion timeouts against confirmations, refutation, incarnations, local
 * health, lateness, the transport's hints.
 */
import { describe, expect, it } from 'vitest'
import { type DetectorConfig, DETECTOR_PROFILES } from '../../src/core/detector-config.ts'
import { type DetectorStep, FailureDetector } from '../../src/core/failure-detector.ts'
import { PROTOCOL_VERSION } from '../../src/core/messages.ts'
import { seededRng } from '../../src/core/rng.ts'
import { remainingSuspicionMs, suspicionTimeoutMs } from '../../src/core/suspicion.ts'
import type { SwimMessage, SwimUpdate } from '../../src/core/swim-messages.ts'

/** Round numbers: a probe a second, 200 ms to answer. */
const CONFIG: DetectorConfig = { ...DETECTOR_PROFILES.lan, probeIntervalMs: 1000, probeTimeoutMs: 200, suspicionMult: 3, gossipIntervalMs: 100 }
const RUN = 1

/** A detector that knows `peers`; `t0` is when it asks to be woken first (its random phase): its first probe. */
function make (peers: string[], opts: { seed?: number, config?: Partial<DetectorConfig>, startHealth?: number, joinGraceMs?: number } = {}): FailureDetector & { t0: number } {
  // Healthy from the start and no newcomer's grace, unless a case is about them.
  const d = new FailureDetector({ self: 'me', run: RUN, config: { ...CONFIG, ...opts.config }, rng: seededRng(opts.seed ?? 1), nowMs: 0, startHealth: opts.startHealth ?? 0, joinGraceMs: opts.joinGraceMs ?? 0 })
  let t0 = 0
  for (const p of peers) t0 = d.add(p, RUN, 0).wakeAtMs ?? 0
  return Object.assign(d, { t0 })
}

function sent (step: DetectorStep, type?: SwimMessage['type']): Array<{ to: string, message: SwimMessage }> {
  return step.send.filter(o => type == null || o.message.type === type)
}

function msg (type: 'ack' | 'ping' | 'nack' | 'gossip' | 'ping-req', fields: Record<string, unknown> = {}, updates: SwimUpdate[] = []): SwimMessage {
  return { v: PROTOCOL_VERSION, type, run: RUN, inc: 0, updates, ...fields } as SwimMessage
}

const upd = (peer: string, status: SwimUpdate['status'], accusers?: string[], inc = 0, run = RUN): SwimUpdate =>
  ({ peer, run, inc, status, ...(accusers != null ? { accusers } : {}) })

/** Starts the first round probe (at the time the detector asked for) and returns the target and the ping's seq. */
function firstProbe (d: FailureDetector & { t0: number }): { target: string, seq: number, step: DetectorStep } {
  const step = d.tick(d.t0)
  const [ping] = sent(step, 'ping')
  expect(ping).toBeDefined()
  return { target: ping.to, seq: (ping.message as { seq: number }).seq, step }
}

describe('FailureDetector: probing', () => {
  it.each([1, 7, 42])('probes one peer per period, each once per pass, reshuffled each pass, the same for the same seed (seed %d)', seed => {
    const peers = ['a', 'b', 'c', 'd', 'e']
    const order = (): string[] => {
      const d = make(peers, { seed })
      const targets: string[] = []
      let at = d.t0
      for (let i = 0; i < 15; i++) {
        const step = d.tick(at)
        const pings = sent(step, 'ping')
        expect(pings).toHaveLength(1)
        const { to, message } = pings[0]
        targets.push(to)
        // Answered at once: the next wake is the next period.
        expect(d.receive(to, msg('ack', { seq: (message as { seq: number }).seq }), at).wakeAtMs).toBe(at + 1000)
        at += 1000
      }
      return targets
    }
    const targets = order()
    const passes = [targets.slice(0, 5), targets.slice(5, 10), targets.slice(10)]
    for (const p of passes) expect([...p].sort()).toEqual(peers)
    expect(new Set(passes.map(p => p.join(''))).size).toBeGreaterThan(1)
    expect(order()).toEqual(targets)
  })

  it('asks k helpers after the probe timeout; an ack passed on by one of them ends the probe with no suspicion', () => {
    const d = make(['a', 'b', 'c', 'd', 'e'])
    const { target, seq, step: first } = firstProbe(d)
    expect(first.wakeAtMs).toBe(d.t0 + 200)
    const step = d.tick(d.t0 + 200)
    const reqs = sent(step, 'ping-req')
    expect(reqs).toHaveLength(3)
    expect(new Set(reqs.map(r => r.to)).size).toBe(3)
    for (const r of reqs) {
      expect(r.to).not.toBe(target)
      expect(r.message).toMatchObject({ seq, target })
    }
    d.receive(reqs[0].to, msg('ack', { seq, of: target }), d.t0 + 300)
    const later = d.tick(d.t0 + 1000)
    expect(later.changes).toEqual([])
    expect(d.status(target)).toBe('alive')
    expect(d.stats).toMatchObject({ indirectProbes: 1, failedProbes: 0 })
  })

  it('a late ack passed on after every helper nacked still saves the target', () => {
    const d = make(['a', 'b', 'c', 'd'])
    const { target, seq } = firstProbe(d)
    const reqs = sent(d.tick(d.t0 + 200), 'ping-req')
    for (const r of reqs) d.receive(r.to, msg('nack', { seq }), d.t0 + 350)
    d.receive(reqs[0].to, msg('ack', { seq, of: target }), d.t0 + 450)
    d.tick(d.t0 + 700)
    expect(d.status(target)).toBe('alive')
    expect(d.stats.failedProbes).toBe(0)
  })

  it('as a helper: pings the target, passes its ack on with its incarnation, or nacks after the probe timeout', () => {
    const d = make(['a', 'b'])
    const s1 = d.receive('a', msg('ping-req', { seq: 77, target: 'b' }), 10)
    const [ping] = sent(s1, 'ping')
    expect(ping.to).toBe('b')
    const ours = (ping.message as { seq: number }).seq
    const s2 = d.receive('b', { ...msg('ack', { seq: ours }), inc: 4 }, 20)
    expect(sent(s2, 'ack')).toEqual([{ to: 'a', message: expect.objectContaining({ seq: 77, of: 'b', run: RUN, inc: 4 }) }])
    const s3 = d.receive('a', msg('ping-req', { seq: 78, target: 'b' }), 30)
    const late = (sent(s3, 'ping')[0].message as { seq: number }).seq
    expect(sent(d.tick(229), 'nack')).toHaveLength(0)
    expect(sent(d.tick(230), 'nack')).toEqual([{ to: 'a', message: expect.objectContaining({ seq: 78 }) }])
    // A late ack is still passed on while the asker may wait for it; a ping that cannot be sent is an unreachable nack at once.
    expect(sent(d.receive('b', msg('ack', { seq: late }), 300), 'ack')).toEqual([{ to: 'a', message: expect.objectContaining({ seq: 78, of: 'b' }) }])
    const s4 = d.receive('a', msg('ping-req', { seq: 79, target: 'b' }), 400)
    const [p4] = sent(s4, 'ping')
    expect(sent(d.sendFailed('b', p4.message, 401), 'nack')).toEqual([{ to: 'a', message: expect.objectContaining({ seq: 79, unreachable: true }) }])
  })

  it.each([
    { name: 'a direct ack', peers: 4, ack: true, nacks: 0, want: 'alive', health: 0, end: true, stat: {} },
    { name: 'no ack, one helper of three nacks', peers: 4, ack: false, nacks: 1, want: 'suspect', health: 2, end: true, stat: { failedProbes: 1 } },
    { name: 'no ack, no word from any helper (our own path may be broken)', peers: 4, ack: false, nacks: 0, want: 'alive', health: 3, end: true, stat: { inconclusiveProbes: 1 } },
    { name: 'no ack in a cluster of two (no helper to ask)', peers: 1, ack: false, nacks: 0, want: 'suspect', health: 1, end: true, stat: { failedProbes: 1 } },
    { name: 'no ack, every helper nacks after its timeout: not before the end (a late ack may still come)', peers: 4, ack: false, nacks: 3, want: 'alive', health: 0, end: false, stat: { failedProbes: 0 } },
    { name: 'no ack, no helper could even send its ping: over before the end of the probe', peers: 4, ack: false, nacks: 3, unreachable: true, want: 'suspect', health: 0, end: false, stat: { failedProbes: 1 } }
  ])('a probe that ends with $name: the target is $want, health $health', ({ peers, ack, nacks, want, health, end, stat, unreachable }) => {
    const d = make(['a', 'b', 'c', 'd'].slice(0, peers))
    const { target, seq } = firstProbe(d)
    if (ack) d.receive(target, msg('ack', { seq }), d.t0 + 100)
    else {
      const reqs = sent(d.tick(d.t0 + 200), 'ping-req')
      for (const r of reqs.slice(0, nacks)) d.receive(r.to, msg('nack', { seq, ...(unreachable === true ? { unreachable: true } : {}) }), d.t0 + 300)
      // The helpers' timeout, the time they still pass a late ack on, and the way back: 2.5 probe timeouts.
      if (end) d.tick(d.t0 + 200 + 500)
    }
    expect(d.status(target)).toBe(want)
    expect(d.health).toBe(health)
    expect(d.stats).toMatchObject(stat)
  })

  it('an accusation is pushed to the accused at once, and rides on every later message to it', () => {
    const d = make(['a'])
    const { target } = firstProbe(d)
    d.tick(d.t0 + 200)
    const end = d.tick(d.t0 + 700)
    const told = sent(end, 'gossip').find(o => o.to === target)
    expect(told?.message.updates[0]).toEqual(upd(target, 'suspect', ['me']))
    const again = d.receive(target, msg('ping', { seq: 9 }), d.t0 + 700)
    expect(sent(again, 'ack')[0].message.updates[0]).toMatchObject({ peer: target, status: 'suspect' })
  })
})

/** Feeds timed inputs, ticking at every wake time between them; every ping is answered at once by its target. */
function drive (d: FailureDetector, inputs: Array<[number, (at: number) => DetectorStep]>, untilMs: number): Array<{ atMs: number, peer: string, to: string }> {
  const changes: Array<{ atMs: number, peer: string, to: string }> = []
  const queue = [...inputs].sort((a, b) => a[0] - b[0])
  let wake = 0
  const handle = (at: number, step: DetectorStep): void => {
    for (const c of step.changes) changes.push({ atMs: at, peer: c.peer, to: c.to })
    for (const o of step.send) if (o.message.type === 'ping') handle(at, d.receive(o.to, msg('ack', { seq: o.message.seq }), at))
    if (step.wakeAtMs != null) wake = step.wakeAtMs
  }
  while (true) {
    const next = Math.min(wake, queue[0]?.[0] ?? Infinity)
    if (next > untilMs) break
    if (queue.length > 0 && queue[0][0] <= wake) {
      const [at, f] = queue.shift()!
      handle(at, f(at))
    } else handle(wake, d.tick(wake))
  }
  return changes
}

describe('FailureDetector: suspicion timeout against confirmations', () => {
  const peers = ['x', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i']
  // n = 11 with ourselves: minimum 3 × log10(11) × 1 s, maximum 6 × that; k = deadQuorum − 1 = 2.
  const min = suspicionTimeoutMs(3, 11, 1000)
  const max = 6 * min
  const oneConfirmation = remainingSuspicionMs(1, 2, 0, min, max)

  it.each([
    { name: 'one accuser: not shown, never dead', feed: [[0, ['a']]], checks: [[100, 'alive'], [60_000, 'alive']] },
    { name: 'two accusers: shown suspect, never dead without a third', feed: [[0, ['a']], [500, ['b']]], checks: [[400, 'alive'], [600, 'suspect'], [60_000, 'suspect']] },
    { name: 'three accusers at once: dead at the minimum', feed: [[0, ['a', 'b', 'c']]], checks: [[min - 1, 'suspect'], [min, 'dead']] },
    { name: 'two then a third after the two-accuser deadline: dead when the third comes', feed: [[0, ['a', 'b']], [oneConfirmation + 5000, ['c']]], checks: [[oneConfirmation + 4999, 'suspect'], [oneConfirmation + 5000, 'dead']] },
    { name: 'an accuser we hold suspect does not count', feed: [[0, ['a', 'd']], [10, ['b']]], checks: [[5, 'alive'], [60_000, 'suspect']] }
  ] as Array<{ name: string, feed: Array<[number, string[]]>, checks: Array<[number, string]> }>)('$name', ({ feed, checks }) => {
    const d = make(peers)
    // 'd', accused by 'e' and 'f', is shown suspect first: its own accusations do not count.
    const inputs: Array<[number, (at: number) => DetectorStep]> = feed.map(([t, accusers]) =>
      [t + 1, at => d.receive('h', msg('gossip', {}, [...(accusers.includes('d') ? [upd('d', 'suspect', ['e', 'f'])] : []), upd('x', 'suspect', accusers)]), at)])
    const changes = drive(d, inputs, 61_000)
    for (const [t, want] of checks) {
      const last = changes.filter(c => c.peer === 'x' && c.atMs <= t + 1).at(-1)
      expect({ t, status: last?.to ?? 'alive' }).toEqual({ t, status: want })
    }
  })

  it('a death carrying as many accusers as the quorum is taken at once; one with fewer is only an accusation', () => {
    const d = make(peers)
    d.receive('h', msg('gossip', {}, [upd('x', 'dead', ['a'])]), 10)
    expect(d.status('x')).toBe('alive')
    d.receive('h', msg('gossip', {}, [upd('x', 'dead', ['a', 'b', 'c'])]), 20)
    expect(d.status('x')).toBe('dead')
    expect(d.stats.deaths).toBe(1)
  })
})

describe('FailureDetector: refutation and incarnations', () => {
  it.each([
    { name: 'suspected at our incarnation', u: upd('me', 'suspect', ['a']), run: RUN, inc: 1 },
    { name: 'declared dead at our incarnation', u: upd('me', 'dead', ['a', 'b', 'c']), run: RUN, inc: 1 },
    { name: 'suspected at a higher incarnation', u: upd('me', 'suspect', ['a'], 5), run: RUN, inc: 6 },
    { name: 'an alive update about us at ours', u: upd('me', 'alive'), run: RUN, inc: 0 },
    { name: 'suspected in an older run', u: upd('me', 'suspect', ['a'], 9, RUN - 1), run: RUN, inc: 0 },
    { name: 'suspected in a later run (a clock set back)', u: upd('me', 'suspect', ['a'], 0, RUN + 1), run: RUN + 1, inc: 1 }
  ])('$name: we go to run $run, incarnation $inc', ({ u, run, inc }) => {
    const d = make(['a', 'b'])
    const step = d.receive('a', msg('ping', { seq: 3 }, [u]), 10)
    expect(d.incarnation).toEqual({ run, inc })
    const refuted = inc > 0
    expect(d.stats.refutations).toBe(refuted ? 1 : 0)
    expect(d.health).toBe(refuted ? 1 : 0)
    // The answer already carries the new incarnation, and the refutation rides with it.
    const ack = sent(step, 'ack')[0].message
    expect(ack).toMatchObject({ run, inc })
    if (refuted) expect(step.send.some(o => o.message.updates.some(x => x.peer === 'me' && x.status === 'alive' && x.inc === inc))).toBe(true)
  })

  it.each([
    { name: 'an older incarnation is ignored', feed: [upd('x', 'alive', undefined, 1)], status: 'alive', inc: 2 },
    { name: 'a newer alive raises it', feed: [upd('x', 'alive', undefined, 3)], status: 'alive', inc: 3 },
    { name: 'an accusation at an older incarnation is void', feed: [upd('x', 'dead', ['a', 'b', 'c'], 1)], status: 'alive', inc: 2 },
    { name: 'alive at the same incarnation does not clear a suspicion', feed: [upd('x', 'suspect', ['a', 'b'], 2), upd('x', 'alive', undefined, 2)], status: 'suspect', inc: 2 },
    { name: 'a refutation clears a suspicion', feed: [upd('x', 'suspect', ['a', 'b'], 2), upd('x', 'alive', undefined, 3)], status: 'alive', inc: 3, change: { from: 'suspect', refuted: true } },
    { name: 'back from dead in the same run: a false positive', feed: [upd('x', 'dead', ['a', 'b', 'c'], 2), upd('x', 'alive', undefined, 3)], status: 'alive', inc: 3, change: { from: 'dead', refuted: true }, falsePositives: 1 },
    { name: 'back from dead in a later run: a restart', feed: [upd('x', 'dead', ['a', 'b', 'c'], 2), upd('x', 'alive', undefined, 0, RUN + 1)], status: 'alive', inc: 0, change: { from: 'dead', restarted: true }, falsePositives: 0 }
  ] as Array<{ name: string, feed: SwimUpdate[], status: string, inc: number, change?: Record<string, unknown>, falsePositives?: number }>)('$name', ({ feed, status, inc, change, falsePositives }) => {
    const d = make(['x', 'a', 'b', 'c', 'd'])
    d.receive('d', msg('gossip', {}, [upd('x', 'alive', undefined, 2)]), 1)
    let last: DetectorStep | undefined
    feed.forEach((u, i) => { last = d.receive('d', msg('gossip', {}, [u]), 10 + i) })
    expect(d.status('x')).toBe(status)
    expect(d.members().find(m => m.peer === 'x')?.inc).toBe(inc)
    if (change != null) expect(last?.changes.at(-1)).toMatchObject({ peer: 'x', to: 'alive', ...change })
    expect(d.stats.falsePositives).toBe(falsePositives ?? 0)
  })

  it('a member heard gossiping a later run has restarted: alive again', () => {
    const d = make(['x', 'a', 'b', 'c'])
    d.receive('a', msg('gossip', {}, [upd('x', 'dead', ['a', 'b', 'c'])]), 10)
    expect(d.status('x')).toBe('dead')
    expect(d.heard('x', RUN, 20).changes).toEqual([])
    const step = d.heard('x', RUN + 5, 30)
    expect(step.changes).toEqual([expect.objectContaining({ peer: 'x', from: 'dead', to: 'alive', restarted: true })])
  })
})

describe('FailureDetector: local health', () => {
  it('inconclusive probes stretch the interval and timeouts; answered probes bring them back', () => {
    const d = make(['a', 'b', 'c', 'd'])
    firstProbe(d)
    d.tick(d.t0 + 200)
    d.tick(d.t0 + 700)
    expect(d.health).toBe(3)
    // The next period was set before the score rose: one interval. The one after is stretched (score + 1).
    const next = d.tick(d.t0 + 1000)
    const [ping] = sent(next, 'ping')
    // Its direct timeout is stretched the same way.
    expect(next.wakeAtMs).toBe(d.t0 + 1000 + 4 * 200)
    const s2 = d.receive(ping.to, msg('ack', { seq: (ping.message as { seq: number }).seq }), d.t0 + 1100)
    expect(d.health).toBe(2)
    expect(s2.wakeAtMs).toBe(d.t0 + 1000 + 4 * 1000)
  })

  it('a detector just started begins unsure of itself: slow probes, long timeouts, each answer bringing the score down', () => {
    const d = new FailureDetector({ self: 'me', run: RUN, config: CONFIG, rng: seededRng(1), nowMs: 0 })
    let t0 = 0
    for (const p of ['a', 'b', 'c']) t0 = d.add(p, RUN, 0).wakeAtMs ?? 0
    expect(d.health).toBe(7)
    const step = d.tick(t0)
    const [ping] = sent(step, 'ping')
    expect(step.wakeAtMs).toBe(t0 + 8 * 200)
    d.receive(ping.to, msg('ack', { seq: (ping.message as { seq: number }).seq }), t0 + 10)
    expect(d.health).toBe(6)
  })

  it('a member added lately is not accused on a probe that timed out, but is on a refused dial', () => {
    const d = make(['a', 'b', 'c', 'd'], { joinGraceMs: 30_000 })
    const { target, seq } = firstProbe(d)
    const reqs = sent(d.tick(d.t0 + 200), 'ping-req')
    for (const r of reqs) d.receive(r.to, msg('nack', { seq }), d.t0 + 300)
    d.tick(d.t0 + 700)
    expect(d.status(target)).toBe('alive')
    expect(d.stats.inconclusiveProbes).toBe(1)
    const s = d.hint('b', 'disconnected', d.t0 + 800)
    const [ping] = sent(s, 'ping')
    const s2 = d.sendFailed('b', ping.message, d.t0 + 810)
    for (const r of sent(s2, 'ping-req')) d.receive(r.to, msg('nack', { seq: (ping.message as { seq: number }).seq, unreachable: true }), d.t0 + 820)
    expect(d.status('b')).toBe('suspect')
  })

  it('a timer that fires late raises the score, once per period; late by several periods (paused), probes in flight are dropped unjudged', () => {
    const d = make(['a', 'b', 'c', 'd'])
    const { target } = firstProbe(d)
    // Due 200 ms after the ping, run 150 ms late.
    d.tick(d.t0 + 350)
    expect(d.health).toBe(1)
    d.late(150, d.t0 + 400)
    expect(d.health).toBe(1)
    // Paused for 10 s (five periods or more): the probe's silence is ours, not the target's.
    d.tick(d.t0 + 10_600)
    expect(d.status(target)).toBe('alive')
    expect(d.stats.failedProbes + d.stats.inconclusiveProbes).toBe(0)
    expect(d.health).toBe(2)
  })
})

describe('FailureDetector: hints from the transport', () => {
  it('a closed connection gets its peer probed at once; a ping that cannot be sent goes to the helpers at once', () => {
    const d = make(['a', 'b', 'c', 'd'])
    const s1 = d.hint('b', 'disconnected', 500)
    const [ping] = sent(s1, 'ping')
    expect(ping.to).toBe('b')
    const s2 = d.sendFailed('b', ping.message, 510)
    expect(sent(s2, 'ping-req')).toHaveLength(3)
    // Decided at the first helper's refusal (the next test); the later nacks change nothing.
    const changes = sent(s2, 'ping-req').flatMap(r => d.receive(r.to, msg('nack', { seq: (ping.message as { seq: number }).seq, unreachable: true }), 520).changes)
    expect(changes).toEqual([expect.objectContaining({ peer: 'b', from: 'alive', to: 'suspect' })])
  })

  it('a ping that cannot be sent, and one helper\'s that cannot either: decided at once, the slower helpers not waited for, our health untouched', () => {
    const d = make(['a', 'b', 'c', 'd'])
    const [ping] = sent(d.hint('b', 'disconnected', 500), 'ping')
    const reqs = sent(d.sendFailed('b', ping.message, 510), 'ping-req')
    expect(reqs).toHaveLength(3)
    const s = d.receive(reqs[0].to, msg('nack', { seq: (ping.message as { seq: number }).seq, unreachable: true }), 520)
    expect(s.changes).toEqual([expect.objectContaining({ peer: 'b', from: 'alive', to: 'suspect' })])
    expect(d.health).toBe(0)
  })

  it('a ping that timed out (sent, not refused) and one helper\'s refused: still waits for the others', () => {
    const d = make(['a', 'b', 'c', 'd'])
    const { target, seq } = firstProbe(d)
    const reqs = sent(d.tick(d.t0 + 200), 'ping-req')
    const s = d.receive(reqs[0].to, msg('nack', { seq, unreachable: true }), d.t0 + 300)
    expect(s.changes).toEqual([])
    expect(d.status(target)).toBe('alive')
  })

  it('a dead member that connects again is pinged, with its death, so that it refutes', () => {
    const d = make(['x', 'a', 'b', 'c'], { config: { verifyProbes: 0 } })
    d.receive('a', msg('gossip', {}, [upd('x', 'dead', ['a', 'b', 'c'])]), 10)
    const s = d.hint('x', 'connected', 20)
    const [ping] = sent(s, 'ping')
    expect(ping.to).toBe('x')
    expect(ping.message.updates[0]).toMatchObject({ peer: 'x', status: 'dead' })
    // Its answer carries its refutation: alive again.
    const back = d.receive('x', { ...msg('ack', { seq: (ping.message as { seq: number }).seq }), inc: 1 }, 30)
    expect(back.changes).toEqual([expect.objectContaining({ peer: 'x', to: 'alive', refuted: true })])
  })

  it.each([
    { name: 'with the monitoring topology, a helper that observes the target probes it itself at once', observers: 4, probes: true },
    { name: 'without it (everyone observes everyone), it only nacks', observers: null, probes: false }
  ])('a relayed ping refused: $name', ({ observers, probes }) => {
    const d = make(Array.from({ length: 12 }, (_, i) => `p${String(i).padStart(2, '0')}`), { config: { observers } })
    // A subject of ours (the round probe walks them), answered: nothing in flight.
    const { target, seq } = firstProbe(d)
    d.receive(target, msg('ack', { seq }), d.t0 + 10)
    const asker = ['p00', 'p01', 'p02'].find(p => p !== target)!
    const [relay] = sent(d.receive(asker, msg('ping-req', { seq: 900, target }), d.t0 + 20), 'ping')
    const step = d.sendFailed(target, relay.message, d.t0 + 30)
    expect(sent(step, 'nack')).toEqual([{ to: asker, message: expect.objectContaining({ seq: 900, unreachable: true }) }])
    expect(sent(step, 'ping').map(o => o.to)).toEqual(probes ? [target] : [])
  })

  it('ping-reqs beyond what it serves at once are nacked at once', () => {
    const d = make(['a', 'b'])
    for (let i = 0; i < 1024; i++) d.receive('a', msg('ping-req', { seq: i, target: 'b' }), 10)
    expect(sent(d.receive('a', msg('ping-req', { seq: 5000, target: 'b' }), 11), 'nack')).toHaveLength(1)
  })
})
