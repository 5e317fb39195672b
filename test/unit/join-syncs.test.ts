import { describe, expect, it } from 'vitest'
import { JOIN_WINDOW_MS, JoinSyncs } from '../../src/core/join-syncs.ts'

describe('JoinSyncs: which peers a joining agent asks for the states it lacks', () => {
  it('asks one peer at a time: a peer connected while a sync is under way is not asked', () => {
    const j = new JoinSyncs(0)
    expect(j.begin(10)).toBe(true)
    expect(j.begin(11)).toBe(false)
    expect(j.begin(12)).toBe(false)
    j.done(5)
    expect(j.begin(13)).toBe(true)
  })

  it('stops once two answers in a row brought nothing, and not before', () => {
    const j = new JoinSyncs(0)
    const ask = (news: number | undefined): boolean => {
      const asked = j.begin(100)
      if (asked) j.done(news)
      return asked
    }
    expect([ask(40), ask(0), ask(3), ask(0), ask(0), ask(7)]).toEqual([true, true, true, true, true, false])
    expect(j.caughtUp).toBe(true)
  })

  it('a peer not asked (asked lately) or that did not answer counts for nothing', () => {
    const j = new JoinSyncs(0)
    for (let i = 0; i < 5; i++) {
      expect(j.begin(100)).toBe(true)
      j.done(undefined)
    }
    expect(j.caughtUp).toBe(false)
  })

  it('asks only within the join window after its start', () => {
    const j = new JoinSyncs(1_000)
    expect(j.begin(1_000 + JOIN_WINDOW_MS)).toBe(true)
    j.done(1)
    expect(j.begin(1_000 + JOIN_WINDOW_MS + 1)).toBe(false)
  })
})
