/**
 * The store's group commit: writes queued in one turn share one transaction,
 * each caller learns when its own write is durable, a write nobody waits on
 * still reaches the disk, and order is kept between a put and a delete.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { Store, type VmRecord } from '../../src/store/store.ts'

const dirs: string[] = []
function dir (): string {
  const d = mkdtempSync(join(tmpdir(), 'discovery-store-'))
  dirs.push(d)
  return d
}
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }) })

function rec (n: number, state: VmRecord['state'] = 'creating'): VmRecord {
  const id = `vm-${String(n).padStart(8, '0')}`
  return { spec: { id, name: id, cpu: 1, memMiB: 256, createdAtMs: 1 }, state, epoch: 0 }
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
})
