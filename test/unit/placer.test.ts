/**
 * The placement flow of one create, with in-memory nodes standing in for
 * peers: refusal → next candidate, unreachable → next, a lost commit answer
 * asked again until answered, 503 when nobody can host it. Each fake node owns a real Ledger
 * and, like a real owner, takes one peer's requests in the order they were sent.
 */
import { describe, expect, it } from 'vitest'
import { Ledger } from '../../src/core/ledger.ts'
import type { PlaceRequest, PlaceResponse } from '../../src/core/messages.ts'
import { seededRng } from '../../src/core/rng.ts'
import { Placer } from '../../src/agent/placer.ts'
import { makeNode, peerId } from './fixtures.ts'

interface Fake {
  ledger: Ledger
  /** Cannot be reached: requests never leave the placer (what the network layer reports as PlaceUnsentError). */
  down?: boolean
  loseCommitAnswers?: number
  /** Takes this many reserves but their answers (and that of anything behind them) are lost. */
  loseReserveAnswers?: number
  /** Drops this many reserves, and the requests behind them, on the way: it takes nothing. */
  dropReserves?: number
  committed: string[]
  dropNext?: boolean
  loseNext?: boolean
}

function unsent (): Error {
  return Object.assign(new Error('not sent: DialError: connection refused'), { name: 'PlaceUnsentError', cause: Object.assign(new Error('connection refused'), { name: 'DialError' }) })
}

function cluster (specs: Array<{ tag: string, cpu: number, memMiB: number, viewUsedCpu?: number }>, seed = 1) {
  const fakes = new Map<string, Fake>()
  for (const s of specs) fakes.set(peerId(s.tag), { ledger: new Ledger({ cpu: s.cpu, memMiB: s.memMiB }), committed: [] })
  const attempts: string[] = []
  const sent: Array<{ to: string, op: string }> = []
  // A virtual clock: the placer's pauses between commit retries move it on.
  const clock = { ms: 0 }
  const placer = new Placer({
    // The view may be stale: it shows what `viewUsedCpu` says, not the ledger.
    nodes: () => specs.map(s => makeNode({ tag: s.tag, capacity: { cpu: s.cpu, memMiB: s.memMiB }, used: { cpu: s.viewUsedCpu ?? 0, memMiB: 0 } })),
    send: async (to: string, req: PlaceRequest): Promise<PlaceResponse> => {
      sent.push({ to, op: req.op })
      const f = fakes.get(to)!
      if (f.down === true) throw unsent()
      if (req.op === 'reserve') {
        if ((f.dropReserves ?? 0) > 0) {
          f.dropReserves!--
          f.dropNext = true
          throw Object.assign(new Error('stream reset'), { name: 'StreamResetError' })
        }
        const r = f.ledger.reserve(req.leaseId, req.resources, req.ttlMs, 0)
        if ((f.loseReserveAnswers ?? 0) > 0) {
          f.loseReserveAnswers!--
          f.loseNext = true
          throw Object.assign(new Error('stream reset'), { name: 'StreamResetError' })
        }
        return r.ok ? { v: 1, ok: true } : { v: 1, ok: false, reason: r.reason }
      }
      if (req.op === 'commit') {
        if (f.dropNext === true) {
          f.dropNext = false
          throw Object.assign(new Error('stream reset'), { name: 'StreamResetError' })
        }
        if (!f.committed.includes(req.vm.id)) {
          const r = f.ledger.commit(req.leaseId, req.vm.id, 0)
          if (!r.ok) return { v: 1, ok: false, reason: r.reason }
          f.committed.push(req.vm.id)
        }
        if ((f.loseCommitAnswers ?? 0) > 0 || f.loseNext === true) {
          if (f.loseNext === true) f.loseNext = false
          else f.loseCommitAnswers!--
          throw Object.assign(new Error('stream reset'), { name: 'StreamResetError' })
        }
        return { v: 1, ok: true, state: 'creating' }
      }
      return { v: 1, ok: true }
    },
    rng: seededRng(seed),
    sample: 2,
    leaseTtlMs: 10_000,
    clock: { now: () => clock.ms },
    sleep: async (ms) => { clock.ms += ms },
    onAttempt: (r) => { attempts.push(r) }
  })
  return { placer, fakes, attempts, sent, clock }
}

