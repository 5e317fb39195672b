import { describe, expect, it } from 'vitest'
import { seededRng } from '../../src/core/rng.ts'
import { emptyStats, installDvms } from '../../src/sim/algorithms.ts'
import { EventQueue } from '../../src/sim/event-queue.ts'
import { LINKS, SimNetwork, type LinkModel } from '../../src/sim/network.ts'
import { runSimulation, type AlgorithmReport, type SimOptions, type SimReport } from '../../src/sim/run.ts'
import { drawDirtyIntensity, SCENARIOS } from '../../src/sim/scenarios.ts'
import { World } from '../../src/sim/world.ts'

describe('EventQueue', () => {
  /** Pushes `events` as [time, label], pops everything, returns the labels in pop order. */
  function popOrder (events: Array<[number, string]>): string[] {
    const q = new EventQueue()
    const out: string[] = []
    for (const [t, label] of events) q.push(t, () => { out.push(label) })
    expect(q.size).toBe(events.length)
    for (let e = q.pop(); e !== undefined; e = q.pop()) e.run()
    expect(q.size).toBe(0)
    return out
  }

  it.each([
    { name: 'nothing', events: [] as Array<[number, string]>, want: [] as string[] },
    { name: 'one', events: [[5, 'a']] as Array<[number, string]>, want: ['a'] },
    { name: 'by time', events: [[30, 'c'], [10, 'a'], [20, 'b']] as Array<[number, string]>, want: ['a', 'b', 'c'] },
    { name: 'equal times in insertion order', events: [[7, 'a'], [7, 'b'], [7, 'c'], [7, 'd']] as Array<[number, string]>, want: ['a', 'b', 'c', 'd'] },
    {
      name: 'time first, then insertion',
      events: [[2, 'x1'], [1, 'y1'], [2, 'x2'], [0, 'z'], [1, 'y2'], [2, 'x3'], [1, 'y3']] as Array<[number, string]>,
      want: ['z', 'y1', 'y2', 'y3', 'x1', 'x2', 'x3']
    },
    { name: 'fractional and zero times', events: [[0.5, 'b'], [0, 'a'], [0.25, 'ab'], [0.5, 'b2']] as Array<[number, string]>, want: ['a', 'ab', 'b', 'b2'] }
  ])('$name', ({ events, want }) => {
    expect(popOrder(events)).toEqual(want)
  })

  it.each([1, 2, 3, 99])('many events with repeated times pop as a stable sort by time (seed %d)', seed => {
    const rng = seededRng(seed)
    const events: Array<[number, string]> = Array.from({ length: 2000 }, (_, i) => [Math.floor(rng.next() * 50), `e${i}`])
    const stable = events.map((e, i) => ({ e, i })).sort((a, b) => a.e[0] - b.e[0] || a.i - b.i).map(x => x.e[1])
    expect(popOrder(events)).toEqual(stable)
  })

  it('peekTime, pop on empty, and events pushed while running', () => {
    const q = new EventQueue()
    expect(q.peekTime()).toBeUndefined()
    expect(q.pop()).toBeUndefined()
    const out: string[] = []
    q.push(10, () => {
      out.push('first@10')
      // Same time as events already queued: after them.
      q.push(10, () => { out.push('pushed@10') })
      q.push(5, () => { out.push('pushed@5') })
    })
    q.push(10, () => { out.push('second@10') })
    q.push(20, () => { out.push('@20') })
    expect(q.peekTime()).toBe(10)
    for (let e = q.pop(); e !== undefined; e = q.pop()) e.run()
    // A time in the past still comes first: the queue orders, it does not check.
    expect(out).toEqual(['first@10', 'pushed@5', 'second@10', 'pushed@10', '@20'])
  })

  it('each event carries its time and an increasing sequence number', () => {
    const q = new EventQueue()
    q.push(3, () => {})
    q.push(1, () => {})
    q.push(3, () => {})
    const popped = [q.pop()!, q.pop()!, q.pop()!]
    expect(popped.map(e => [e.atMs, e.seq])).toEqual([[1, 1], [3, 0], [3, 2]])
  })
})

