/** The chaos checker on hand-made histories: each violation caught, a clean run passes, uncertain answers judged both ways. */
import { describe, expect, it } from 'vitest'
import { check } from '../../src/chaos/checker.ts'
import { crashLines, type Observations, type Op, type VmSeen } from '../../src/chaos/history.ts'

let seq = 0
function create (name: string, status: Op['status'], id?: string, at = 100, node = 'peer-0'): Op {
  return { seq: seq++, op: 'create', name, vmId: status === 201 ? id : undefined, agent: 0, startMs: at, endMs: at + 50, status, body: status === 201 ? { id, node, state: 'creating' } : { error: 'x' } }
}
function del (name: string, id: string, status: Op['status'], at = 1000): Op {
  return { seq: seq++, op: 'delete', name, vmId: id, agent: 1, startMs: at, endMs: at + 20, status }
}
const vm = (id: string, name: string, state = 'running'): VmSeen => ({ id, name, state, node: 'n', epoch: 1 })

/** Observations of a healthy run: agent i runs `final[i]`. */
function obs (final: VmSeen[][], extra: Partial<Observations> = {}): Observations {
  return {
    vmSamples: [],
    nodeSamples: [{ atMs: 500, agent: 0, capacity: { cpu: 8, memMiB: 4096 }, used: { cpu: 2, memMiB: 512 }, reserved: { cpu: 1, memMiB: 256 } }],
    exits: [{ atMs: 300, agent: 2, expected: true }],
    logs: [{ agent: 0, lines: [] }],
    faults: [{ atMs: 300, kind: 'kill', agents: [2], ok: true }],
    settle: { churnStoppedMs: 10_000, convergedMs: 11_000, settledMs: 11_500, boundMs: 5_000 },
    final: { atMs: 12_000, agents: final.map((vms, agent) => ({ agent, up: true, vms })) },
    peers: { 'peer-0': 0, 'peer-1': 1, 'peer-2': 2 },
    ...extra
  }
}

