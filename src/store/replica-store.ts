/**
 * What this node holds for others, in the agent's SQLite file: the replicas
 * of other owners' VMs (what a restart needs) and the tombstones of deleted
 * VMs (what refuses their restart). Each write is one transaction, committed
 * when the call returns: a holder answers a `put` only once the records
 * would survive its own process's crash.
 *
 * Replicas are committed with `synchronous = NORMAL` (WAL: not fsync'd at
 * each commit, but at the next fsync'd commit of the VM records or at a
 * checkpoint), then the connection goes back to `FULL`. A replica is a copy:
 * the VM is durable on its owner (`FULL`); what a replica lost in its holder's
 * power cut costs is a restart elsewhere while that owner is down; and with
 * `FULL` every create would cost two fsyncs more, one on each holder, each
 * blocking its event loop (measured here under load: 0.7 ms a commit with
 * `FULL`, 0.1 ms with `NORMAL`). Tombstones, which keep a deleted VM deleted,
 * are written with `FULL`.
 */
import type { DatabaseSync, StatementSync } from 'node:sqlite'
import { type ReplicaRecord, replicaRecordSchema } from '../core/replica-messages.ts'
import { type Tombstone, tombstoneSchema } from '../core/ownership-messages.ts'
import type { Store } from './store.ts'

export interface StoredReplica {
  record: ReplicaRecord
  /** When this node took it (its clock): a replica its owner did not send again after a ring change is asked about. */
  receivedAtMs: number
}

export class ReplicaStore {
  readonly #db: DatabaseSync
  readonly #putReplica: StatementSync
  readonly #dropReplica: StatementSync
  readonly #putTombstone: StatementSync
  readonly #dropTombstone: StatementSync

  constructor (store: Store) {
    this.#db = store.db
    this.#db.exec(`
      CREATE TABLE IF NOT EXISTS replicas (id TEXT PRIMARY KEY, owner TEXT NOT NULL, received_ms INTEGER NOT NULL, record TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS tombstones (id TEXT PRIMARY KEY, deleted_ms INTEGER NOT NULL, stored_ms INTEGER NOT NULL, tombstone TEXT NOT NULL);
    `)
    this.#putReplica = this.#db.prepare('INSERT INTO replicas (id, owner, received_ms, record) VALUES (?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET owner = excluded.owner, received_ms = excluded.received_ms, record = excluded.record')
    this.#dropReplica = this.#db.prepare('DELETE FROM replicas WHERE id = ?')
    this.#putTombstone = this.#db.prepare('INSERT INTO tombstones (id, deleted_ms, stored_ms, tombstone) VALUES (?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET deleted_ms = excluded.deleted_ms, stored_ms = excluded.stored_ms, tombstone = excluded.tombstone')
    this.#dropTombstone = this.#db.prepare('DELETE FROM tombstones WHERE id = ?')
  }

  /** Every replica held; rows that no longer parse are removed and counted (a replica is a copy: its owner sends it again). */
  listReplicas (): { replicas: StoredReplica[], corrupt: number } {
    const rows = this.#db.prepare('SELECT id, received_ms, record FROM replicas ORDER BY id').all() as Array<{ id: string, received_ms: number, record: string }>
    const replicas: StoredReplica[] = []
    let corrupt = 0
    for (const row of rows) {
      const parsed = safeJson(row.record, replicaRecordSchema)
      if (parsed == null) {
        corrupt++
        this.#dropReplica.run(row.id)
        continue
      }
      replicas.push({ record: parsed, receivedAtMs: Number(row.received_ms) })
    }
    return { replicas, corrupt }
  }

  putReplicas (replicas: readonly StoredReplica[]): void {
    this.#transaction(() => {
      for (const r of replicas) this.#putReplica.run(r.record.spec.id, r.record.chain[r.record.chain.length - 1].owner, r.receivedAtMs, JSON.stringify(r.record))
    }, 'NORMAL')
  }

  dropReplicas (ids: readonly string[]): void {
    this.#transaction(() => { for (const id of ids) this.#dropReplica.run(id) }, 'NORMAL')
  }

  listTombstones (): Array<{ tombstone: Tombstone, storedAtMs: number }> {
    const rows = this.#db.prepare('SELECT id, stored_ms, tombstone FROM tombstones ORDER BY stored_ms').all() as Array<{ id: string, stored_ms: number, tombstone: string }>
    const out: Array<{ tombstone: Tombstone, storedAtMs: number }> = []
    for (const row of rows) {
      const t = safeJson(row.tombstone, tombstoneSchema)
      if (t == null) this.#dropTombstone.run(row.id)
      else out.push({ tombstone: t, storedAtMs: Number(row.stored_ms) })
    }
    return out
  }

  putTombstones (tombstones: readonly Tombstone[], storedAtMs: number): void {
    this.#transaction(() => { for (const t of tombstones) this.#putTombstone.run(t.vmId, t.deletedAtMs, storedAtMs, JSON.stringify(t)) })
  }

  dropTombstones (ids: readonly string[]): void {
    this.#transaction(() => { for (const id of ids) this.#dropTombstone.run(id) })
  }

  #transaction (fn: () => void, synchronous: 'FULL' | 'NORMAL' = 'FULL'): void {
    if (synchronous !== 'FULL') this.#db.exec(`PRAGMA synchronous = ${synchronous}`)
    try {
      this.#db.exec('BEGIN')
      try {
        fn()
        this.#db.exec('COMMIT')
      } catch (err) {
        if (this.#db.isTransaction) this.#db.exec('ROLLBACK')
        throw err
      }
    } finally {
      // The VM records' commits stay fsync'd (store.ts): the connection goes back to FULL whatever happened.
      if (synchronous !== 'FULL') this.#db.exec('PRAGMA synchronous = FULL')
    }
  }
}

function safeJson<T> (text: string, schema: { safeParse: (v: unknown) => { success: true, data: T } | { success: false } }): T | undefined {
  try {
    const r = schema.safeParse(JSON.parse(text))
    return r.success ? r.data : undefined
  } catch {
    return undefined
  }
}
