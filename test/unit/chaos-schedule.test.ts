/** The chaos fault schedule: a pure function of its seed that never has more than max-down agents down. */
import { describe, expect, it } from 'vitest'
import { buildSchedule, countKinds, maxOverlap, type ScheduleOptions, scheduleMaxDown } from '../../src/chaos/schedule.ts'

const base: ScheduleOptions = {
  nodes: 8, durationMs: 60_000, killEveryMs: 5_000, pauseEveryMs: 15_000, partitionEveryMs: 20_000, maxDown: 2, seed: 1,
  restartDelayMs: [1_000, 3_000], pauseMs: [2_000, 5_000], partitionMs: [4_000, 8_000], upMs: 3_000
}

describe('the chaos schedule', () => {
  it('is the same for the same seed and differs for another', () => {
    expect(buildSchedule(base)).toEqual(buildSchedule({ ...base }))
    expect(buildSchedule({ ...base, seed: 2 })).not.toEqual(buildSchedule(base))
  })

  it('respects max-down over many seeds and sizes, every fault paired with its end inside the run', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const o = { ...base, seed, nodes: 3 + (seed % 28), maxDown: 1 + (seed % 3), killEveryMs: 1_000 + (seed % 5) * 1_000 }
      const s = buildSchedule(o)
      expect(scheduleMaxDown(s, o.upMs), `seed ${seed}`).toBeLessThanOrEqual(o.maxDown)
      for (const f of s) {
        expect(f.atMs).toBeGreaterThanOrEqual(0)
        expect(f.atMs).toBeLessThanOrEqual(o.durationMs)
        expect(s.filter(e => e.pair === f.pair)).toHaveLength(2)
        for (const a of f.agents) expect(a).toBeLessThan(o.nodes)
      }
      // No agent is killed or paused while it is already down.
      const down = new Map<number, number>()
      for (const f of s) {
        if (f.kind === 'kill' || f.kind === 'pause') {
          expect(down.get(f.agents[0]) ?? -Infinity, `seed ${seed}`).toBeLessThanOrEqual(f.atMs)
          down.set(f.agents[0], Infinity)
        }
        if (f.kind === 'restart' || f.kind === 'resume') down.set(f.agents[0], f.atMs + o.upMs)
      }
    }
  })

  it('with several agents to a process, takes a whole process down at a time and counts processes against max-down', () => {
    for (let seed = 1; seed <= 100; seed++) {
      const k = 2 + (seed % 3)
      const nodes = 6 + (seed % 7)
      const units = Array.from({ length: Math.ceil(nodes / k) }, (_, u) => Array.from({ length: Math.min(k, nodes - u * k) }, (_, j) => u * k + j))
      const o = { ...base, seed, nodes, units, maxDown: 1 + (seed % 2), killEveryMs: 2_000 }
      const s = buildSchedule(o)
      expect(scheduleMaxDown(s, o.upMs), `seed ${seed}`).toBeLessThanOrEqual(o.maxDown)
      // Counted in agents, more than max-down are down at once in some runs: whole processes.
      if (seed === 1) expect(s.some(f => f.kind === 'kill' && f.agents.length > o.maxDown)).toBe(true)
      const faults = s.filter(f => f.kind === 'kill' || f.kind === 'pause')
      expect(faults.length, `seed ${seed}`).toBeGreaterThan(3)
      for (const f of s.filter(f => f.kind !== 'partition' && f.kind !== 'heal')) {
        expect(units.some(u => u.join() === f.agents.join()), `seed ${seed}: ${f.agents.join()}`).toBe(true)
      }
    }
    // Each agent alone: the schedule of a cluster without units.
    expect(buildSchedule({ ...base, units: Array.from({ length: 8 }, (_, i) => [i]) })).toEqual(buildSchedule(base))
  })

  it('gives the short run of the integration test its kills, pauses and partitions', () => {
    const c = countKinds(buildSchedule(base))
    expect(c.kill).toBeGreaterThanOrEqual(10)
    expect(c.restart).toBe(c.kill)
    expect(c.pause).toBeGreaterThanOrEqual(3)
    expect(c.partition).toBeGreaterThanOrEqual(2)
    expect(c.heal).toBe(c.partition)
  })

  it('has one partition at a time, its sides splitting the cluster with the smaller side first', () => {
    const s = buildSchedule({ ...base, partitionEveryMs: 5_000 })
    const parts = s.filter(f => f.kind === 'partition')
    expect(parts.length).toBeGreaterThan(2)
    for (const p of parts) {
      expect([...p.agents, ...p.peers!].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7])
      expect(p.agents.length).toBeLessThan(p.peers!.length)
      const heal = s.find(f => f.kind === 'heal' && f.pair === p.pair)!
      expect(parts.filter(q => q !== p && q.atMs >= p.atMs && q.atMs < heal.atMs)).toEqual([])
    }
  })

  it('counts overlapping down intervals', () => {
    expect(maxOverlap([{ from: 0, to: 10 }, { from: 5, to: 15 }, { from: 10, to: 20 }], 0, 20)).toBe(2)
    expect(maxOverlap([{ from: 0, to: 10 }], 10, 20)).toBe(0)
  })
})
