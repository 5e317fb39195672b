/**
 * The placement attempt as a pure state machine: commands out, answers and
 * failures in, time passed in. No network, no timers: each case feeds the
 * events a real run would, in the order given, and checks what the attempt
 * asks for and how it ends.
 */
import { describe, expect, it } from 'vitest'
import type { NodeState, PlaceRequest, PlaceResponse, VmSpec } from '../../src/core/messages.ts'
import { type AttemptCommand, type AttemptStep, COMMIT_RETRY_FIRST_MS, COMMIT_RETRY_MAX_MS, InFlight, PlacementAttempt } from '../../src/core/placement-attempt.ts'
import { arraySource } from '../../src/core/placement.ts'
import { seededRng } from '../../src/core/rng.ts'
import { makeNode, peerId } from './fixtures.ts'

const A = peerId('A')
const B = peerId('B')
const C = peerId('C')
const TTL = 10_000

const spec: VmSpec = { id: 'vm-000000000001', name: 'web', cpu: 2, memMiB: 1024, createdAtMs: 0 }

function attempt (nodes: NodeState[], opts: { inFlight?: InFlight, seed?: number, sample?: number } = {}) {
  let lease = 0
  const inFlight = opts.inFlight ?? new InFlight()
  const a = new PlacementAttempt({
    spec,
    nodes: arraySource(nodes),
    inFlight,
    rng: seededRng(opts.seed ?? 1),
    sample: opts.sample ?? 2,
    leaseTtlMs: TTL,
    newLeaseId: () => `00000000-0000-4000-8000-${String(++lease).padStart(12, '0')}`
  })
  return { a, inFlight }
}

const ok: PlaceResponse = { v: 1, ok: true }
const created: PlaceResponse = { v: 1, ok: true, state: 'creating' }
const no = (reason: string): PlaceResponse => ({ v: 1, ok: false, reason })

function sends (step: AttemptStep): Array<Extract<AttemptCommand, { kind: 'send' }>> {
  return step.commands.filter((c): c is Extract<AttemptCommand, { kind: 'send' }> => c.kind === 'send')
}

function ops (cmd: { requests: PlaceRequest[] }): string[] {
  return cmd.requests.map(r => r.op)
}

