/** jsonLength (src/chaos/fuzz/json-length.ts): the length JSON.stringify would give, without the string, stopping past a bound. */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { jsonLength } from '../../src/chaos/fuzz/json-length.ts'

const SEED = Number(process.env.JSON_LENGTH_SEED ?? Date.now() % 2 ** 31)

describe('jsonLength', () => {
  it('equals JSON.stringify(value).length for any value stringify takes', () => {
    console.log(`json-length seed ${SEED} (JSON_LENGTH_SEED=N to replay)`)
    const value = fc.oneof(
      fc.jsonValue(),
      // What JSON leaves out or rewrites: undefined, functions and symbols in objects and arrays, NaN, -0, dates, lone surrogates.
      fc.anything({ withDate: true, withNullPrototype: true, withSparseArray: true }).filter(v => typeof v !== 'bigint' && !containsBigInt(v)),
      fc.array(fc.oneof(fc.constant(undefined), fc.constant(() => 1), fc.constant(Symbol('s')), fc.constant(Number.NaN), fc.constant('\uD800'), fc.constant(-0)))
    )
    fc.assert(fc.property(value, v => {
      const text = JSON.stringify(v)
      expect(jsonLength(v, Infinity)).toBe(text === undefined ? 0 : text.length)
    }), { seed: SEED, numRuns: 500 })
  })

  it('counts an object shared many times over at each place, measured once', () => {
    const item = { id: 'vm-a', links: [{ k: 1 }, { k: 2 }] }
    const grown = { items: Array.from({ length: 4_000 }, () => item) }
    grown.items[0] = { ...item }
    expect(jsonLength(grown, Infinity)).toBe(JSON.stringify(grown).length)
    // Two levels of sharing: 4,000 × 4,000 items, about a gigabyte of text; stringify could not build it.
    const twice = { outer: Array.from({ length: 4_000 }, () => grown) }
    const started = performance.now()
    expect(jsonLength(twice, 4_000_000)).toBe(Infinity)
    expect(jsonLength(twice, Infinity)).toBe(JSON.stringify(grown).length * 4_000 + 3_999 + '{"outer":[]}'.length)
    expect(performance.now() - started).toBeLessThan(5_000)
  })

  it('stops past the bound: Infinity above it, the length at or under it', () => {
    const v = { a: 'x'.repeat(100) }
    const n = JSON.stringify(v).length
    expect(jsonLength(v, n)).toBe(n)
    expect(jsonLength(v, n - 1)).toBe(Infinity)
    expect(jsonLength(['ab', 'cd'], 6)).toBe(Infinity)
    expect(jsonLength(['ab', 'cd'], 11)).toBe(11)
    // A string alone, too.
    expect(jsonLength('x'.repeat(10), 11)).toBe(Infinity)
    expect(jsonLength('x'.repeat(10), 12)).toBe(12)
  })

  it('gives Infinity where JSON.stringify throws: a cycle, a bigint', () => {
    const cyclic: Record<string, unknown> = { a: 1 }
    cyclic.self = cyclic
    expect(() => JSON.stringify(cyclic)).toThrow()
    expect(jsonLength(cyclic, Infinity)).toBe(Infinity)
    expect(jsonLength({ n: 1n }, Infinity)).toBe(Infinity)
  })
})

function containsBigInt (v: unknown, seen = new Set<unknown>()): boolean {
  if (typeof v === 'bigint') return true
  if (v === null || typeof v !== 'object' || seen.has(v)) return false
  seen.add(v)
  return Object.values(v).some(x => containsBigInt(x, seen))
}
