/**
 * An agent back on its data dir asks its peers what became of its VMs
 * (agent/restored-check.ts), with stand-ins for the network and a manual
 * clock: it waits for a first connection, asks up to three peers in batches
 * the protocol allows, hands each later head to the claim path (to be proved
 * by its owner) and each tombstone to the intake — only those about the VMs
 * it asked of — and gives up, without failing, when no peer comes.
 */
import pino from 'pino'
import { describe, expect, it } from 'vitest'
import { checkRestored, DEFAULT_RESTORED_CHECK, type RestoredCheckInit } from '../../src/agent/restored-check.ts'
import { ManualClock } from '../../src/core/clock.ts'
import type { Tombstone } from '../../src/core/ownership-messages.ts'
import { type LaterHead, MAX_RECORDS_PER_MESSAGE } from '../../src/core/replica-messages.ts'

const vm = (i: number): string => `vm-${String(i).padStart(12, '0')}`
const ME = 'me'

function harness (opts: { vms: number, peersAfterMs?: number, peers?: string[], answers?: (peer: string, ids: string[]) => { later: LaterHead[], tombstones: Tombstone[] } }) {
  const clock = new ManualClock(0)
  const asked: Array<[string, number]> = []
  const heard: Array<[string, string, number]> = []
  const taken: Array<[string, string[]]> = []
  const init: RestoredCheckInit = {
    log: pino({ level: 'silent' }),
    heads: () => Array.from({ length: opts.vms }, (_, i) => ({ vmId: vm(i), epoch: 0, owner: ME })),
    peers: () => clock.now() >= (opts.peersAfterMs ?? 0) ? (opts.peers ?? ['p1', 'p2', 'p3', 'p4']) : [],
    ask: async (peer, heads) => {
      asked.push([peer, heads.length])
      return opts.answers?.(peer, heads.map(h => h.vmId)) ?? { later: [], tombstones: [] }
    },
    heard: (owner, vmId, head) => { heard.push([owner, vmId, head.epoch]) },
    tombstones: (from, ts) => { taken.push([from, ts.map(t => t.vmId)]) },
    sleep: async (ms) => { clock.advance(ms) },
    now: () => clock.now()
  }
  return { init, clock, asked, heard, taken }
}

describe('checkRestored', () => {
  it('waits for a first peer, asks three in batches, and hands on only what is about its own VMs', async () => {
    const h = harness({
      vms: MAX_RECORDS_PER_MESSAGE + 2,
      peersAfterMs: 700,
      answers: (peer, ids) => peer !== 'p2' ? { later: [], tombstones: [] } : {
        later: ids.includes(vm(1)) ? [{ vmId: vm(1), epoch: 1, owner: 'q' }, { vmId: 'vm-notours0000', epoch: 9, owner: 'q' }] : [],
        tombstones: ids.includes(vm(MAX_RECORDS_PER_MESSAGE + 1)) ? [{ vmId: vm(MAX_RECORDS_PER_MESSAGE + 1) } as Tombstone, { vmId: 'vm-notours0001' } as Tombstone] : []
      }
    })
    const report = await checkRestored(h.init)
    expect(h.clock.now()).toBeGreaterThanOrEqual(700)
    expect(h.clock.now()).toBeLessThan(700 + 2 * DEFAULT_RESTORED_CHECK.pollMs)
    // Three peers, each asked in two batches (48 + 2).
    expect(h.asked.map(([p]) => p).sort()).toEqual(['p1', 'p1', 'p2', 'p2', 'p3', 'p3'])
    expect(h.asked.filter(([p]) => p === 'p1').map(([, n]) => n)).toEqual([MAX_RECORDS_PER_MESSAGE, 2])
    expect(h.heard).toEqual([['q', vm(1), 1]])
    expect(h.taken).toEqual([['p2', [vm(MAX_RECORDS_PER_MESSAGE + 1)]]])
    expect(report).toEqual({ asked: 3, answered: 3, vms: MAX_RECORDS_PER_MESSAGE + 2, later: 1, tombstones: 1 })
  })

  it('a peer that cannot be asked is not counted as answered; the others still are', async () => {
    const h = harness({ vms: 3, peers: ['p1', 'p2'] })
    const ask = h.init.ask
    h.init.ask = async (peer, heads) => { if (peer === 'p1') throw new Error('reset'); return await ask(peer, heads) }
    expect(await checkRestored(h.init)).toMatchObject({ asked: 2, answered: 1 })
  })

  it('gives up after connectWithinMs with no peer, asking nothing; with no VM it asks nothing at once', async () => {
    const h = harness({ vms: 2, peersAfterMs: Infinity })
    expect(await checkRestored(h.init, { ...DEFAULT_RESTORED_CHECK, connectWithinMs: 2_000 })).toMatchObject({ asked: 0, answered: 0, vms: 2 })
    expect(h.clock.now()).toBeGreaterThanOrEqual(2_000)
    expect(h.asked).toEqual([])
    const none = harness({ vms: 0 })
    expect(await checkRestored(none.init)).toMatchObject({ asked: 0, vms: 0 })
    expect(none.clock.now()).toBe(0)
  })
})
