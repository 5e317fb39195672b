import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { DatabaseSync, type StatementSync } from 'node:sqlite'
import { vmSpecSchema, vmStateSchema, type VmSpec, type VmState } from '../core/messages.ts'

export interface VmRecord {
  spec: VmSpec
  state: VmState
  /** Ownership epoch: grows by one at each migration commit (fencing). */
  epoch: number
}

export class CorruptRecordError extends Error {
  static name = 'CorruptRecordError'
  constructor (message = 'a stored record does not match its schema') {
    super(message)
    this.name = CorruptRecordError.name
  }
}

export class Store {
  readonly path: string
  readonly #db: DatabaseSync
  readonly #putVm: StatementSync
  readonly #deleteVm: StatementSync
  readonly #getMeta: StatementSync
  readonly #putMeta: StatementSync

  private constructor (path: string, db: DatabaseSync) {
    this.path = path
    this.#db = db
    db.exec(`
      PRAGMA journal_mode = WAL;
      PRAGMA synchronous = FULL;
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
      CREATE TABLE IF NOT EXISTS vms (id TEXT PRIMARY KEY, spec TEXT NOT NULL, state TEXT NOT NULL, epoch INTEGER NOT NULL);
    `)
    this.#putVm = db.prepare('INSERT INTO vms (id, spec, state, epoch) VALUES (?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET spec = excluded.spec, state = excluded.state, epoch = excluded.epoch')
    this.#deleteVm = db.prepare('DELETE FROM vms WHERE id = ?')
    this.#getMeta = db.prepare('SELECT value FROM meta WHERE key = ?')
    this.#putMeta = db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value')
  }

  /** Opens (creating if needed) the store in `dataDir`. */
  static open (dataDir: string): Store {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 })
    const path = join(dataDir, 'discovery.sqlite')
    return new Store(path, new DatabaseSync(path))
  }

  getMeta (key: string): Uint8Array | undefined {
    const row = this.#getMeta.get(key) as { value: Uint8Array } | undefined
    return row?.value
  }

  setMeta (key: string, value: Uint8Array): void {
    this.#putMeta.run(key, value)
  }

  putVm (record: VmRecord): void {
    this.#putVm.run(record.spec.id, JSON.stringify(record.spec), record.state, record.epoch)
  }

  deleteVm (id: string): void {
    this.#deleteVm.run(id)
  }

  /** Every stored VM, validated: a record that does not parse is an error, never silently dropped. */
  listVms (): VmRecord[] {
    const rows = this.#db.prepare('SELECT spec, state, epoch FROM vms ORDER BY id').all() as Array<{ spec: string, state: string, epoch: number }>
    return rows.map(row => {
      const spec = vmSpecSchema.safeParse(JSON.parse(row.spec))
      const state = vmStateSchema.safeParse(row.state)
      if (!spec.success || !state.success) throw new CorruptRecordError(`stored VM record does not match its schema: ${row.spec.slice(0, 80)}`)
      return { spec: spec.data, state: state.data, epoch: Number(row.epoch) }
    })
  }

  close (): void {
    if (this.#db.isOpen) this.#db.close()
  }
}