describe('SimNetwork', () => {
  function network (link: LinkModel, seed = 1): { net: SimNetwork, queue: EventQueue } {
    const queue = new EventQueue()
    return { net: new SimNetwork(queue, seededRng(seed), link, () => 1000), queue }
  }

  it.each([
    { name: 'lan', link: LINKS.lan },
    { name: 'wan', link: LINKS.wan },
    { name: 'no jitter', link: { baseMs: 5, jitterMs: 0, loss: 0 } }
  ])('$name: every message arrives after base .. base + jitter, counted against the sender', ({ link }) => {
    const { net, queue } = network(link)
    for (let i = 0; i < 1000; i++) net.send(() => {})
    expect(net.sent).toBe(1000)
    expect(net.lost).toBe(0)
    expect(queue.size).toBe(1000)
    for (let e = queue.pop(); e !== undefined; e = queue.pop()) {
      expect(e.atMs - 1000).toBeGreaterThanOrEqual(link.baseMs)
      expect(e.atMs - 1000).toBeLessThanOrEqual(link.baseMs + link.jitterMs)
    }
  })

  it.each([
    { loss: 0, lo: 0, hi: 0 },
    { loss: 0.2, lo: 0.17, hi: 0.23 },
    { loss: 0.5, lo: 0.46, hi: 0.54 },
    { loss: 1, lo: 1, hi: 1 }
  ])('loss $loss: that share of messages never arrives', ({ loss, lo, hi }) => {
    const { net, queue } = network({ baseMs: 1, jitterMs: 1, loss })
    const n = 2000
    for (let i = 0; i < n; i++) net.send(() => {})
    expect(net.sent).toBe(n)
    expect(net.lost + queue.size).toBe(n)
    expect(net.lost / n).toBeGreaterThanOrEqual(lo)
    expect(net.lost / n).toBeLessThanOrEqual(hi)
  })

  it('the link profiles', () => {
    expect(LINKS.lan).toEqual({ baseMs: 0.1, jitterMs: 0.05, loss: 0 })
    expect(LINKS.wan.baseMs).toBeGreaterThanOrEqual(20)
    expect(LINKS.wan.loss).toBe(0)
  })
})

describe('SCENARIOS', () => {
  it.each([
    // VMPlaceS: 125 MB/s (1 Gbit/s) per migration, its five VM classes of 10–50 % dirty-page intensity.
    { name: 'vmplaces', consolidate: false, vmsPerHost: 10, bandwidthMiBps: 125e6 / 2 ** 20, dirtyIntensity: { lo: 0.1, hi: 0.5, classes: 5 } },
    { name: 'vmplaces-10g', consolidate: false, vmsPerHost: 10, bandwidthMiBps: 1250, dirtyIntensity: { lo: 0.3, hi: 0.3 } },
    { name: 'consolidation', consolidate: true, vmsPerHost: 4, bandwidthMiBps: 1250, dirtyIntensity: { lo: 0.3, hi: 0.3 } }
  ])('$name', ({ name, consolidate, vmsPerHost, bandwidthMiBps, dirtyIntensity }) => {
    const s = SCENARIOS[name]
    expect(s.name).toBe(name)
    expect(s.consolidate).toBe(consolidate)
    expect(s.vmsPerHost).toBe(vmsPerHost)
    expect(s.bandwidthMiBps).toBeCloseTo(bandwidthMiBps, 9)
    expect(s.dirtyIntensity).toEqual(dirtyIntensity)
    expect({ hostCpu: s.hostCpu, hostMemMiB: s.hostMemMiB, cpuOvercommit: s.cpuOvercommit, vmCpu: s.vmCpu, vmMemMiB: s.vmMemMiB }).toEqual({ hostCpu: 8, hostMemMiB: 32768, cpuOvercommit: 4, vmCpu: 1, vmMemMiB: 1024 })
  })

  it('vmplaces and vmplaces-10g share the demand trace: only the links differ', () => {
    expect(SCENARIOS.vmplaces.demand).toEqual(SCENARIOS['vmplaces-10g'].demand)
  })
})

