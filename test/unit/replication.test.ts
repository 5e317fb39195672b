/**
 * The owner's side of replicated records (agent/replication.ts), with
 * in-memory stand-ins for the local node, the holdings and the network, and
 * real Ed25519 keys: records go to the k next peers of the ring with a
 * designation naming them in ring order; when the ring changes, every record
 * goes to the new set with a new designation and is taken back from the
 * holders that left; a user's delete sends its tombstone; a failed push is
 * sent again; a holder's `held` question is answered.
 */
import pino from 'pino'
import { beforeAll, describe, expect, it } from 'vitest'
import { Replication } from '../../src/agent/replication.ts'
import { checkDesignation, headOf, originLink } from '../../src/core/ownership.ts'
import type { Tombstone } from '../../src/core/ownership-messages.ts'
import type { ReplicaRequest, ReplicaResponse } from '../../src/core/replica-messages.ts'
import { DEFAULT_REPLICA, replicaSet } from '../../src/core/replica-rule.ts'
import { Ring } from '../../src/core/ring.ts'
import type { VmRecord } from '../../src/store/index.ts'
import { type Identity, identities } from './signers.ts'

let me: Identity
let peers: string[]

beforeAll(async () => {
  const ids = await identities(6)
  me = ids[0]
  peers = ids.slice(1).map(i => i.id)
})

function vm (n: number): VmRecord {
  const id = `vm-${String(n).padStart(12, '0')}`
  return { spec: { id, name: id, cpu: 1, memMiB: 256, createdAtMs: 1 }, state: 'running', epoch: 0, chain: [originLink(id, me.signer)] }
}

async function settle (): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise(resolve => setTimeout(resolve, 0))
}

function harness (records: VmRecord[], live: string[]) {
  const local = new Map(records.map(r => [r.spec.id, r]))
  const sent: Array<{ to: string, req: ReplicaRequest }> = []
  const tombstones: Tombstone[] = []
  let ringPeers = live
  let now = 0
  let failing = new Set<string>()
  /** What each peer answers a delete with: the later heads it knows of, after `gate` (when given) resolves. */
  const answers = new Map<string, { later: Array<{ vmId: string, epoch: number, owner: string }>, gate?: Promise<void> }>()
  let known: string[] = []
  /** What each peer answers a put with: tombstones of records it refused as deleted. */
  const putTombstones = new Map<string, Tombstone[]>()
  const taken: Array<{ from: string, ids: string[] }> = []
  /** A put to a peer answered only once its gate resolves: a push in flight. */
  const putGates = new Map<string, Promise<void>>()
  const r = new Replication({
    self: me.id,
    config: { ...DEFAULT_REPLICA, pushDelayMs: 0, ringSettleMs: 1_000 },
    signer: me.signer,
    local: { get: (id: string) => local.get(id), records: () => [...local.values()] } as any,
    holdings: { addTombstones: (t: Tombstone[]) => { tombstones.push(...t) }, tombstone: (id: string) => tombstones.find(t => t.vmId === id) } as any,
    log: pino({ level: 'silent' }),
    now: () => now,
    ring: () => new Ring([me.id, ...ringPeers]),
    status: (p) => ringPeers.includes(p) ? 'alive' : 'dead',
    send: async (to, req): Promise<ReplicaResponse> => {
      sent.push({ to, req })
      if (req.op === 'put') await putGates.get(to)
      if (failing.has(to)) throw new Error('unreachable')
      const dead = req.op === 'put' ? putTombstones.get(to) : undefined
      if (dead != null) return { v: 1, ok: true, refused: dead.map(t => ({ vmId: t.vmId, reason: `${t.vmId} was deleted` })), tombstones: dead }
      const a = req.op === 'delete' ? answers.get(to) : undefined
      if (a == null) return { v: 1, ok: true }
      await a.gate
      return { v: 1, ok: true, later: a.later }
    },
    deleteWaitMs: 1_000,
    laterOwners: () => known,
    takeTombstones: (from, ts) => { taken.push({ from, ids: ts.map(t => t.vmId) }) }
  })
  return {
    r,
    sent,
    tombstones,
    local,
    setRing: (p: string[]) => { ringPeers = p; r.ringChanged() },
    advance: (ms: number) => { now += ms; r.tick() },
    fail: (p: string[]) => { failing = new Set(p) },
    answers,
    putTombstones,
    taken,
    putGates,
    know: (p: string[]) => { known = p }
  }
}

