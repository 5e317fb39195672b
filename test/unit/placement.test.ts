import { describe, expect, it } from 'vitest'
import type { NodeState } from '../../src/core/messages.ts'
import { arraySource, CandidateOrder, explainNoCandidate, filterCandidates, rankCandidates, type Candidate, type FilterResult, type PlacementRequest, type RejectReason } from '../../src/core/placement.ts'
import type { Resources } from '../../src/core/resources.ts'
import { seededRng } from '../../src/core/rng.ts'
import { makeNode, makeVm, peerId } from './fixtures.ts'

const r = (cpu: number, memMiB: number): Resources => ({ cpu, memMiB })
const none: Record<RejectReason, number> = { cpu: 0, memory: 0, labels: 0, zone: 0, spread: 0 }
const ids = (cs: readonly Candidate[]) => cs.map(c => c.peerId)

describe('filterCandidates', () => {
  it.each<{ name: string, nodes: NodeState[], req: PlacementRequest, accepted: string[], rejected: Partial<Record<RejectReason, number>> }>([
    {
      name: 'an empty node takes a VM that fits',
      nodes: [makeNode({ tag: 'A', capacity: r(4, 4096) })],
      req: { resources: r(4, 4096) },
      accepted: ['A'],
      rejected: {}
    },
    {
      name: 'used and reserved both count',
      nodes: [
        makeNode({ tag: 'A', capacity: r(4, 4096), used: r(2, 1024), reserved: r(1, 1024) }),
        makeNode({ tag: 'B', capacity: r(4, 4096), used: r(2, 1024), reserved: r(2, 1024) })
      ],
      req: { resources: r(1, 2048) },
      accepted: ['A'],
      rejected: { cpu: 1 }
    },
    {
      name: 'memory is never over-committed, whatever the CPU ratio',
      nodes: [makeNode({ tag: 'A', capacity: r(4, 4096), cpuOvercommit: 4, used: r(0, 3072) })],
      req: { resources: r(1, 1025) },
      accepted: [],
      rejected: { memory: 1 }
    },
    {
      name: 'CPU over-commit lets a node promise ratio × its vCPUs',
      nodes: [
        makeNode({ tag: 'A', capacity: r(4, 8192), cpuOvercommit: 2, used: r(4, 1024) }),
        makeNode({ tag: 'B', capacity: r(4, 8192), cpuOvercommit: 1, used: r(4, 1024) })
      ],
      req: { resources: r(4, 1024) },
      accepted: ['A'],
      rejected: { cpu: 1 }
    },
    {
      name: 'CPU over-commit has its limit',
      nodes: [makeNode({ tag: 'A', capacity: r(4, 8192), cpuOvercommit: 2, used: r(4, 1024) })],
      req: { resources: r(5, 1024) },
      accepted: [],
      rejected: { cpu: 1 }
    },
    {
      name: 'a node short of both counts as short of memory',
      nodes: [makeNode({ tag: 'A', capacity: r(1, 1024) })],
      req: { resources: r(2, 2048) },
      accepted: [],
      rejected: { memory: 1 }
    },
    {
      name: 'labels: every asked label must match',
      nodes: [
        makeNode({ tag: 'A', labels: { gpu: 'yes', disk: 'ssd' } }),
        makeNode({ tag: 'B', labels: { gpu: 'yes' } }),
        makeNode({ tag: 'C', labels: { gpu: 'no', disk: 'ssd' } }),
        makeNode({ tag: 'D', labels: {} })
      ],
      req: { resources: r(1, 512), constraints: { labels: { gpu: 'yes', disk: 'ssd' } } },
      accepted: ['A'],
      rejected: { labels: 3 }
    },
    {
      name: 'labels: extra node labels do not matter',
      nodes: [makeNode({ tag: 'A', labels: { gpu: 'yes', rack: 'r12', zone: 'z1' } })],
      req: { resources: r(1, 512), constraints: { labels: { gpu: 'yes' } } },
      accepted: ['A'],
      rejected: {}
    },
    {
      name: 'zone: the node label `zone` must equal it',
      nodes: [
        makeNode({ tag: 'A', labels: { zone: 'paris-1' } }),
        makeNode({ tag: 'B', labels: { zone: 'paris-2' } }),
        makeNode({ tag: 'C', labels: {} })
      ],
      req: { resources: r(1, 512), constraints: { zone: 'paris-1' } },
      accepted: ['A'],
      rejected: { zone: 2 }
    },
    {
      name: 'spread: a node running a VM of the group is out',
      nodes: [
        makeNode({ tag: 'A', vms: [makeVm({ spread: 'web' })] }),
        makeNode({ tag: 'B', vms: [makeVm({ spread: 'db' }), makeVm()] }),
        makeNode({ tag: 'C', vms: [] })
      ],
      req: { resources: r(1, 512), constraints: { spread: 'web' } },
      accepted: ['B', 'C'],
      rejected: { spread: 1 }
    },
    {
      name: 'spread: a deleted VM of the group does not count, any other state does',
      nodes: [
        makeNode({ tag: 'A', vms: [makeVm({ spread: 'web', state: 'deleted' })] }),
        makeNode({ tag: 'B', vms: [makeVm({ spread: 'web', state: 'stopped' })] }),
        makeNode({ tag: 'C', vms: [makeVm({ spread: 'web', state: 'creating' })] }),
        makeNode({ tag: 'D', vms: [makeVm({ spread: 'web', state: 'migrating' })] })
      ],
      req: { resources: r(1, 512), constraints: { spread: 'web' } },
      accepted: ['A'],
      rejected: { spread: 3 }
    },
    {
      name: 'each node is counted under the first reason that turns it down',
      nodes: [
        makeNode({ tag: 'A', capacity: r(1, 512), labels: { zone: 'z2', gpu: 'no' } }),
        makeNode({ tag: 'B', capacity: r(1, 512), labels: { zone: 'z1', gpu: 'no' } }),
        makeNode({ tag: 'C', capacity: r(1, 512), labels: { zone: 'z1', gpu: 'yes' }, vms: [makeVm({ spread: 'g' })] }),
        makeNode({ tag: 'D', capacity: r(1, 512), labels: { zone: 'z1', gpu: 'yes' } }),
        makeNode({ tag: 'E', capacity: r(2, 512), labels: { zone: 'z1', gpu: 'yes' } }),
        makeNode({ tag: 'F', capacity: r(2, 4096), labels: { zone: 'z1', gpu: 'yes' } })
      ],
      req: { resources: r(2, 1024), constraints: { zone: 'z1', labels: { gpu: 'yes' }, spread: 'g' } },
      accepted: ['F'],
      rejected: { zone: 1, labels: 1, spread: 1, memory: 2 }
    }
  ])('$name', ({ nodes, req, accepted, rejected }) => {
    const result = filterCandidates(nodes, req)
    expect(ids(result.candidates)).toEqual(accepted.map(peerId))
    expect(result.rejected).toEqual({ ...none, ...rejected })
    expect(result.considered).toBe(nodes.length)
  })

  it('subtracts what this agent has in flight, per node', () => {
    const nodes = [
      makeNode({ tag: 'A', capacity: r(4, 4096) }),
      makeNode({ tag: 'B', capacity: r(4, 4096) }),
      makeNode({ tag: 'C', capacity: r(4, 4096) })
    ]
    const inFlight = new Map([[peerId('A'), r(3, 1024)], [peerId('B'), r(1, 3584)]])
    const result = filterCandidates(nodes, { resources: r(2, 1024) }, inFlight)
    expect(ids(result.candidates)).toEqual([peerId('C')])
    expect(result.rejected).toEqual({ ...none, cpu: 1, memory: 1 })
    // Without the in-flight map all three fit.
    expect(filterCandidates(nodes, { resources: r(2, 1024) }).candidates).toHaveLength(3)
  })

  it.each<{ node: NodeState, inFlight: Resources | undefined, free: Resources, loadAfter: number }>([
    { node: makeNode({ tag: 'A', capacity: r(8, 8192) }), inFlight: undefined, free: r(8, 8192), loadAfter: 0.25 },
    { node: makeNode({ tag: 'A', capacity: r(8, 8192), used: r(2, 4096), reserved: r(2, 0) }), inFlight: undefined, free: r(4, 4096), loadAfter: 0.75 },
    { node: makeNode({ tag: 'A', capacity: r(8, 8192), used: r(2, 0) }), inFlight: r(2, 2048), free: r(4, 6144), loadAfter: 0.75 },
    // Over-committed CPU: the share is of ratio × vCPUs.
    { node: makeNode({ tag: 'A', capacity: r(8, 65536), cpuOvercommit: 2, used: r(10, 0) }), inFlight: undefined, free: r(6, 65536), loadAfter: 0.75 }
  ])('reports free $free and loadAfter $loadAfter for a 2 vCPU / 2048 MiB VM', ({ node, inFlight, free, loadAfter }) => {
    const map = new Map(inFlight == null ? [] : [[node.peerId, inFlight]])
    const [c] = filterCandidates([node], { resources: r(2, 2048) }, map).candidates
    expect(c).toEqual({ peerId: node.peerId, free, loadAfter })
  })

  it('takes any iterable of nodes and counts none when given none', () => {
    const result = filterCandidates(new Set<NodeState>(), { resources: r(1, 1) })
    expect(result).toEqual({ candidates: [], rejected: none, considered: 0 })
  })
})

