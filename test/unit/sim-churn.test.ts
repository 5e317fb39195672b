/**
 * The simulator's `churn` scenario: the agents' failure detector while nodes
 * are killed, hung and brought back on a seeded schedule. Deterministic for a
 * seed; every failure noticed by every node running throughout, within the
 * profile's bounds, with no false positive; the detector's messages per node
 * per second flat as the cluster grows at the same rate of failures; the
 * restart rule on the same runs: every failed node's VMs run again once,
 * none lost, none twice, unless an owner and all k of its holders die at
 * once; its flags checked at the edge.
 */
import { describe, expect, it } from 'vitest'
import { resolveChurnOptions } from '../../src/cli/sim-command.ts'
import { suspicionTimeoutMs } from '../../src/core/suspicion.ts'
import { type ChurnOptions, runChurn } from '../../src/sim/churn-run.ts'
import { LINKS } from '../../src/sim/network.ts'

const opts = (nodes: number, seed = 1, more: Partial<ChurnOptions> = {}): ChurnOptions =>
  ({ nodes, durationS: 240, seed, profile: 'lan', link: { ...LINKS.lan }, eventsPerMin: 6, ...more })

describe('sim --scenario churn', () => {
  it('is deterministic for a seed, and another seed gives another run', () => {
    const a = runChurn(opts(40, 3, { durationS: 120 }))
    const b = runChurn(opts(40, 3, { durationS: 120 }))
    const { wallS: _a, ...ra } = a
    const { wallS: _b, ...rb } = b
    expect(ra).toEqual(rb)
    const { wallS: _c, ...rc } = runChurn(opts(40, 4, { durationS: 120 }))
    expect(rc).not.toEqual(ra)
  })

  it.each([1, 2])('at 200 nodes, every kill and hang is noticed by every node running throughout, soon, and no running node is declared dead (seed %d)', seed => {
    const r = runChurn(opts(200, seed, { durationS: 180 }))
    expect(r.kills + r.hangs, `seed ${seed}`).toBeGreaterThan(8)
    expect(r.missed, `seed ${seed}`).toBe(0)
    expect(r.falsePositives, `seed ${seed}`).toBe(0)
    // lan: the minimum suspicion timeout at 200 nodes, and a few probe periods more to be probed first and to spread.
    const min = suspicionTimeoutMs(4, 200, 500)
    expect(r.killEveryP99Ms!).toBeGreaterThanOrEqual(min)
    expect(r.killEveryP99Ms!).toBeLessThan(min + 5_000)
    expect(r.hangEveryP99Ms!).toBeLessThan(min + 10_000)
    // The restart rule on the same run: each failed node's `always` VMs run again elsewhere, once, soon after its first holder declares it dead.
    expect(r.vms).toBe(2000)
    expect(r.vmsRestarted, `seed ${seed}`).toBeGreaterThanOrEqual(8 * (r.kills + r.hangs))
    expect(r.neverReported, `seed ${seed}`).toBeGreaterThan(0)
    expect(r.restartConflicts, `seed ${seed}`).toBe(0)
    expect(r.duplicates, `seed ${seed}`).toBe(0)
    expect(r.lost, `seed ${seed}`).toBe(0)
    // Hung owners come back to VMs restarted elsewhere: their copies are fenced.
    expect(r.fenced, `seed ${seed}`).toBeGreaterThan(0)
    expect(r.restartP50Ms!).toBeGreaterThanOrEqual(min)
    expect(r.restartP99Ms!).toBeLessThan(Math.max(r.killEveryP99Ms!, r.hangEveryP99Ms!) + 2_000)
  })

  it('loses the VMs of an owner killed with its k = 2 holders at once, and none when one holder survives', () => {
    const all = runChurn(opts(200, 11, { durationS: 120, groupKill: { atS: 30, size: 3 } }))
    process.stderr.write(`[churn] seed 11, owner and both holders killed at 30 s: ${all.lost} VMs lost, ${all.vmsRestarted} restarted\n`)
    // Its ten VMs, one of them `never`: nine lost at least (more if it had taken restarted VMs before).
    expect(all.lost).toBeGreaterThanOrEqual(9)
    const one = runChurn(opts(200, 11, { durationS: 120, groupKill: { atS: 30, size: 2 } }))
    expect(one.lost).toBe(0)
    expect(one.duplicates).toBe(0)
    expect(one.restartConflicts).toBe(0)
    // The owner and its first holder: the second holder restarts the owner's nine `always` VMs, the first holder's own holders its nine.
    expect(one.vmsRestarted).toBeGreaterThanOrEqual(18)
  })

  it('with no VMs, the detector only: the same detection figures', () => {
    const withVms = runChurn(opts(60, 3, { durationS: 90 }))
    const without = runChurn(opts(60, 3, { durationS: 90, vmsPerNode: 0 }))
    expect(without.vms).toBe(0)
    expect(without.vmsRestarted).toBe(0)
    expect(withVms.vmsRestarted).toBeGreaterThan(0)
    expect(without.killEachP99Ms).toBe(withVms.killEachP99Ms)
    expect(without.msgsPerNodePerS).toBe(withVms.msgsPerNodePerS)
  })

  it('the same, on a wan with one message in fifty lost', () => {
    const r = runChurn(opts(100, 5, { profile: 'wan', link: { ...LINKS.wan, loss: 0.02 } }))
    expect(r.missed).toBe(0)
    expect(r.falsePositives).toBe(0)
    expect(r.hangEveryP99Ms!).toBeLessThan(suspicionTimeoutMs(5, 100, 1000) + 20_000)
  })

  it('keeps the detector\'s messages per node per second flat from 100 to 800 nodes at the same rate of failures', () => {
    const small = runChurn(opts(100, 7, { durationS: 120 }))
    const large = runChurn(opts(800, 7, { durationS: 120 }))
    const ratio = large.msgsPerNodePerS / small.msgsPerNodePerS
    process.stderr.write(`[churn] messages per node per second: ${small.msgsPerNodePerS} at 100 nodes, ${large.msgsPerNodePerS} at 800 (×${ratio.toFixed(2)})\n`)
    expect(ratio).toBeGreaterThan(0.67)
    expect(ratio).toBeLessThan(1.5)
    // Replica traffic follows the failures (k holders, a few restarts each), not n: per node it does not grow.
    process.stderr.write(`[churn] replica and restart messages per node per second: ${small.vmMsgsPerNodePerS} at 100 nodes, ${large.vmMsgsPerNodePerS} at 800\n`)
    expect(large.vmMsgsPerNodePerS).toBeLessThanOrEqual(small.vmMsgsPerNodePerS)
    expect(large.vmsRestarted).toBeGreaterThan(0)
    expect(large.lost + large.duplicates + large.restartConflicts).toBe(0)
  })
})