/** Holders settled for vm 1 and vm 2, the second holder unreachable, vm 1 deleted locally (its tombstone not sent yet). */
async function deleting (): Promise<{ h: ReturnType<typeof harness>, a: string, b: string, gone: VmRecord }> {
  const h = harness([vm(1), vm(2)], peers)
  h.r.ringChanged()
  h.advance(1_000)
  await settle()
  const [a, b] = h.r.holders
  h.fail([b])
  const gone = vm(1)
  h.local.delete(gone.spec.id)
  return { h, a, b, gone }
}

/** Holders settled for vm 1 on a ring without `joining`, the peer that will join as our first holder. */
async function beforeJoin (): Promise<{ h: ReturnType<typeof harness>, joining: string }> {
  const joining = replicaSet(new Ring([me.id, ...peers]), me.id, 1)[0]
  const h = harness([vm(1)], peers.filter(p => p !== joining))
  h.r.ringChanged()
  h.advance(1_000)
  await settle()
  return { h, joining }
}

const puts = (sent: Array<{ to: string, req: ReplicaRequest }>, to: string): string[] =>
  sent.filter(s => s.to === to && s.req.op === 'put').flatMap(s => s.req.op === 'put' ? s.req.records.map(x => x.spec.id) : [])

describe('Replication', () => {
  it('sends every record to the k next peers once the ring has settled, designating them in ring order', async () => {
    const h = harness([vm(1), vm(2)], peers)
    h.r.ringChanged()
    h.advance(500)
    await settle()
    expect(h.sent).toEqual([])
    h.advance(600)
    await settle()
    const holders = replicaSet(new Ring([me.id, ...peers]), me.id, 2)
    expect(h.r.holders).toEqual(holders)
    for (const p of holders) expect(puts(h.sent, p).sort()).toEqual([vm(1).spec.id, vm(2).spec.id])
    const put = h.sent.find(s => s.req.op === 'put')!.req
    if (put.op !== 'put') throw new Error('not a put')
    const rec = put.records[0]
    expect(rec.designation.replicas).toEqual(holders)
    expect(checkDesignation(rec.designation, rec.spec.id, headOf(rec.chain), me.signer)).toBeUndefined()
    // A new VM goes to the same holders.
    const three = vm(3)
    h.local.set(three.spec.id, three)
    h.r.added(three)
    await settle()
    for (const p of holders) expect(puts(h.sent, p)).toContain(three.spec.id)
  })

  it('takes the tombstones a holder answers a put with (our copy was deleted at a later head while we were cut off)', async () => {
    const h = harness([vm(1), vm(2)], peers)
    const holders = replicaSet(new Ring([me.id, ...peers]), me.id, 2)
    const t = { vmId: vm(1).spec.id } as Tombstone
    h.putTombstones.set(holders[0], [t])
    h.r.ringChanged()
    h.advance(1_100)
    await settle()
    expect(h.taken).toEqual([{ from: holders[0], ids: [vm(1).spec.id] }])
  })

  it('when a holder dies: every record to the new set, then taken back from nobody (the dead one gets nothing)', async () => {
    const h = harness([vm(1)], peers)
    h.r.ringChanged()
    h.advance(1_000)
    await settle()
    const [first, second] = h.r.holders
    h.sent.length = 0
    h.setRing(peers.filter(p => p !== first))
    h.advance(1_000)
    await settle()
    const now = h.r.holders
    expect(now[0]).toBe(second)
    expect(now).not.toContain(first)
    for (const p of now) expect(puts(h.sent, p)).toEqual([vm(1).spec.id])
    expect(h.sent.filter(s => s.to === first)).toEqual([])
  })

  it('when a peer joins before the holders: records to it, and taken back from the holder that left', async () => {
    const { h, joining } = await beforeJoin()
    const before = h.r.holders
    h.sent.length = 0
    h.setRing(peers)
    h.advance(1_000)
    await settle()
    expect(h.r.holders[0]).toBe(joining)
    const left = before.filter(p => !h.r.holders.includes(p))
    expect(left).toHaveLength(1)
    expect(puts(h.sent, joining)).toEqual([vm(1).spec.id])
    expect(h.sent.filter(s => s.to === left[0]).map(s => s.req.op)).toEqual(['drop'])
  })

  it('pushes a record again with the new designation when the ring changes while a push of it is in flight to a holder that stays', async () => {
    // The holder that stays moves from first to second: the restarter its record names must change with it.
    const { h, joining } = await beforeJoin()
    const stays = h.r.holders[0]
    let open!: () => void
    h.putGates.set(stays, new Promise<void>(resolve => { open = resolve }))
    h.local.set(vm(2).spec.id, vm(2))
    h.r.added(vm(2))
    await new Promise(resolve => setTimeout(resolve, 5))
    expect(puts(h.sent, stays)).toContain(vm(2).spec.id)
    h.setRing(peers)
    h.advance(1_000)
    expect(h.r.holders).toEqual([joining, stays])
    h.putGates.delete(stays)
    open()
    await settle()
    const last = (id: string): string[] | undefined => h.sent.filter(s => s.to === stays && s.req.op === 'put').flatMap(s => s.req.op === 'put' ? s.req.records.filter(x => x.spec.id === id) : []).at(-1)?.designation.replicas
    expect(last(vm(2).spec.id)).toEqual([joining, stays])
    expect(last(vm(1).spec.id)).toEqual([joining, stays])
    expect(h.r.pending).toBe(0)
  })

  it('a holder that leaves and comes back before the drop of its records went out gets them pushed, and no drop after', async () => {
    const { h, joining } = await beforeJoin()
    const second = h.r.holders[1]
    h.fail([second])
    // A peer joins before the holders: the second one leaves, its drop unsent (unreachable); the joiner leaves again.
    h.setRing(peers)
    h.advance(1_000)
    await settle()
    expect(h.r.holders).not.toContain(second)
    h.setRing(peers.filter(p => p !== joining))
    h.advance(1_000)
    await settle()
    expect(h.r.holders[1]).toBe(second)
    const from = h.sent.length
    h.fail([])
    h.advance(10_000)
    await settle()
    const ops = h.sent.slice(from).filter(s => s.to === second).map(s => s.req.op)
    expect(ops).toContain('put')
    expect(ops.slice(ops.lastIndexOf('put'))).not.toContain('drop')
  })

  it('keeps what is queued for a holder while it is dead, and sends it if it comes back still a holder (the same holders: nothing pushed anew)', async () => {
    const h = harness([vm(1)], peers)
    h.r.ringChanged()
    h.advance(1_000)
    await settle()
    const [a, b] = replicaSet(new Ring([me.id, ...peers]), me.id, 2)
    // Both holders die (killed together); a VM is restarted here before the ring has settled; both come back within the second.
    h.setRing(peers.filter(p => p !== a && p !== b))
    h.local.set(vm(2).spec.id, vm(2))
    h.r.added(vm(2))
    h.advance(100)
    await settle()
    expect(puts(h.sent, a)).not.toContain(vm(2).spec.id)
    expect(h.r.pending).toBe(2)
    h.setRing(peers)
    h.advance(1_000)
    await settle()
    h.advance(100)
    await settle()
    expect(puts(h.sent, a)).toContain(vm(2).spec.id)
    expect(puts(h.sent, b)).toContain(vm(2).spec.id)
    expect(h.r.pending).toBe(0)
  })

  it('sends a user\'s delete as a tombstone, keeps it, sends it again to a holder that did not answer, and answers held', async () => {
    const { h, a, b, gone } = await deleting()
    // b alive and never reached within the wait: not certain.
    expect(await h.r.deleted(gone)).toBe(false)
    expect(h.tombstones.map(t => t.vmId)).toEqual([gone.spec.id])
    expect(h.sent.filter(s => s.req.op === 'delete').map(s => s.to).sort()).toEqual([a, b].sort())
    h.fail([])
    h.advance(2_000)
    await settle()
    expect(h.sent.filter(s => s.req.op === 'delete' && s.to === b)).toHaveLength(2)
    expect(h.r.heldBy(a, [gone.spec.id, vm(2).spec.id])).toEqual({ drop: [gone.spec.id], tombstones: [h.tombstones[0]] })
    expect(h.r.heldBy(peers.find(p => !h.r.holders.includes(p))!, [vm(2).spec.id]).drop).toEqual([vm(2).spec.id])
  })

  it('answers a delete certain once an unreachable holder is declared dead during the wait (a partition being detected)', async () => {
    const { h, a, b, gone } = await deleting()
    const answer = h.r.deleted(gone)
    await settle()
    // Still waiting for b: a settles, b's tombstone is queued.
    let sure: boolean | undefined
    void answer.then(v => { sure = v })
    await settle()
    expect(sure).toBeUndefined()
    h.setRing(peers.filter(p => p !== b))
    h.r.peerDead()
    expect(await answer).toBe(true)
    expect(h.sent.filter(s => s.req.op === 'delete').map(s => s.to).sort()).toEqual([a, b].sort())
  })

  it('answers a delete certain once the outbox delivers the tombstone to a holder the first send missed', async () => {
    const { h, b, gone } = await deleting()
    const answer = h.r.deleted(gone)
    await settle()
    h.fail([])
    h.advance(100)
    expect(await answer).toBe(true)
    expect(h.sent.filter(s => s.req.op === 'delete' && s.to === b)).toHaveLength(2)
  })

  it('sends a delete on along a chain of restarts: to the later owner a holder names, then the one that names, and waits for the last', async () => {
    const { h, a, gone } = await deleting()
    h.fail([])
    const [y, z, w] = peers.filter(p => !h.r.holders.includes(p))
    const id = gone.spec.id
    // a restarted the VM on y (epoch 1), y's holder restarted it on z (epoch 2); we know of neither.
    let open!: () => void
    h.answers.set(a, { later: [{ vmId: id, epoch: 1, owner: y }, { vmId: 'vm-other', epoch: 5, owner: w }] })
    h.answers.set(y, { later: [{ vmId: id, epoch: 2, owner: z }, { vmId: id, epoch: 2, owner: me.id }] })
    h.answers.set(z, { later: [{ vmId: id, epoch: 1, owner: y }], gate: new Promise(resolve => { open = resolve }) })
    let sure: boolean | undefined
    void h.r.deleted(gone).then(v => { sure = v })
    await settle()
    const deletesTo = (): string[] => h.sent.filter(s => s.req.op === 'delete').map(s => s.to)
    expect(deletesTo()).toContain(y)
    expect(deletesTo()).toContain(z)
    // Not answered while z, the last of the chain, has not taken it; no one asked twice, nor ourselves, nor another VM's owner.
    expect(sure).toBeUndefined()
    open()
    await settle()
    expect(sure).toBe(true)
    expect(deletesTo().filter(p => p === y || p === z)).toEqual([y, z])
    expect(deletesTo()).not.toContain(me.id)
    expect(deletesTo()).not.toContain(w)
  })

  it('sends a delete to the owners of later copies this node knows of itself', async () => {
    const { h, gone } = await deleting()
    h.fail([])
    const other = peers.find(p => !h.r.holders.includes(p))!
    h.know([other])
    expect(await h.r.deleted(gone)).toBe(true)
    expect(h.sent.filter(s => s.req.op === 'delete').map(s => s.to)).toContain(other)
  })
})
