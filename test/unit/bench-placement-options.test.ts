import { describe, expect, it } from 'vitest'
import { capacityOk, parseOptions, perAgent, type RunResult, type SystemRun } from '../../bench/placement.ts'

const spread = (mean: number, max: number) => ({ mean, max })

function run (): SystemRun {
  return {
    upS: 30,
    idle: { cpuPctSum: 60, cpuPct: spread(6, 9), rssMiB: spread(300, 330), pssMiB: spread(250, 270), ussMiB: spread(240, 260), sampleS: 10 },
    convergence: { samples: 10, pairs: 1000, missed: 0, p50Ms: 80, p99Ms: 600, maxMs: 900, lastAgentP50Ms: 100, lastAgentMaxMs: 900, firstLastAgentMs: 1200, view: { p50Ms: 40, p99Ms: 300, maxMs: 400, missed: 0 } },
    load: {
      vms: 600, concurrency: 64, wallS: 20, vmsPerS: 30, createMs: { p50: 2000, p99: 5000, max: 6000 },
      status: { created: 600, noCapacity: 0, other: 0, error: 0, uncertain: 0 }, cpuPctSum: 190,
      rssMiB: spread(320, 350), pssMiB: spread(270, 290), ussMiB: spread(260, 280)
    },
    loadAverage: { up: 1, idle: 1, load: 2 }
  }
}

describe('placement bench: --per-process', () => {
  it('defaults to one agent per process and takes K from 1 to 100', () => {
    expect(parseOptions([])?.perProcess).toBe(1)
    expect(parseOptions(['--per-process', '10'])?.perProcess).toBe(10)
    for (const bad of ['0', '101', '2.5', 'ten']) {
      expect(() => parseOptions(['--per-process', bad])).toThrow(/--per-process to be a whole number from 1 to 100/)
    }
  })

  it('divides a process\'s CPU and memory by K, and leaves the cluster-wide figures alone', () => {
    const r = perAgent(run(), 10)
    expect(r.idle.cpuPct).toEqual(spread(0.6, 0.9))
    expect(r.idle.rssMiB).toEqual(spread(30, 33))
    expect(r.idle.ussMiB).toEqual(spread(24, 26))
    expect(r.load.pssMiB).toEqual(spread(27, 29))
    expect(r.idle.cpuPctSum).toBe(60)
    expect(r.load.cpuPctSum).toBe(190)
    expect(r.load.vmsPerS).toBe(30)
    expect(r.convergence.p99Ms).toBe(600)
    expect(perAgent(run(), 1)).toEqual(run())
  })
})

describe('placement bench: the capacity check', () => {
  const result = (after: RunResult['agents']['after']): RunResult => ({ agents: { after } }) as unknown as RunResult
  const after = (placed: number, mayAlsoExist: number, overCapacity: string[] = []): RunResult['agents']['after'] =>
    ({ viewsChecked: 100, overCapacity, placed, expected: 620, mayAlsoExist, reservedLeft: { cpu: 0, memMiB: 0 }, peakRssMiB: spread(0, 0) })

  it.each([
    { placed: 620, mayAlsoExist: 0, ok: true, why: 'every acknowledged VM, nothing more' },
    { placed: 621, mayAlsoExist: 0, ok: false, why: 'a VM nobody was told of' },
    { placed: 621, mayAlsoExist: 1, ok: true, why: 'the VM of a create answered 504 placement_uncertain: the API says it may appear' },
    { placed: 622, mayAlsoExist: 1, ok: false, why: 'more VMs than the uncertain creates can explain' },
    { placed: 619, mayAlsoExist: 1, ok: false, why: 'an acknowledged VM missing' }
  ])('$placed placed, 620 acknowledged, $mayAlsoExist uncertain: $why', ({ placed, mayAlsoExist, ok }) => {
    expect(capacityOk(result(after(placed, mayAlsoExist)))).toBe(ok)
  })

  it('fails on a node over capacity whatever the count', () => {
    expect(capacityOk(result(after(620, 0, ['node-a'])))).toBe(false)
  })
})
