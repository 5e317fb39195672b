import { describe, expect, it } from 'vitest'
import { goals } from '../../bench/lib/placement-report.ts'

/** A run at `nodes` with only what the goals read. */
function run (nodes: number, convergence: { p99Ms: number, missed?: number, view: { p99Ms: number, missed?: number } }): any {
  const spread = { mean: 80, max: 90 }
  return {
    nodes,
    agents: {
      upS: 50,
      idle: { cpuPctSum: 40 },
      load: { rssMiB: spread, ussMiB: spread, vmsPerS: 10 },
      convergence: { missed: 0, ...convergence, view: { missed: 0, ...convergence.view } }
    }
  }
}

const convergenceGoals = (r: any): Array<{ what: string, met: boolean }> => goals(r).filter(g => g.what.startsWith('convergence'))

describe('placement goals: convergence judged by the answers and by the views\' own clock', () => {
  it('at 100 agents, both against 500 ms, each on its own line', () => {
    const g = convergenceGoals(run(100, { p99Ms: 583, view: { p99Ms: 259 } }))
    expect(g.map(x => [x.what, x.met])).toEqual([
      ['convergence p99 (answers to ?wait=)', false],
      ['convergence p99 (the views\' own clock)', true]
    ])
  })

  it('at 50 agents against 250 ms', () => {
    expect(convergenceGoals(run(50, { p99Ms: 240, view: { p99Ms: 251 } })).map(x => x.met)).toEqual([true, false])
  })

  it('a view that never said it had the VM, or an answer missed, fails its line', () => {
    expect(convergenceGoals(run(100, { p99Ms: 100, missed: 1, view: { p99Ms: 100, missed: 2 } })).map(x => x.met)).toEqual([false, false])
  })

  it('without the event streams (NaN), only the answers are judged', () => {
    expect(convergenceGoals(run(100, { p99Ms: 100, view: { p99Ms: NaN } })).map(x => x.what)).toEqual(['convergence p99 (answers to ?wait=)'])
  })

  it('no convergence goal at 20 agents', () => {
    expect(convergenceGoals(run(20, { p99Ms: 100, view: { p99Ms: 100 } }))).toEqual([])
  })
})