describe('resolveChurnOptions', () => {
  it('lan, 300 s, 6 failures a minute by default; wan, duration, loss, rate and seed from the flags', () => {
    expect(resolveChurnOptions({ nodes: '1000' })).toEqual({ nodes: 1000, durationS: 300, seed: 1, profile: 'lan', link: LINKS.lan, eventsPerMin: 6 })
    expect(resolveChurnOptions({ nodes: '50', latency: 'wan', duration: '10m', loss: '0.01', churn: '12', seed: '9' }))
      .toEqual({ nodes: 50, durationS: 600, seed: 9, profile: 'wan', link: { ...LINKS.wan, loss: 0.01 }, eventsPerMin: 12 })
    expect(resolveChurnOptions({ nodes: '50', vmsPerNode: '3' }).vmsPerNode).toBe(3)
  })

  it.each([
    { flags: {}, error: /Expected --nodes N/ },
    { flags: { nodes: '2' }, error: /--nodes/ },
    { flags: { nodes: '10', vms: '5' }, error: /--vms is not read by --scenario churn/ },
    { flags: { nodes: '10', rate: '5' }, error: /--rate is not read by --scenario churn/ },
    { flags: { nodes: '10', latency: '5ms' }, error: /Expected --latency to be lan or wan with --scenario churn/ },
    { flags: { nodes: '10', duration: '30s' }, error: /Expected --duration to be at least 60s/ },
    { flags: { nodes: '10', churn: '-1' }, error: /--churn/ },
    { flags: { nodes: '10', vmsPerNode: '-1' }, error: /--vms-per-node/ }
  ])('refuses $flags, saying why', ({ flags, error }) => {
    expect(() => resolveChurnOptions(flags)).toThrow(error)
  })
})
