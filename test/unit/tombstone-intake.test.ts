/**
 * Tombstones as they reach a node (agent/tombstone-intake.ts), with real
 * Ed25519 keys and in-memory stand-ins for the local node and the holdings:
 * a tombstone of an older head deletes our later copy (a restart of it) and
 * waits for that delete; the sender is told the later heads we know of — the
 * restart we made, the record we hold, the copies gossiped — but never our
 * own, its own, nor lower ones; a stranger's tombstone that reaches nothing
 * is refused.
 */
import pino from 'pino'
import { beforeAll, describe, expect, it } from 'vitest'
import { TombstoneIntake } from '../../src/agent/tombstone-intake.ts'
import { designate, extend, headOf, makeTombstone, originLink, restartLink } from '../../src/core/ownership.ts'
import type { Chain, Tombstone } from '../../src/core/ownership-messages.ts'
import { type Identity, identities } from './signers.ts'

let X: Identity, R: Identity, Y: Identity, Z: Identity, me: Identity
const VM = 'vm-0123456789ab'

beforeAll(async () => { [X, R, Y, Z, me] = await identities(5) })

const origin = (): Chain => [originLink(VM, X.signer)]
/** X's VM restarted by R (its designated holder) on `on`. */
const restarted = (on: string): Chain => extend(origin(), restartLink(origin(), designate(VM, headOf(origin()), [R.id, me.id], 1, X.signer), on, R.signer))

function intake (opts: { copy?: Chain, held?: Chain, restartedTo?: { epoch: number, owner: string }, gossip?: Array<{ node: string, epoch: number }> }) {
  const removed: string[] = []
  const dropped: string[] = []
  const kept: Tombstone[] = []
  const refusals: string[] = []
  let release!: () => void
  const removal = new Promise<void>(resolve => { release = resolve })
  const t = new TombstoneIntake({
    self: me.id,
    signer: me.signer,
    local: {
      get: (id: string) => id === VM && opts.copy != null ? { spec: { id }, chain: opts.copy } : undefined,
      remove: async (id: string) => { removed.push(id); await removal; return 'deleted' }
    } as any,
    holdings: {
      get: (id: string) => id === VM && opts.held != null && !dropped.includes(id) ? { record: { chain: opts.held } } : undefined,
      drop: (ids: string[]) => { dropped.push(...ids); return ids },
      addTombstones: (ts: Tombstone[]) => { kept.push(...ts) }
    } as any,
    log: pino({ level: 'silent' }),
    restartedTo: (id) => id === VM ? opts.restartedTo : undefined,
    clusterVms: () => (opts.gossip ?? []).map(g => ({ id: VM, name: VM, cpu: 1, memMiB: 256, state: 'running' as const, epoch: g.epoch, node: g.node })),
    refused: (_vmId, _from, reason) => { refusals.push(reason) }
  })
  return { t, removed, dropped, kept, refusals, release }
}

describe('TombstoneIntake', () => {
  it('deletes our later copy with an older head\'s tombstone, and is done only once that delete is', async () => {
    const h = intake({ copy: restarted(me.id) })
    const { refused, later, deleting } = h.t.take(X.id, [makeTombstone(origin(), 5, X.signer)], true)
    expect(refused).toEqual([])
    expect(later).toEqual([])
    expect(h.removed).toEqual([VM])
    let done = false
    void deleting.then(() => { done = true })
    await new Promise(resolve => setTimeout(resolve, 0))
    expect(done).toBe(false)
    h.release()
    await deleting
    expect(h.kept.map(k => k.vmId)).toEqual([VM])
  })

  it('tells the sender of the later heads it knows — its restart, its record, the gossip — read before the record is dropped', () => {
    const h = intake({
      held: restarted(Y.id),
      restartedTo: { epoch: 1, owner: Y.id },
      gossip: [{ node: Z.id, epoch: 2 }, { node: X.id, epoch: 0 }, { node: me.id, epoch: 3 }, { node: R.id, epoch: 3 }]
    })
    const { later } = h.t.take(R.id, [makeTombstone(origin(), 5, X.signer)], true)
    // Not the sender (R), not ourselves, not the tombstone's own head (X at 0).
    expect(later.sort((a, b) => a.epoch - b.epoch)).toEqual([{ vmId: VM, epoch: 1, owner: Y.id }, { vmId: VM, epoch: 2, owner: Z.id }])
    expect(h.dropped).toEqual([VM])
  })

  it('answers an owner back from a restart (heads) with the later heads it knows, its own copy included, never the asker\'s', () => {
    const h = intake({ copy: restarted(me.id), gossip: [{ node: X.id, epoch: 0 }] })
    const asked = [{ vmId: VM, ...headOf(origin()) }]
    // X asks about its copy at epoch 0: our restart of it (epoch 1) is later; X's own head, gossiped, is not named.
    expect(h.t.laterHeads(asked, X.id, true)).toEqual([{ vmId: VM, epoch: 1, owner: me.id }])
    // Without withOwn (a delete's answer) our own copy is not named: we delete it ourselves.
    expect(h.t.laterHeads(asked, X.id)).toEqual([])
    // Nothing above a head that is already the latest.
    expect(h.t.laterHeads([{ vmId: VM, ...headOf(restarted(me.id)) }], X.id, true)).toEqual([])
  })

  it('answers a restarter (tombstones) with every head it knows of the VMs asked — its restart, its record, its copy, the gossip — but the asker\'s', () => {
    const h = intake({ held: origin(), restartedTo: { epoch: 1, owner: Y.id }, gossip: [{ node: Z.id, epoch: 1 }, { node: R.id, epoch: 1 }] })
    const heads = h.t.knownHeads([VM, 'vm-00000000000f'], R.id).sort((a, b) => a.epoch - b.epoch || a.owner.localeCompare(b.owner))
    expect(heads).toEqual([{ vmId: VM, epoch: 0, owner: X.id }, ...[{ vmId: VM, epoch: 1, owner: Y.id }, { vmId: VM, epoch: 1, owner: Z.id }].sort((a, b) => a.owner.localeCompare(b.owner))])
    const own = intake({ copy: restarted(me.id) })
    expect(own.t.knownHeads([VM], R.id)).toEqual([{ vmId: VM, epoch: 1, owner: me.id }])
    expect(own.t.knownHeads([], R.id)).toEqual([])
  })

  it('refuses a stranger\'s tombstone that reaches nothing held here, and tells it nothing', () => {
    const h = intake({ gossip: [{ node: Y.id, epoch: 1 }] })
    const { refused, later } = h.t.take(Z.id, [makeTombstone(origin(), 5, X.signer)], true)
    expect(refused.map(r => r.vmId)).toEqual([VM])
    expect(later).toEqual([])
    expect(h.kept).toEqual([])
  })
})