describe('drawDirtyIntensity', () => {
  it.each([
    { name: 'fixed', d: { lo: 0.3, hi: 0.3 }, values: [0.3] },
    { name: 'five classes', d: { lo: 0.1, hi: 0.5, classes: 5 }, values: [0.1, 0.2, 0.3, 0.4, 0.5] },
    { name: 'two classes', d: { lo: 0, hi: 1, classes: 2 }, values: [0, 1] }
  ])('$name: only the class values, each drawn about as often', ({ d, values }) => {
    const seed = 11
    const rng = seededRng(seed)
    const counts = new Map<number, number>()
    for (let i = 0; i < 5000; i++) {
      const x = drawDirtyIntensity(rng, d)
      counts.set(x, (counts.get(x) ?? 0) + 1)
    }
    expect([...counts.keys()].sort((a, b) => a - b), `seed ${seed}`).toEqual(values)
    for (const n of counts.values()) expect(n / 5000).toBeGreaterThan(1 / values.length - 0.03)
  })

  it('uniform over the range', () => {
    const rng = seededRng(5)
    const xs = Array.from({ length: 5000 }, () => drawDirtyIntensity(rng, { lo: 0.1, hi: 0.5 }))
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0.1)
    expect(Math.max(...xs)).toBeLessThanOrEqual(0.5)
    expect(xs.reduce((a, b) => a + b, 0) / xs.length).toBeCloseTo(0.3, 1)
    expect(new Set(xs).size).toBeGreaterThan(1000)
  })
})

// ---------------------------------------------------------------------------
// Whole runs: 64 hosts, half an hour simulated, each well under a second.

function options (overrides: Partial<SimOptions> = {}): SimOptions {
  return {
    scenario: SCENARIOS.vmplaces,
    hosts: 64,
    vms: 640,
    durationS: 1800,
    seed: 1,
    link: { ...LINKS.lan },
    algorithms: ['none', 'centralized', 'dvms'],
    monitorMs: 1000,
    centralPeriodMs: 30_000,
    // The measured planning delay is wall-clock time: fixed, the run is reproducible.
    centralDelay: 500,
    ...overrides
  }
}

/** The report without what depends on the machine's speed. */
function reproducible (r: SimReport): unknown {
  return { ...r, results: r.results.map(({ wallS, centralComputeMeanMs, ...rest }) => rest) }
}

const memo = new Map<string, SimReport>()
function run (overrides: Partial<SimOptions> = {}): SimReport {
  const key = JSON.stringify(overrides)
  let r = memo.get(key)
  if (r === undefined) {
    r = runSimulation(options(overrides))
    memo.set(key, r)
  }
  return r
}

function result (r: SimReport, algorithm: AlgorithmReport['algorithm']): AlgorithmReport {
  const a = r.results.find(x => x.algorithm === algorithm)
  if (a === undefined) throw new Error(`no result for ${algorithm}`)
  return a
}