/** Candidates with distinct loads 0.05, 0.10, … so the order is unambiguous. */
function pool (n: number): Candidate[] {
  const tags = 'ABCDEFGHJKMNPQRSTUVWXYZ'
  return Array.from({ length: n }, (_, i) => ({ peerId: peerId(tags[i]), free: r(1, 1), loadAfter: (n - i) / 20 }))
}

function isSortedByLoad (cs: readonly Candidate[]): boolean {
  return cs.every((c, i) => i === 0 || cs[i - 1].loadAfter <= c.loadAfter)
}

describe('rankCandidates', () => {
  it.each<{ n: number, d: number, seed: number }>([
    { n: 10, d: 2, seed: 1 },
    { n: 10, d: 2, seed: 99 },
    { n: 10, d: 3, seed: 7 },
    { n: 5, d: 1, seed: 3 },
    { n: 2, d: 2, seed: 5 },
    { n: 1, d: 2, seed: 11 },
    { n: 3, d: 10, seed: 13 },
    { n: 6, d: 0, seed: 17 }
  ])('n=$n d=$d (seed $seed): every candidate exactly once, sample then rest, each sorted', ({ n, d, seed }) => {
    const candidates = pool(n)
    const ranked = rankCandidates(candidates, seededRng(seed), d)
    expect(ranked).toHaveLength(n)
    expect(new Set(ids(ranked))).toEqual(new Set(ids(candidates)))
    const k = Math.min(d, n)
    expect(isSortedByLoad(ranked.slice(0, k))).toBe(true)
    expect(isSortedByLoad(ranked.slice(k))).toBe(true)
  })

  it('with d at least the pool size, or d = 0, the whole list is sorted by load', () => {
    const candidates = pool(4)
    const sorted = [...candidates].sort((a, b) => a.loadAfter - b.loadAfter)
    for (const d of [0, 4, 5, 100]) {
      expect(ids(rankCandidates(candidates, seededRng(3), d))).toEqual(ids(sorted))
    }
  })

  it('is deterministic for a seed', () => {
    const candidates = pool(12)
    for (const seed of [1, 2, 3, 1234]) {
      expect(rankCandidates(candidates, seededRng(seed), 3)).toEqual(rankCandidates(candidates, seededRng(seed), 3))
    }
  })

  it('different seeds sample different candidates', () => {
    const candidates = pool(12)
    const firsts = new Set<string>()
    for (let seed = 0; seed < 50; seed++) firsts.add(rankCandidates(candidates, seededRng(seed), 2)[0].peerId)
    expect(firsts.size).toBeGreaterThan(3)
  })

  it('samples: the least loaded candidate leads about d/n of the time, the most loaded never (seeds 0..1999)', () => {
    const candidates = pool(10)
    const least = candidates[9].peerId
    const most = candidates[0].peerId
    let leastFirst = 0
    let mostFirst = 0
    const runs = 2000
    for (let seed = 0; seed < runs; seed++) {
      const first = rankCandidates(candidates, seededRng(seed), 2)[0].peerId
      if (first === least) leastFirst++
      if (first === most) mostFirst++
    }
    expect(leastFirst / runs).toBeGreaterThan(0.15)
    expect(leastFirst / runs).toBeLessThan(0.25)
    expect(mostFirst).toBe(0)
  })

  it('breaks load ties by peer id', () => {
    const candidates = ['C', 'A', 'B'].map(t => ({ peerId: peerId(t), free: r(1, 1), loadAfter: 0.5 }))
    expect(ids(rankCandidates(candidates, seededRng(1), 0))).toEqual(['A', 'B', 'C'].map(peerId))
  })

  it('returns an empty list for no candidates, and leaves its input alone', () => {
    expect(rankCandidates([], seededRng(1), 2)).toEqual([])
    const candidates = pool(5)
    const before = ids(candidates)
    rankCandidates(candidates, seededRng(1), 2)
    expect(ids(candidates)).toEqual(before)
  })
})

