/** Constraints matched once, for the placing agent's filter, the owner's reservation and the migration admission alike. */
import { describe, expect, it } from 'vitest'
import { constraintMiss } from '../../src/core/constraints.ts'

const labels = { zone: 'paris', rack: 'r1', gpu: 'yes' }
const none = (): boolean => false

describe('constraintMiss', () => {
  it.each<{ name: string, constraints: Parameters<typeof constraintMiss>[1], runs?: string[], miss: string | undefined }>([
    { name: 'no constraints', constraints: undefined, miss: undefined },
    { name: 'the right zone', constraints: { zone: 'paris' }, miss: undefined },
    { name: 'another zone', constraints: { zone: 'tokyo' }, miss: 'zone' },
    { name: 'every asked label', constraints: { labels: { rack: 'r1', gpu: 'yes' } }, miss: undefined },
    { name: 'a label with another value', constraints: { labels: { rack: 'r2' } }, miss: 'labels' },
    { name: 'a label the node lacks', constraints: { labels: { ssd: 'yes' } }, miss: 'labels' },
    { name: 'a spread group the node does not run', constraints: { spread: 'db' }, runs: ['web'], miss: undefined },
    { name: 'a spread group the node runs', constraints: { spread: 'db' }, runs: ['db'], miss: 'spread' },
    { name: 'the zone is checked before the labels', constraints: { zone: 'tokyo', labels: { ssd: 'yes' } }, miss: 'zone' }
  ])('$name', ({ constraints, runs, miss }) => {
    const got = constraintMiss(labels, constraints, runs == null ? none : g => runs.includes(g))
    expect(got?.kind).toBe(miss)
    if (got != null) expect(got.reason).toMatch(/^this node /)
  })
})