describe('runSimulation', () => {
  it('the report names the run and gives one result per algorithm, in order', () => {
    const r = run()
    expect(r).toMatchObject({ scenario: 'vmplaces', hosts: 64, vms: 640, durationS: 1800, seed: 1, link: LINKS.lan, centralDelay: 500 })
    expect(r.results.map(a => a.algorithm)).toEqual(['none', 'centralized', 'dvms'])
    const none = result(r, 'none')
    expect(none).toMatchObject({ migrations: 0, msgsPerNodePerS: 0, solved: 0, activeHosts: 64, planMeanMs: null })
    expect(none.overloadEvents).toBeGreaterThan(0)
  })

  it.each([1, 7])('is deterministic: seed %d twice gives the same report (but for wall-clock fields)', seed => {
    const a = runSimulation(options({ seed }))
    const b = runSimulation(options({ seed }))
    expect(reproducible(b)).toEqual(reproducible(a))
  })

  it('a different seed gives a different report', () => {
    const a = reproducible(run({ seed: 1 })) as { results: unknown[] }
    const b = reproducible(run({ seed: 2 })) as { results: unknown[] }
    expect(b.results).not.toEqual(a.results)
    // The demand trace itself differs: even `none` changes.
    expect(result(run({ seed: 2 }), 'none').overloadS).not.toBe(result(run({ seed: 1 }), 'none').overloadS)
  })

  it.each([1, 2, 3])('seed %d: dvms and centralized cut the cumulated overload time of none', seed => {
    const r = run({ seed })
    const none = result(r, 'none')
    const dvms = result(r, 'dvms')
    const central = result(r, 'centralized')
    expect(none.overloadS).toBeGreaterThan(0)
    expect(dvms.overloadS).toBeLessThan(none.overloadS)
    expect(central.overloadS).toBeLessThan(none.overloadS)
    expect(dvms.solved).toBeGreaterThan(0)
    expect(dvms.migrations).toBeGreaterThan(0)
    expect(central.migrations).toBeGreaterThan(0)
    // Cooperative rebalancing reacts within seconds, not a 30 s period.
    expect(dvms.overloadMeanS).toBeLessThan(central.overloadMeanS)
  })

  it('vmplaces (1 Gbit/s, dirty 10–50 %) and vmplaces-10g run on one trace: the same overloads without rebalancing, longer migrations on the slower links', () => {
    const slow = run()
    const fast = run({ scenario: SCENARIOS['vmplaces-10g'] })
    expect(result(slow, 'none')).toEqual({ ...result(fast, 'none'), wallS: result(slow, 'none').wallS })
    expect(slow.bandwidthMiBps).toBeCloseTo(119.21, 2)
    expect(fast.bandwidthMiBps).toBe(1250)
    const [s, f] = [result(slow, 'dvms'), result(fast, 'dvms')]
    expect(s.migrationMeanS!).toBeGreaterThan(5 * f.migrationMeanS!)
    expect(s.overloadMeanS).toBeGreaterThan(f.overloadMeanS)
  })

  it('consolidation: dvms and centralized end with fewer active hosts than none', () => {
    const r = run({ scenario: SCENARIOS.consolidation, vms: 256 })
    expect(r.scenario).toBe('consolidation')
    const none = result(r, 'none')
    expect(none.activeHosts).toBe(64)
    expect(result(r, 'dvms').activeHosts).toBeLessThan(none.activeHosts)
    expect(result(r, 'centralized').activeHosts).toBeLessThan(none.activeHosts)
  })

  it.each([
    { name: 'wan latency', link: LINKS.wan },
    { name: '20 % message loss', link: { ...LINKS.lan, loss: 0.2 } }
  ])('$name: the run ends with a full report', ({ link }) => {
    const r = run({ link })
    expect(r.link).toEqual(link)
    expect(r.results.map(a => a.algorithm)).toEqual(['none', 'centralized', 'dvms'])
    for (const a of r.results) {
      expect(Number.isFinite(a.overloadS)).toBe(true)
      expect(a.activeHosts).toBe(64)
    }
  })

  it('with 20 % message loss, DVMS events whose messages are lost end anyway (timeout or failed) instead of hanging', () => {
    const world = new World({ scenario: SCENARIOS.vmplaces, hosts: 64, vms: 640, seed: 1, link: { ...LINKS.lan, loss: 0.2 } })
    const stats = emptyStats()
    installDvms(world, stats, { monitorMs: 1000, centralPeriodMs: 30_000, centralDelay: 500, consolidate: false })
    world.run(1800 * 1000)
    expect(world.network.lost).toBeGreaterThan(0)
    expect(stats.failed).toBeGreaterThan(0)
    expect(stats.solved).toBeGreaterThan(0)
  })

  it('progress is reported per algorithm, from 0 to about 1', () => {
    const seen = new Map<string, number[]>()
    runSimulation(options({ durationS: 300, algorithms: ['none', 'dvms'] }), (algorithm, fraction) => {
      seen.set(algorithm, [...(seen.get(algorithm) ?? []), fraction])
    })
    expect([...seen.keys()]).toEqual(['none', 'dvms'])
    for (const fractions of seen.values()) {
      expect(fractions.length).toBeGreaterThan(1)
      expect(fractions).toEqual([...fractions].sort((a, b) => a - b))
      expect(fractions[0]).toBeGreaterThanOrEqual(0)
      expect(fractions[fractions.length - 1]).toBeLessThanOrEqual(1)
    }
  })
})

