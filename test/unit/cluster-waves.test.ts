/**
 * `cluster up`'s plan (src/cli/cluster-waves.ts): waves sized to the machine,
 * agent 0 alone first when ports are picked by the system, bootstrap peers
 * among the agents already up and spread over them, and a cluster given up
 * only after `stallMs` without progress.
 */
import { describe, expect, it } from 'vitest'
import { AGENTS_PER_CORE_HELD, bootstrapFor, crowdingAdvice, StallWatch, waveSize, waves } from '../../src/cli/cluster-waves.ts'

describe('waves', () => {
  it('starts four agents per core at once, at least four', () => {
    expect(waveSize(2)).toBe(8)
    expect(waveSize(16)).toBe(64)
    expect(waveSize(0)).toBe(4)
  })

  it('covers every agent once, in order, in waves of the size; agent 0 alone first with ports picked by the system', () => {
    expect(waves(10, 4, false)).toEqual([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]])
    expect(waves(10, 4, true)).toEqual([[0], [1, 2, 3, 4], [5, 6, 7, 8], [9]])
    expect(waves(1, 8, true)).toEqual([[0]])
    expect(waves(100, 8, true).flat()).toEqual(Array.from({ length: 100 }, (_, i) => i))
  })
})

describe('crowdingAdvice', () => {
  it('says nothing of a cluster the machine holds', () => {
    expect(crowdingAdvice(20, 1, 2)).toBeUndefined()
    expect(crowdingAdvice(24, 1, 2)).toBeUndefined()
    expect(crowdingAdvice(200, 50, 2)).toBeUndefined()
    expect(crowdingAdvice(1000, 100, 8)).toBeUndefined()
  })

  it('suggests several agents to a process past 12 a core one to a process', () => {
    expect(crowdingAdvice(25, 1, 2)).toMatch(/^25 agents one to a process on 2 cores: .*--per-process 10/)
    expect(crowdingAdvice(100, 10, 2)).toBeUndefined()
  })

  it('warns that the cores are the limit past AGENTS_PER_CORE_HELD a core, grouped or not', () => {
    expect(crowdingAdvice(2 * AGENTS_PER_CORE_HELD, 50, 2)).toBeUndefined()
    expect(crowdingAdvice(2 * AGENTS_PER_CORE_HELD + 1, 50, 2)).toMatch(/^301 agents on 2 cores: past about 150 agents a core .* may not come up/)
    expect(crowdingAdvice(1000, 1, 2)).toMatch(/^1000 agents on 2 cores: past about 150/)
    // A machine that reports no core counts as one.
    expect(crowdingAdvice(151, 10, 0)).toMatch(/^151 agents on 1 core: /)
  })
})

describe('bootstrapFor', () => {
  it('names up to three distinct agents among those up, none when none is', () => {
    expect(bootstrapFor(5, [])).toEqual([])
    expect(bootstrapFor(5, [0])).toEqual([0])
    for (let i = 1; i < 100; i++) {
      const up = Array.from({ length: Math.min(i, 40) }, (_, k) => k)
      const picks = bootstrapFor(i, up)
      expect(picks.length).toBe(Math.min(3, up.length))
      expect(new Set(picks).size).toBe(picks.length)
      for (const p of picks) expect(up).toContain(p)
    }
  })

  it('spreads the newcomers over the agents up, rather than all on agent 0', () => {
    const up = Array.from({ length: 20 }, (_, k) => k)
    const firsts = new Map<number, number>()
    for (let i = 20; i < 100; i++) { const f = bootstrapFor(i, up)[0]; firsts.set(f, (firsts.get(f) ?? 0) + 1) }
    expect(Math.max(...firsts.values())).toBeLessThanOrEqual(8)
  })
})

describe('StallWatch', () => {
  it('is stalled only once the score has not grown for stallMs, however long the whole takes', () => {
    const w = new StallWatch(1_000, 0)
    expect(w.progress(1, 500)).toBe(true)
    expect(w.stalled(1_400)).toBe(false)
    expect(w.progress(1, 1_400)).toBe(false)
    expect(w.stalled(1_500)).toBe(true)
    expect(w.progress(2, 1_600)).toBe(true)
    expect(w.stalled(2_500)).toBe(false)
    expect(w.idleMs(2_500)).toBe(900)
    // Progress every 900 ms for a long time: never stalled.
    let t = 1_600
    for (let score = 3; score < 100; score++) { t += 900; w.progress(score, t); expect(w.stalled(t + 899)).toBe(false) }
  })
})