describe('PlacementAttempt', () => {
  it('asks the least loaded of the sampled candidates first, reserve and commit back to back, and is placed when the commit is taken', () => {
    const nodes = [makeNode({ tag: 'A', used: { cpu: 6, memMiB: 0 } }), makeNode({ tag: 'B' })]
    const { a, inFlight } = attempt(nodes)
    const first = sends(a.start())
    expect(first).toHaveLength(1)
    expect(first[0].node).toBe(B)
    expect(ops(first[0])).toEqual(['reserve', 'commit'])
    // What is being asked counts against B for other creates until the attempt ends.
    expect(inFlight.get(B)).toEqual({ cpu: 2, memMiB: 1024 })
    const r = a.answer(first[0].leaseId, 'reserve', ok, 5)
    expect(r.results).toEqual(['reserved'])
    expect(r.outcome).toBeUndefined()
    const c = a.answer(first[0].leaseId, 'commit', created, 6)
    expect(c.outcome).toEqual({ kind: 'placed', node: B, state: 'creating', attempts: 1 })
    expect(inFlight.get(B)).toBeUndefined()
  })

  it.each<{ name: string, reserve: 'ok' | 'refused' | 'unsent' | 'lost', commit: 'ok' | 'no-lease' | 'lost' | 'none', then: 'placed' | 'next' | 'again', result: string[] }>([
    { name: 'a refused reserve (a stale view) moves on to the next candidate', reserve: 'refused', commit: 'none', then: 'next', result: ['refused'] },
    { name: 'a reserve never sent moves on: the node took nothing', reserve: 'unsent', commit: 'none', then: 'next', result: ['unreachable'] },
    { name: 'a lost reserve answer with a taken commit is a placement', reserve: 'lost', commit: 'ok', then: 'placed', result: [] },
    { name: 'a lost reserve answer and a commit that found no lease moves on', reserve: 'lost', commit: 'no-lease', then: 'next', result: ['unreachable'] },
    { name: 'a lost reserve answer and a lost commit answer asks the commit again', reserve: 'lost', commit: 'lost', then: 'again', result: [] },
    { name: 'a granted reserve and a lost commit answer asks the commit again', reserve: 'ok', commit: 'lost', then: 'again', result: ['reserved'] },
    { name: 'a granted reserve and a refused commit (its lease expired) moves on', reserve: 'ok', commit: 'no-lease', then: 'next', result: ['reserved', 'commit-failed'] }
  ])('$name', ({ reserve, commit, then, result }) => {
    const { a } = attempt([makeNode({ tag: 'A' }), makeNode({ tag: 'B', used: { cpu: 4, memMiB: 0 } })])
    const [first] = sends(a.start())
    const steps: AttemptStep[] = []
    if (reserve === 'ok') steps.push(a.answer(first.leaseId, 'reserve', ok, 1))
    if (reserve === 'refused') steps.push(a.answer(first.leaseId, 'reserve', no('not enough free capacity'), 1))
    if (reserve === 'unsent') steps.push(a.failed(first.leaseId, 'reserve', true, 'DialError', 1))
    if (reserve === 'lost') steps.push(a.failed(first.leaseId, 'reserve', false, 'StreamResetError', 1))
    if (commit === 'ok') steps.push(a.answer(first.leaseId, 'commit', created, 2))
    if (commit === 'no-lease') steps.push(a.answer(first.leaseId, 'commit', no('no such reservation'), 2))
    if (commit === 'lost') steps.push(a.failed(first.leaseId, 'commit', false, 'StreamResetError', 2))
    expect(steps.flatMap(s => s.results)).toEqual(result)
    const last = steps[steps.length - 1]
    if (then === 'placed') expect(last.outcome).toMatchObject({ kind: 'placed', node: first.node })
    if (then === 'next') {
      const next = sends(last)
      expect(next).toHaveLength(1)
      expect(next[0].node).not.toBe(first.node)
      expect(next[0].leaseId).not.toBe(first.leaseId)
      expect(ops(next[0])).toEqual(['reserve', 'commit'])
    }
    if (then === 'again') {
      const again = sends(last)
      expect(again).toEqual([{ kind: 'send', node: first.node, leaseId: first.leaseId, requests: [first.requests[1]] }])
    }
  })

  it('ignores the commit answer of a candidate it already left', () => {
    const { a } = attempt([makeNode({ tag: 'A' }), makeNode({ tag: 'B', used: { cpu: 4, memMiB: 0 } })])
    const [first] = sends(a.start())
    const next = sends(a.answer(first.leaseId, 'reserve', no('full'), 1))
    const late = a.answer(first.leaseId, 'commit', no('no such reservation'), 2)
    expect(late).toEqual({ commands: [], results: [] })
    expect(a.asking).toBe(next[0].node)
  })

  it('asks a lost commit again with pauses doubling from 100 ms to 2 s until the node answers', () => {
    const { a } = attempt([makeNode({ tag: 'A' })])
    const [first] = sends(a.start())
    a.answer(first.leaseId, 'reserve', ok, 0)
    let now = 0
    let step = a.failed(first.leaseId, 'commit', false, 'StreamResetError', now)
    const pauses: number[] = []
    for (let i = 0; i < 7; i++) {
      expect(sends(step)).toHaveLength(1)
      step = a.failed(first.leaseId, 'commit', false, 'PlaceTimeoutError', now)
      const wake = step.commands.find(c => c.kind === 'wake')
      if (wake?.kind !== 'wake') throw new Error('expected a wake')
      pauses.push(wake.atMs - now)
      now = wake.atMs
      step = a.wake()
    }
    expect(pauses).toEqual([100, 200, 400, 800, 1600, 2000, 2000].map(ms => Math.min(ms, COMMIT_RETRY_MAX_MS)))
    expect(pauses[0]).toBe(COMMIT_RETRY_FIRST_MS)
    const done = a.answer(first.leaseId, 'commit', created, now)
    expect(done.outcome).toMatchObject({ kind: 'placed', node: A, attempts: 1 })
  })

  it('ends uncertain, without trying another node, when the node answers no commit for two lease lifetimes', () => {
    const { a } = attempt([makeNode({ tag: 'A' }), makeNode({ tag: 'B', used: { cpu: 4, memMiB: 0 } })])
    const [first] = sends(a.start())
    a.answer(first.leaseId, 'reserve', ok, 0)
    let now = 0
    let step = a.failed(first.leaseId, 'commit', false, 'StreamResetError', now)
    let tries = 1
    while (step.outcome == null) {
      expect(sends(step).every(s => s.node === first.node)).toBe(true)
      step = a.failed(first.leaseId, 'commit', false, 'PlaceTimeoutError', now)
      const wake = step.commands.find(c => c.kind === 'wake')
      if (wake?.kind === 'wake') {
        now = wake.atMs
        step = a.wake()
        tries++
      }
    }
    expect(step.outcome).toMatchObject({ kind: 'uncertain', node: first.node })
    expect(now).toBeLessThanOrEqual(2 * TTL)
    expect(tries).toBeGreaterThan(5)
  })

  it('is refused with the reason when no node of the view can host the VM, without asking anyone', () => {
    const { a } = attempt([makeNode({ tag: 'A', capacity: { cpu: 1, memMiB: 16384 } }), makeNode({ tag: 'B', capacity: { cpu: 8, memMiB: 512 } })])
    const step = a.start()
    expect(step.commands).toEqual([])
    expect(step.outcome?.kind).toBe('no-capacity')
    expect(step.outcome).toMatchObject({ reason: expect.stringMatching(/no node can host 2 vCPU \/ 1024 MiB: of 2 live nodes, 1 lack CPU, 1 lack memory/), attempts: 0 })
  })

  it('is refused, naming each refusal, when every candidate of a stale view refuses', () => {
    const { a } = attempt([makeNode({ tag: 'A' }), makeNode({ tag: 'B' }), makeNode({ tag: 'C' })])
    let step = a.start()
    const asked: string[] = []
    while (step.outcome == null) {
      const [s] = sends(step)
      asked.push(s.node)
      step = a.answer(s.leaseId, 'reserve', no(`full ${asked.length}`), asked.length)
    }
    expect(new Set(asked)).toEqual(new Set([A, B, C]))
    expect(step.outcome).toMatchObject({ kind: 'no-capacity', attempts: 3, reason: expect.stringMatching(/no node accepted 2 vCPU \/ 1024 MiB: .*full 1.*full 2.*full 3/) })
  })

  it('counts capacity other creates hold in flight: a node they fill is not asked', () => {
    const inFlight = new InFlight()
    inFlight.hold(A, { cpu: 8, memMiB: 0 })
    const { a } = attempt([makeNode({ tag: 'A' }), makeNode({ tag: 'B', used: { cpu: 6, memMiB: 0 } })], { inFlight })
    expect(sends(a.start())[0].node).toBe(B)
  })

  it('draws the same order for the same seed, and spreads first asks over the candidates across seeds', () => {
    const nodes = ['A', 'B', 'C', 'D', 'E', 'F'].map(tag => makeNode({ tag }))
    const firstFor = (seed: number): string => sends(attempt(nodes, { seed }).a.start())[0].node
    expect(firstFor(7)).toBe(firstFor(7))
    const firsts = new Set(Array.from({ length: 60 }, (_, seed) => firstFor(seed)))
    expect(firsts.size).toBeGreaterThanOrEqual(4)
  })
})