// ---------------------------------------------------------------------------
// Migrations in the world go through core's state machines (core/migration-fsm.ts).

describe('World migrations', () => {
  /** Hosts of 1 core, VMs of 1 vCPU always fully busy: a host with a VM has no room for another. */
  function tinyWorld (hosts: number, vms: number, link: LinkModel = { ...LINKS.lan }): World {
    const scenario = { ...SCENARIOS['vmplaces-10g'], hostCpu: 1, cpuOvercommit: 1, demand: { ...SCENARIOS['vmplaces-10g'].demand, mean: 1, stddev: 0, meanChangeIntervalS: 1e9 } }
    return new World({ scenario, hosts, vms, seed: 1, link })
  }

  function migrate (world: World, vmId: string, from: string, to: string, partitionId?: string): { ok?: boolean, reason?: string } {
    const ended: { ok?: boolean, reason?: string } = {}
    world.migrate(vmId, from, to, partitionId, (ok, reason) => { Object.assign(ended, { ok, reason }) })
    world.run(world.now + 60_000)
    return ended
  }

  it('a destination with room takes the VM: it runs there at epoch + 1, the reservation is spent, three messages', () => {
    const world = tinyWorld(3, 2)
    const vm = world.vmById.get('vm-000000')!
    expect(migrate(world, vm.id, 'host-00000', 'host-00002')).toEqual({ ok: true, reason: undefined })
    expect(vm.host).toBe(2)
    expect(vm.epoch).toBe(1)
    expect(vm.migrating).toBe(false)
    expect(world.hosts[2].reserved.size).toBe(0)
    expect(world.hosts[0].vms.size).toBe(0)
    expect(world.migrations.count).toBe(1)
    expect(world.network.sent).toBe(3)
  })

  it('the admission (core\'s admitIncoming) refuses a destination that would overload: the VM stays at its source, nothing is reserved', () => {
    const world = tinyWorld(2, 2)
    const vm = world.vmById.get('vm-000000')!
    const r = migrate(world, vm.id, 'host-00000', 'host-00001')
    expect(r.ok).toBe(false)
    expect(r.reason).toMatch(/would overload this node/)
    expect(vm.host).toBe(0)
    expect(vm.epoch).toBe(0)
    expect(vm.migrating).toBe(false)
    expect(world.hosts[1].reserved.size).toBe(0)
    expect(world.migrations).toMatchObject({ count: 0, aborted: 1 })
  })

  it('DVMS\'s rule is the admission context: a destination in another partition refuses, one in the same partition takes the VM', () => {
    const world = tinyWorld(3, 1)
    world.partitionOf = h => h.idx === 1 ? 'p-1' : h.idx === 2 ? 'p-2' : undefined
    const vm = world.vmById.get('vm-000000')!
    const refused = migrate(world, vm.id, 'host-00000', 'host-00001', 'p-2')
    expect(refused.reason).toMatch(/another rebalancing partition/)
    expect(vm.host).toBe(0)
    expect(migrate(world, vm.id, 'host-00000', 'host-00002', 'p-2').ok).toBe(true)
    expect(vm.host).toBe(2)
  })

  it('every message lost: the source gives up after the request timeout and the VM stays where it was', () => {
    const world = tinyWorld(3, 1, { ...LINKS.lan, loss: 1 })
    const vm = world.vmById.get('vm-000000')!
    const r = migrate(world, vm.id, 'host-00000', 'host-00002')
    expect(r).toEqual({ ok: false, reason: 'no answer from the destination in time' })
    expect(vm.host).toBe(0)
    expect(vm.migrating).toBe(false)
  })

  it('a VM already migrating is not migrated twice', () => {
    const world = tinyWorld(3, 1)
    const vm = world.vmById.get('vm-000000')!
    const results: boolean[] = []
    world.migrate(vm.id, 'host-00000', 'host-00001', undefined, ok => { results.push(ok) })
    world.migrate(vm.id, 'host-00000', 'host-00002', undefined, ok => { results.push(ok) })
    world.run(60_000)
    expect(results).toEqual([false, true])
    expect(vm.host).toBe(1)
  })
})