describe('Placer', () => {
  it('places on a candidate and commits there', async () => {
    const { placer, fakes } = cluster([{ tag: 'A', cpu: 4, memMiB: 4096 }, { tag: 'B', cpu: 4, memMiB: 4096 }])
    const placed = await placer.place({ cpu: 2, memMiB: 1024 })
    expect(placed.id).toMatch(/^vm-[0-9a-f]{12}$/)
    const host = fakes.get(placed.node)!
    expect(host.committed).toEqual([placed.id])
    expect(host.ledger.used).toEqual({ cpu: 2, memMiB: 1024 })
    expect(host.ledger.reserved).toEqual({ cpu: 0, memMiB: 0 })
  })

  it('tries the next candidate when a stale view made it ask a full node', async () => {
    // The view says A and B are empty; in fact A is full.
    const { placer, fakes, attempts } = cluster([{ tag: 'A', cpu: 4, memMiB: 4096 }, { tag: 'B', cpu: 4, memMiB: 4096 }])
    fakes.get(peerId('A'))!.ledger.addVm('vm-existing01', { cpu: 4, memMiB: 0 })
    const results = await Promise.all([1, 2, 3, 4].map(async () => await placer.place({ cpu: 1, memMiB: 1 })))
    expect(results.every(r => r.node === peerId('B'))).toBe(true)
    expect(attempts.filter(a => a === 'refused').length).toBeGreaterThan(0)
    expect(fakes.get(peerId('A'))!.ledger.used.cpu).toBe(4)
    expect(fakes.get(peerId('B'))!.ledger.used.cpu).toBe(4)
  })

  it('skips an unreachable candidate', async () => {
    for (let seed = 1; seed <= 10; seed++) {
      const { placer, fakes, attempts } = cluster([{ tag: 'A', cpu: 4, memMiB: 4096 }, { tag: 'B', cpu: 4, memMiB: 4096 }], seed)
      fakes.get(peerId('A'))!.down = true
      const placed = await placer.place({ cpu: 1, memMiB: 1 })
      expect(placed.node, `seed ${seed}`).toBe(peerId('B'))
      expect(attempts.filter(a => a === 'unreachable').length).toBeLessThanOrEqual(1)
    }
  })

  it('retries a commit whose answer was lost, without placing the VM twice', async () => {
    const { placer, fakes, sent } = cluster([{ tag: 'A', cpu: 4, memMiB: 4096 }])
    fakes.get(peerId('A'))!.loseCommitAnswers = 1
    const placed = await placer.place({ cpu: 1, memMiB: 1 })
    expect(placed.node).toBe(peerId('A'))
    expect(sent.filter(s => s.op === 'commit')).toHaveLength(2)
    expect(fakes.get(peerId('A'))!.committed).toEqual([placed.id])
    expect(fakes.get(peerId('A'))!.ledger.used.cpu).toBe(1)
  })

  it('sends the commit right behind its reserve, and a refused reserve leaves it nothing to commit', async () => {
    const { placer, fakes, sent } = cluster([{ tag: 'A', cpu: 4, memMiB: 4096 }, { tag: 'B', cpu: 4, memMiB: 4096 }])
    fakes.get(peerId('A'))!.ledger.addVm('vm-existing01', { cpu: 4, memMiB: 0 })
    fakes.get(peerId('B'))!.ledger.addVm('vm-existing02', { cpu: 3, memMiB: 0 })
    const placed = await placer.place({ cpu: 1, memMiB: 1 })
    expect(placed.node).toBe(peerId('B'))
    // Per node: reserve, then commit, each pair sent before any answer came back.
    for (const node of [peerId('A'), peerId('B')]) expect(sent.filter(s => s.to === node).map(s => s.op)).toEqual(['reserve', 'commit'])
    expect(fakes.get(peerId('A'))!.committed).toEqual([])
    expect(fakes.get(peerId('A'))!.ledger.reserved).toEqual({ cpu: 0, memMiB: 0 })
    expect(fakes.get(peerId('B'))!.committed).toEqual([placed.id])
  })

  it('finds out by asking again when a reserve answer is lost after the node took both requests', async () => {
    const { placer, fakes, sent } = cluster([{ tag: 'A', cpu: 4, memMiB: 4096 }])
    fakes.get(peerId('A'))!.loseReserveAnswers = 1
    const placed = await placer.place({ cpu: 1, memMiB: 1 })
    expect(placed.node).toBe(peerId('A'))
    expect(sent.map(s => s.op)).toEqual(['reserve', 'commit', 'commit'])
    expect(fakes.get(peerId('A'))!.committed).toEqual([placed.id])
    expect(fakes.get(peerId('A'))!.ledger.used.cpu).toBe(1)
  })

  it('moves on when a reserve was lost before the node took it, without placing anything there', async () => {
    const { placer, fakes, sent } = cluster([{ tag: 'A', cpu: 4, memMiB: 4096 }, { tag: 'B', cpu: 4, memMiB: 4096, viewUsedCpu: 2 }], 3)
    fakes.get(peerId('A'))!.dropReserves = 1
    const placed = await placer.place({ cpu: 1, memMiB: 1 })
    expect(placed.node).toBe(peerId('B'))
    // A first (least loaded): its commit asked again, answered "no such reservation".
    expect(sent.filter(s => s.to === peerId('A')).map(s => s.op)).toEqual(['reserve', 'commit', 'commit'])
    expect(fakes.get(peerId('A'))!.committed).toEqual([])
    expect(fakes.get(peerId('A'))!.ledger.used.cpu).toBe(0)
  })

  it('keeps asking a commit whose answers are lost, with growing pauses, until the node answers', async () => {
    const { placer, fakes, sent, clock } = cluster([{ tag: 'A', cpu: 4, memMiB: 4096 }])
    fakes.get(peerId('A'))!.loseCommitAnswers = 4
    const placed = await placer.place({ cpu: 1, memMiB: 1 })
    expect(placed.node).toBe(peerId('A'))
    expect(sent.filter(s => s.op === 'commit')).toHaveLength(5)
    // The first went right behind the reserve; the second at once; then pauses of 100, 200 and 400 ms.
    expect(clock.ms).toBe(700)
    expect(fakes.get(peerId('A'))!.committed).toEqual([placed.id])
    expect(fakes.get(peerId('A'))!.ledger.used.cpu).toBe(1)
  })

  it('reports an uncertain placement only when the node answers no commit for two leases\' lifetimes', async () => {
    const { placer, fakes, sent, clock } = cluster([{ tag: 'A', cpu: 4, memMiB: 4096 }, { tag: 'B', cpu: 4, memMiB: 4096, viewUsedCpu: 3 }])
    fakes.get(peerId('A'))!.loseCommitAnswers = Infinity
    await expect(placer.place({ cpu: 1, memMiB: 1 })).rejects.toMatchObject({ name: 'PlacementUncertainError', message: expect.stringMatching(/did not answer \d+ commits in 20 s/) })
    expect(sent.filter(s => s.op === 'commit').length).toBeGreaterThan(5)
    expect(clock.ms).toBeLessThanOrEqual(20_000)
    // It did not go on to B: A may hold the VM.
    expect(sent.some(s => s.to === peerId('B'))).toBe(false)
  })

  it.each([
    ['nobody has the room in the view', [{ tag: 'A', cpu: 2, memMiB: 4096 }], /no node can host 4 vCPU/],
    ['the view is stale and every candidate refuses', [{ tag: 'A', cpu: 8, memMiB: 4096, full: true }, { tag: 'B', cpu: 8, memMiB: 4096, full: true }], /no node accepted 4 vCPU.*not enough free capacity/]
  ])('fails with NoCapacityError when %s', async (_, specs, message) => {
    const { placer, fakes } = cluster(specs)
    for (const s of specs) if ((s as { full?: boolean }).full === true) fakes.get(peerId(s.tag))!.ledger.addVm('vm-filler0001', { cpu: 8, memMiB: 0 })
    await expect(placer.place({ cpu: 4, memMiB: 1024 })).rejects.toMatchObject({ name: 'NoCapacityError', message: expect.stringMatching(message) })
  })
})
