/**
 * The placement benchmark's CPU profile summary (bench/lib/profile.ts): self
 * time per function and per package, where a sample taken after the process
 * waited for a CPU counts no more than the sampling allows, so the wait is not
 * charged to whatever function ran then.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { bundleLocator, MAX_SAMPLE_MS, summarize } from '../../bench/lib/profile.ts'
import { BUNDLE } from '../../bin/bundle-stamp.js'

const frame = (id: number, functionName: string, url: string, lineNumber = 0): { id: number, callFrame: { functionName: string, url: string, lineNumber: number } } =>
  ({ id, callFrame: { functionName, url, lineNumber } })

/** Ten 1 ms samples in `tick` (ours), one in libp2p's `decode` after which the process was not run for 500 ms, idle samples between. */
function profile (): Parameters<typeof summarize>[0] {
  const nodes = [frame(1, '(root)', ''), frame(2, '(idle)', ''), frame(3, 'tick', 'file:///repo/src/agent/agent.ts', 41), frame(4, 'decode', 'file:///repo/node_modules/@libp2p/utils/dist/varint.js', 9)]
  const samples = [2, ...Array.from({ length: 10 }, () => 3), 4, 2, 2]
  // timeDeltas[i] is the time before sample i: sample i lasts until sample i + 1.
  const timeDeltas = [0, 1_000, ...Array.from({ length: 10 }, () => 1_000), 500_000, 1_000]
  return { nodes, samples, timeDeltas }
}

describe('the benchmark\'s profile summary', () => {
  it('counts a sample followed by a long wait as at most MAX_SAMPLE_MS, by function and by part', () => {
    const s = summarize(profile())
    const fn = new Map(s.byFunction)
    expect(fn.get('tick agent.ts:42')).toBeCloseTo(10, 5)
    expect(fn.get('decode varint.js:10')).toBeCloseTo(MAX_SAMPLE_MS, 5)
    expect(s.busyMs).toBeCloseTo(10 + MAX_SAMPLE_MS, 5)
    expect(s.byFunction[0][0]).toBe('tick agent.ts:42')
    expect(new Map(s.byPart).get('@libp2p/utils')).toBeCloseTo(MAX_SAMPLE_MS, 5)
    expect(new Map(s.byPart).get('src/agent/agent.ts')).toBeCloseTo(10, 5)
  })

  it('in wall time (no cap) the wait would go to the function that ran before it', () => {
    const s = summarize(profile(), 25, Infinity)
    expect(s.byFunction[0]).toEqual(['decode varint.js:10', 500])
  })

  it('names the source file or package of a function of the bundle, through the source map beside it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'profile-map-'))
    const bundle = join(dir, BUNDLE)
    // Bundle line 0: from column 0, the bundle's own (no source); from column 10, src/agent/agent.ts line 41; from
    // column 20, a nested @libp2p/utils line 9.
    const map = { version: 3, sources: ['../../src/agent/agent.ts', '../../node_modules/libp2p/node_modules/@libp2p/utils/dist/varint.js'], names: [], mappings: 'A,UAyCA,UChCA' }
    expect(bundleLocator(bundle)).toBeUndefined()
    mkdirSync(dirname(bundle), { recursive: true })
    writeFileSync(`${bundle}.map`, JSON.stringify(map))
    const locate = bundleLocator(bundle)!
    const nodes = [
      { id: 1, callFrame: { functionName: 'tick', url: bundle, lineNumber: 0, columnNumber: 13 } },
      { id: 2, callFrame: { functionName: 'decode', url: bundle, lineNumber: 0, columnNumber: 22 } },
      { id: 3, callFrame: { functionName: '__toESM', url: bundle, lineNumber: 0, columnNumber: 3 } }
    ]
    const samples = { nodes, samples: [1, 1, 2, 3], timeDeltas: [0, 1_000, 1_000, 1_000, 1_000] }
    const s = summarize(samples, 25, MAX_SAMPLE_MS, locate)
    expect(new Map(s.byPart)).toEqual(new Map([['src/agent/agent.ts', 2], ['@libp2p/utils', 1], ['the bundle (dist/)', 1]]))
    expect(new Map(s.byFunction)).toEqual(new Map([['tick agent.ts:42', 2], ['decode varint.js:10', 1], ['__toESM discovery.cjs:1', 1]]))
    // Without the map, all of it is the bundle.
    expect(summarize(samples).byPart).toEqual([['the bundle (dist/)', 4]])
  })
})