describe('explainNoCandidate', () => {
  const req: PlacementRequest = { resources: r(4, 8192) }
  const result = (rejected: Partial<Record<RejectReason, number>>, considered: number): FilterResult => ({ candidates: [], rejected: { ...none, ...rejected }, considered })

  it.each<{ name: string, rejected: Partial<Record<RejectReason, number>>, considered: number, says: string[], not: string[] }>([
    { name: 'no live node at all', rejected: {}, considered: 0, says: ['no live node is known to host 4 vCPU / 8192 MiB'], not: ['of 0', 'lack'] },
    { name: 'all short of CPU', rejected: { cpu: 3 }, considered: 3, says: ['no node can host 4 vCPU / 8192 MiB', 'of 3 live nodes', '3 lack CPU'], not: ['lack memory', 'zone', 'spread', 'labels'] },
    { name: 'short of memory and of CPU', rejected: { memory: 2, cpu: 1 }, considered: 3, says: ['of 3 live nodes', '2 lack memory', '1 lack CPU'], not: ['zone', 'labels', 'spread'] },
    { name: 'wrong zone and labels', rejected: { zone: 4, labels: 1 }, considered: 5, says: ['of 5 live nodes', '4 do not match its zone', '1 do not match its labels'], not: ['lack CPU', 'lack memory', 'spread'] },
    { name: 'spread group and memory', rejected: { spread: 2, memory: 1 }, considered: 3, says: ['2 already run its spread group', '1 lack memory'], not: ['lack CPU', 'zone', 'labels'] }
  ])('$name: names the counts', ({ rejected, considered, says, not }) => {
    const text = explainNoCandidate(req, result(rejected, considered))
    for (const s of says) expect(text).toContain(s)
    for (const s of not) expect(text).not.toContain(s)
  })

  it('explains a real filter result', () => {
    const nodes = [
      makeNode({ tag: 'A', capacity: r(2, 16384) }),
      makeNode({ tag: 'B', capacity: r(8, 4096) }),
      makeNode({ tag: 'C', labels: { zone: 'z9' } })
    ]
    const request: PlacementRequest = { resources: r(4, 8192), constraints: { zone: 'z1' } }
    const text = explainNoCandidate(request, filterCandidates(nodes, request))
    expect(text).toBe('no node can host 4 vCPU / 8192 MiB: of 3 live nodes, 3 do not match its zone')
  })
})

