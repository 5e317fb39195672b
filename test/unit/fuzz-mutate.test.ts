/** The fuzzer's draws (src/chaos/fuzz): near-valid variants of real messages, the same for a seed, and never a valid message that would change state. */
import { describe, expect, it } from 'vitest'
import { migrateCorpus, placeCorpus, rebalanceCorpus, replicaCorpus, swimCorpus, type TargetFacts } from '../../src/chaos/fuzz/corpus.ts'
import { gossipCases, streamCases } from '../../src/chaos/fuzz/entries.ts'
import { gossipBases } from '../../src/chaos/fuzz/corpus.ts'
import { httpCases } from '../../src/chaos/fuzz/http.ts'
import { mutate, sampleDraws } from '../../src/chaos/fuzz/mutate.ts'
import { placeRequestSchema } from '../../src/core/messages.ts'

const SEED = 42
const facts: TargetFacts = {
  rogueId: '12D3KooWRogueRogueRogueRogueRogueRogueRogueRogueRogue',
  targetId: '12D3KooWTargetTargetTargetTargetTargetTargetTargetTa',
  knownVms: new Set(['vm-real0001']),
  knownPeers: new Set(['12D3KooWTargetTargetTargetTargetTargetTargetTargetTa']),
  capacity: { cpu: 4, memMiB: 8192 },
  cpuOvercommit: 1,
  heardStates: []
}
const decoder = new TextDecoder()

describe('the fuzzer\'s draws', () => {
  it('keep a message bounded when arrays grown one inside another share their items (seed 1296338711 once built one past what a string can hold)', () => {
    const base = { v: 1, items: [{ id: 'a', links: [{ k: 1 }] }] }
    let x = 12345
    const next = (): number => { x = (x * 1103515245 + 12345) % 2 ** 31; return x }
    for (let run = 0; run < 40; run++) {
      const grows = Array.from({ length: 4 }, () => ({ kind: 'grow' as const, pick: next(), value: { x: 'y'.repeat(100) } }))
      const out = mutate(base as any, grows)
      expect((JSON.stringify(out) ?? '').length).toBeLessThanOrEqual(4_000_000)
    }
  })

  it('are the same for the same seed and differ for another', () => {
    console.log(`seed ${SEED}`)
    expect(sampleDraws(5, 50, SEED)).toEqual(sampleDraws(5, 50, SEED))
    expect(sampleDraws(5, 50, SEED)).not.toEqual(sampleDraws(5, 50, SEED + 1))
  })

  it('change the message they start from, and leave it intact', () => {
    const base = { v: 1, op: 'release', leaseId: '00000000-0000-4000-8000-000000000000' }
    const copy = structuredClone(base)
    let changed = 0
    for (const d of sampleDraws(1, 200, SEED)) {
      if (d.mutations.length > 0 && JSON.stringify(mutate(base, d.mutations)) !== JSON.stringify(base)) changed++
    }
    expect(base).toEqual(copy)
    expect(changed).toBeGreaterThan(150)
  })

  it('are mostly near-valid: JSON with the operation of a real message, refused by the schema', () => {
    const cases = streamCases(placeCorpus(facts), facts, 400, SEED, 1024 * 1024)
    expect(cases.reduce((n, c) => n + c.times, 0)).toBe(400)
    const near = cases.filter(c => c.json != null && ['reserve', 'commit', 'release', 'delete'].includes((c.json as any).op) && !placeRequestSchema.safeParse(c.json).success)
    expect(near.length).toBeGreaterThan(cases.length / 3)
    expect(cases.filter(c => c.invalid).length).toBeGreaterThan(cases.length * 0.7)
    // Broken frames and replays too.
    expect(cases.some(c => c.json === undefined)).toBe(true)
    expect(cases.some(c => c.times > 1)).toBe(true)
  })

  it('send a valid message only when it cannot change the target: no reserve that fits, no known VM, no event token', () => {
    for (const corpus of [placeCorpus(facts), migrateCorpus(facts), rebalanceCorpus(facts), replicaCorpus(facts), swimCorpus(facts)]) {
      for (const c of streamCases(corpus, facts, 300, SEED, 1024 * 1024).filter(c => !c.invalid)) {
        const m = c.json as any
        expect(decoder.decode(c.bytes)).not.toContain('vm-real0001')
        if (m.op === 'reserve') expect(m.resources.cpu > 4 || m.resources.memMiB > 8192).toBe(true)
        if (m.op === 'propose') expect(m.vm.cpu > 4 || m.vm.memMiB > 8192).toBe(true)
        expect(m.msg?.type).not.toBe('event')
      }
    }
  })

  it('publish on the state topic only what its edge refuses, or a delta it cannot apply', () => {
    const cases = gossipCases(gossipBases(facts), facts, 300, SEED)
    expect(cases.filter(c => c.invalid).length).toBeGreaterThan(cases.length * 0.8)
  })

  it('never send the API a create it would accept, nor a change to a VM that exists', () => {
    const cases = httpCases(500, SEED, { token: 'a-token-of-test', realVm: 'vm-real0001' })
    expect(cases).toHaveLength(500)
    for (const c of cases) {
      if (c.method !== 'GET') expect(c.path).not.toContain('vm-real0001')
    }
    expect(new Set(cases.map(c => c.path.split('?')[0].replace(/vm-[^/]*/, ':id'))).size).toBeGreaterThan(10)
  })
})
