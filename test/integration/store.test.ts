/**
 * The store's group commit: writes queued in one turn share one transaction,
 * each caller learns when its own write is durable, a write nobody waits on
 * still reaches the disk, and order is kept between a put and a delete.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { DatabaseSync } from 'node:sqlite'
import type { Chain } from '../../src/core/ownership-messages.ts'
import { ReplicaStore } from '../../src/store/replica-store.ts'
import { Store, type VmRecord } from '../../src/store/store.ts'

const SIG = `${'A'.repeat(86)}==`
const OWNER = '12D3KooWNodeUwner'

const dirs: string[] = []
function dir (): string {
  const d = mkdtempSync(join(tmpdir(), 'discovery-store-'))
  dirs.push(d)
  return d
}
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }) })

function rec (n: number, state: VmRecord['state'] = 'creating'): VmRecord {
  const id = `vm-${String(n).padStart(8, '0')}`
  return { spec: { id, name: id, cpu: 1, memMiB: 256, createdAtMs: 1 }, state, epoch: 0, chain: [] }
}

describe('Store', () => {
  it('runs SQLite in WAL mode with synchronous = FULL (the log fsync\'d at every commit), in a new data dir it creates', () => {
    const d = join(dir(), 'nested', 'data')
    const store = Store.open(d)
    expect(store.durability()).toEqual({ journalMode: 'wal', synchronous: 2 })
    store.close()
  })

  it('makes every write of one turn durable together, and each caller waits for its own', async () => {
    const d = dir()
    const store = Store.open(d)
    const writes = Array.from({ length: 50 }, (_, i) => store.writeVm(rec(i)))
    // Nothing is durable before the batch runs.
    const reader = Store.open(d)
    expect(reader.listVms()).toHaveLength(0)
    await Promise.all(writes)
    expect(reader.listVms()).toHaveLength(50)
    reader.close()
    store.close()
  })

  it('keeps the order of a put and a delete of the same VM in one batch', async () => {
    const d = dir()
    const store = Store.open(d)
    await Promise.all([store.writeVm(rec(1)), store.removeVm(rec(1).spec.id), store.writeVm(rec(2))])
    expect(store.listVms().map(r => r.spec.id)).toEqual([rec(2).spec.id])
    store.close()
  })

  it('writes a record nobody waits on with the next batch, or on close', async () => {
    const d = dir()
    const store = Store.open(d)
    await store.writeVm(rec(1))
    store.putVmLater(rec(1, 'running'))
    await store.writeVm(rec(2))
    expect(store.listVms().find(r => r.spec.id === rec(1).spec.id)?.state).toBe('running')
    store.putVmLater(rec(2, 'running'))
    store.close()
    const again = Store.open(d)
    expect(again.listVms().map(r => r.state)).toEqual(['running', 'running'])
    again.close()
  })

  it('a synchronous write goes after what is queued', async () => {
    const d = dir()
    const store = Store.open(d)
    const queued = store.writeVm(rec(1, 'creating'))
    store.putVm(rec(1, 'migrating'))
    await queued
    expect(store.listVms().map(r => r.state)).toEqual(['migrating'])
    store.close()
  })

  it('keeps each VM\'s ownership chain, and opens a data dir of an earlier version (no chains) as one without', async () => {
    const d = dir()
    const old = new DatabaseSync(join(d, 'discovery.sqlite'))
    old.exec('CREATE TABLE vms (id TEXT PRIMARY KEY, spec TEXT NOT NULL, state TEXT NOT NULL, epoch INTEGER NOT NULL)')
    old.prepare('INSERT INTO vms VALUES (?, ?, ?, ?)').run(rec(1).spec.id, JSON.stringify(rec(1).spec), 'running', 3)
    old.close()
    const store = Store.open(d)
    expect(store.listVms()).toEqual([{ ...rec(1, 'running'), epoch: 3, chain: [] }])
    const chain: Chain = [{ kind: 'create', vmId: rec(2).spec.id, epoch: 0, owner: OWNER, sig: SIG }]
    await store.writeVm({ ...rec(2), chain })
    store.close()
    const again = Store.open(d)
    expect(again.listVms().find(r => r.spec.id === rec(2).spec.id)?.chain).toEqual(chain)
    again.close()
  })
})

describe('ReplicaStore', () => {
  it('keeps replicas and tombstones across a reopen, and removes a row that no longer parses', () => {
    const d = dir()
    const store = Store.open(d)
    const replicas = new ReplicaStore(store)
    const id = rec(1).spec.id
    const chain: Chain = [{ kind: 'create', vmId: id, epoch: 0, owner: OWNER, sig: SIG }]
    const record = { spec: rec(1).spec, chain, designation: { vmId: id, epoch: 0, owner: OWNER, replicas: ['12D3KooWNodeHxder'], issuedAtMs: 5, sig: SIG } }
    replicas.putReplicas([{ record, receivedAtMs: 10 }])
    replicas.putTombstones([{ vmId: rec(2).spec.id, epoch: 0, owner: OWNER, deletedAtMs: 7, chain: [{ ...chain[0], vmId: rec(2).spec.id }], sig: SIG }], 20)
    store.db.prepare('INSERT INTO replicas (id, owner, received_ms, record) VALUES (?, ?, ?, ?)').run('vm-corrupt1', OWNER, 1, '{"spec": 1}')
    store.close()
    const again = Store.open(d)
    const reopened = new ReplicaStore(again)
    expect(reopened.listReplicas()).toEqual({ replicas: [{ record, receivedAtMs: 10 }], corrupt: 1 })
    expect(reopened.listReplicas().corrupt).toBe(0)
    expect(reopened.listTombstones().map(t => [t.tombstone.vmId, t.storedAtMs])).toEqual([[rec(2).spec.id, 20]])
    reopened.dropReplicas([id])
    reopened.dropTombstones([rec(2).spec.id])
    expect(reopened.listReplicas().replicas).toEqual([])
    expect(reopened.listTombstones()).toEqual([])
    again.close()
  })
})