describe('idle nodes (emptied by consolidation)', () => {
  it('ranks them after every active node, whatever the sample', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const nodes = [
        makeNode({ tag: 'A', idle: true }),
        makeNode({ tag: 'B', used: { cpu: 6, memMiB: 0 } }),
        makeNode({ tag: 'C', idle: true }),
        makeNode({ tag: 'D', used: { cpu: 7, memMiB: 0 } })
      ]
      const { candidates } = filterCandidates(nodes, { resources: { cpu: 1, memMiB: 1 } })
      const order = rankCandidates(candidates, seededRng(seed), 2).map(c => c.peerId)
      expect(order.slice(2).sort(), `seed ${seed}`).toEqual([peerId('A'), peerId('C')])
    }
  })
})

describe('CandidateOrder', () => {
  const req = { resources: r(1, 1024) }
  /** Every candidate in the order asked. */
  const drain = (o: CandidateOrder): string[] => {
    const out: string[] = []
    for (let c = o.next(); c != null; c = o.next()) out.push(c.peerId)
    return out
  }
  const zoned = (tag: string, zone: string | undefined, usedCpu = 0, extra: Partial<NodeState> = {}): NodeState =>
    makeNode({ tag, capacity: r(8, 16384), used: r(usedCpu, usedCpu * 1024), labels: zone != null ? { zone } : {}, ...extra })
  const RTT: Record<string, number> = { [peerId('L1')]: 25, [peerId('L2')]: 26, [peerId('M1')]: 40, [peerId('N1')]: 3, [peerId('P2')]: 2 }
  const rttMs = (p: string): number | undefined => RTT[p]

  it.each<{ seed: number, n: number, d: number }>([
    { seed: 1, n: 10, d: 2 }, { seed: 2, n: 3, d: 2 }, { seed: 3, n: 40, d: 3 }, { seed: 4, n: 1, d: 2 }
  ])('without locality: every candidate once, the sample first, each part least loaded first (seed $seed, $n nodes, d $d)', ({ seed, n, d }) => {
    const nodes = Array.from({ length: n }, (_, i) => zoned(`Q${'ABCDEFGHJK'[i % 10]}${'ABCDEFGHJK'[Math.floor(i / 10)]}`, 'paris', i % 7))
    const order = drain(new CandidateOrder(arraySource(nodes), req, new Map(), seededRng(seed), d))
    expect([...order].sort()).toEqual(nodes.map(x => x.peerId).sort())
    const load = (id: string): number => nodes.find(x => x.peerId === id)!.used.cpu
    const k = Math.min(d, n)
    for (const part of [order.slice(0, k), order.slice(k)]) expect(part.map(load)).toEqual([...part.map(load)].sort((a, b) => a - b))
  })

  it.each<{ name: string, zone: string | undefined, nodes: NodeState[], expected: string[], constraints?: { zone?: string } }>([
    {
      name: 'the requester\'s zone first, then the other zones nearest first, each least loaded first',
      zone: 'paris',
      nodes: [zoned('M1', 'marseille'), zoned('L1', 'lyon', 3), zoned('P1', 'paris', 2), zoned('L2', 'lyon', 1), zoned('P2', 'paris', 5)],
      expected: ['P1', 'P2', 'L2', 'L1', 'M1']
    },
    {
      name: 'a node of the zone that lacks room is not asked: the others of the zone are, first',
      zone: 'paris',
      nodes: [zoned('L1', 'lyon'), zoned('P1', 'paris', 8), zoned('P2', 'paris', 6)],
      expected: ['P2', 'L1']
    },
    {
      name: 'no room in the zone: the nearest zone',
      zone: 'paris',
      nodes: [zoned('M1', 'marseille'), zoned('L1', 'lyon'), zoned('P1', 'paris', 8)],
      expected: ['L1', 'M1']
    },
    {
      name: 'a zone is as near as its nearest node measured; zones never measured come last, together, least loaded first',
      zone: 'paris',
      nodes: [zoned('X1', 'oslo', 2), zoned('M1', 'marseille'), zoned('Y1', 'rome', 1), zoned('L1', 'lyon'), zoned('X2', 'oslo', 3)],
      expected: ['L1', 'M1', 'Y1', 'X1', 'X2']
    },
    {
      name: 'nodes with no zone are one zone, as near as its nearest node',
      zone: 'paris',
      nodes: [zoned('L1', 'lyon'), zoned('N1', undefined, 4), zoned('N2', undefined)],
      expected: ['N2', 'N1', 'L1']
    },
    {
      name: 'a VM that asks for a zone gets only that zone, whatever the requester\'s',
      zone: 'paris',
      nodes: [zoned('L1', 'lyon', 2), zoned('P1', 'paris'), zoned('L2', 'lyon')],
      constraints: { zone: 'lyon' },
      expected: ['L2', 'L1']
    },
    {
      name: 'nodes emptied by consolidation come last within their zone, not after the far zones',
      zone: 'paris',
      nodes: [zoned('P1', 'paris', 0, { idle: true }), zoned('L1', 'lyon'), zoned('P2', 'paris', 7)],
      expected: ['P2', 'P1', 'L1']
    }
  ])('$name', ({ zone, nodes, expected, constraints }) => {
    const order = new CandidateOrder(arraySource(nodes), { ...req, ...(constraints != null ? { constraints } : {}) }, new Map(), seededRng(1), nodes.length, { zone, rttMs })
    expect(drain(order)).toEqual(expected.map(peerId))
  })

  it('with the power of two choices, each zone is still asked whole before the next', () => {
    const nodes = [...Array.from({ length: 6 }, (_, i) => zoned(`P${'ABCDEF'[i]}`, 'paris', i)), zoned('L1', 'lyon'), zoned('L2', 'lyon'), zoned('M1', 'marseille')]
    for (let seed = 1; seed <= 20; seed++) {
      const order = drain(new CandidateOrder(arraySource(nodes), req, new Map(), seededRng(seed), 2, { zone: 'paris', rttMs }))
      expect(order.slice(0, 6).every(id => id.startsWith(peerId('P'))), `seed ${seed}`).toBe(true)
      expect(new Set(order.slice(6, 8))).toEqual(new Set([peerId('L1'), peerId('L2')]))
      expect(order[8]).toBe(peerId('M1'))
    }
  })

  it.each([1, 2, 3, 4, 5, 6, 7, 8])('with near nodes (a restart): the first d drawn among those that fit, then every other node (seed %i)', (seed) => {
    const nodes = Array.from({ length: 12 }, (_, i) => zoned(`R${'ABCDEFGHJKLM'[i]}`, undefined, i % 5))
    // Near: RA (load 0), RC (load 2), RE (load 4) and RF (load 0, but full for this VM: 8 vCPU used).
    nodes[5] = zoned('RF', undefined, 8)
    const near = new Set([peerId('RA'), peerId('RC'), peerId('RE'), peerId('RF')])
    const order = drain(new CandidateOrder(arraySource(nodes), req, new Map(), seededRng(seed), 2, undefined, near))
    expect(order.slice(0, 2).every(id => near.has(id) && id !== peerId('RF'))).toBe(true)
    const load = (id: string): number => nodes.find(x => x.peerId === id)!.used.cpu
    expect(load(order[0])).toBeLessThanOrEqual(load(order[1]))
    // Then every other node that fits, the near ones not drawn included, each once; the full one never.
    expect([...order].sort()).toEqual(nodes.filter(x => x.peerId !== peerId('RF')).map(x => x.peerId).sort())
  })

  it('with near nodes none of which fits, or none given: the usual sample over the whole view, draw for draw', () => {
    const nodes = [zoned('M1', undefined, 1), zoned('L1', undefined, 8), zoned('P1', undefined, 2), zoned('L2', undefined, 0)]
    for (let seed = 1; seed <= 10; seed++) {
      const plain = drain(new CandidateOrder(arraySource(nodes), req, new Map(), seededRng(seed), 2))
      expect(drain(new CandidateOrder(arraySource(nodes), req, new Map(), seededRng(seed), 2, undefined, new Set([peerId('L1')])))).toEqual(plain)
      expect(drain(new CandidateOrder(arraySource(nodes), req, new Map(), seededRng(seed), 2, undefined, new Set()))).toEqual(plain)
    }
  })

  it('a requester with no zone: the order without locality, draw for draw', () => {
    const nodes = [zoned('M1', 'marseille', 1), zoned('L1', 'lyon', 3), zoned('P1', 'paris', 2), zoned('L2', 'lyon', 0), zoned('P2', 'paris', 5)]
    for (let seed = 1; seed <= 10; seed++) {
      const plain = drain(new CandidateOrder(arraySource(nodes), req, new Map(), seededRng(seed), 2))
      const noZone = drain(new CandidateOrder(arraySource(nodes), req, new Map(), seededRng(seed), 2, { zone: undefined, rttMs }))
      expect(noZone).toEqual(plain)
    }
  })
})