describe('the chaos checker', () => {
  it('passes a clean history: created VMs run once, deleted ones are gone, refused ones never appeared', () => {
    const h = [create('a', 201, 'vm-a'), create('b', 201, 'vm-b'), del('b', 'vm-b', 200), create('c', 503)]
    const r = check(h, obs([[vm('vm-a', 'a')], [], []]))
    expect(r.violations).toEqual([])
    expect(r.clean).toBe(true)
    expect(r.counts).toMatchObject({ creates: 3, acknowledged: 2, ok: 2, deletesAcknowledged: 1, lost: 0 })
    expect(r.convergedAfterMs).toBe(1000)
  })

  it('catches a lost VM, naming its owner and the faults near its acknowledgement', () => {
    const h = [create('a', 201, 'vm-a', 100, 'peer-2')]
    const r = check(h, obs([[], [], []]))
    expect(r.clean).toBe(false)
    expect(r.violations.map(v => v.kind)).toEqual(['lost'])
    expect(r.violations[0].vm).toBe('vm-a')
    expect(r.violations[0].history).toHaveLength(1)
    expect(r.violations[0].context?.join('\n')).toMatch(/agent 2 kill at 300 ms/)
  })

  it('catches a duplicate: one VM on two agents, or one create that made two VMs', () => {
    const twice = check([create('a', 201, 'vm-a')], obs([[vm('vm-a', 'a')], [vm('vm-a', 'a')], []]))
    expect(twice.violations.map(v => v.kind)).toEqual(['duplicated'])
    const two = check([create('a', 504)], obs([[vm('vm-a', 'a')], [vm('vm-b', 'a')], []]))
    expect(two.violations.map(v => v.kind)).toEqual(['duplicated'])
  })

  it('catches a resurrection after an acknowledged delete', () => {
    const r = check([create('a', 201, 'vm-a'), del('a', 'vm-a', 200)], obs([[], [], [vm('vm-a', 'a')]]))
    expect(r.violations.map(v => v.kind)).toEqual(['resurrected'])
    expect(r.violations[0].message).toMatch(/agent 2/)
  })

  it('catches a VM whose create was refused outright and that exists anyway', () => {
    const r = check([create('a', 503)], obs([[vm('vm-a', 'a')], [], []]))
    expect(r.violations.map(v => v.kind)).toEqual(['phantom'])
  })

  it('catches an over-commit in any sample, honouring the CPU over-commit ratio', () => {
    const over = { atMs: 700, agent: 1, capacity: { cpu: 8, memMiB: 4096 }, used: { cpu: 7, memMiB: 1024 }, reserved: { cpu: 2, memMiB: 0 } }
    const r = check([], obs([[], [], []], { nodeSamples: [over, { ...over, atMs: 900 }] }))
    expect(r.violations.map(v => v.kind)).toEqual(['overcommit'])
    expect(r.counts.overcommitSamples).toBe(2)
    expect(check([], obs([[], [], []], { nodeSamples: [{ ...over, cpuOvercommit: 2 }] })).clean).toBe(true)
    const mem = { ...over, used: { cpu: 1, memMiB: 4000 }, reserved: { cpu: 0, memMiB: 200 } }
    expect(check([], obs([[], [], []], { nodeSamples: [mem] })).violations.map(v => v.kind)).toEqual(['overcommit'])
  })

  it('catches a crash: an agent that exited unkilled, or an uncaught error in a log', () => {
    const exited = check([], obs([[], [], []], { exits: [{ atMs: 400, agent: 1, expected: false }] }))
    expect(exited.violations.map(v => v.kind)).toEqual(['crash'])
    const log = 'Error: boom\n    at foo (/x/src/agent/agent.ts:10:5)\n'
    const logged = check([], obs([[], [], []], { logs: [{ agent: 1, lines: crashLines(log) }] }))
    expect(logged.violations.map(v => v.kind)).toEqual(['crash'])
  })

  it('tells crash lines from ordinary log lines', () => {
    const text = [
      '{"level":30,"msg":"agent started"}',
      '{"level":50,"msg":"place failed"}',
      '(node:123) ExperimentalWarning: Type Stripping is an experimental feature',
      '{"level":60,"msg":"fatal: store closed"}',
      '{"level":50,"msg":"uncaught exception","err":"x"}',
      'TypeError: cannot read properties of undefined',
      '    at Agent.start (file:///x/src/agent/agent.ts:1:2)'
    ].join('\n')
    expect(crashLines(text)).toHaveLength(4)
  })

  it('judges an uncertain create both ways: present once or absent are fine, seen then gone is lost', () => {
    const h = [create('a', 504), create('b', 'timeout')]
    const r = check(h, obs([[vm('vm-a', 'a')], [], []]))
    expect(r.clean).toBe(true)
    expect(r.counts).toMatchObject({ uncertainCreates: 2, uncertainPresent: 1, uncertainAbsent: 1 })
    const gone = check([create('b', 'error')], obs([[], [], []], { vmSamples: [{ atMs: 2000, agent: 1, vms: [vm('vm-b', 'b')] }] }))
    expect(gone.violations.map(v => v.kind)).toEqual(['lost'])
  })

  it('judges an uncertain delete both ways: the VM there once or gone', () => {
    const h = [create('a', 201, 'vm-a'), del('a', 'vm-a', 'timeout'), create('b', 201, 'vm-b'), del('b', 'vm-b', 504)]
    expect(check(h, obs([[vm('vm-a', 'a')], [], []])).clean).toBe(true)
    const twice = check(h, obs([[vm('vm-a', 'a')], [vm('vm-a', 'a')], []]))
    expect(twice.violations.map(v => v.kind)).toEqual(['duplicated'])
  })

  it('flags views that agreed too late, or never, and a cluster that never settled', () => {
    const late = check([], obs([[], [], []], { settle: { churnStoppedMs: 0, convergedMs: 9000, settledMs: 9000, boundMs: 5000 } }))
    expect(late.violations.map(v => v.kind)).toEqual(['unconverged'])
    const never = check([], obs([[], [], []], { settle: { churnStoppedMs: 0, boundMs: 5000 } }))
    expect(never.violations.map(v => v.kind).sort()).toEqual(['unconverged', 'unsettled'])
  })
})
