import { closeSync, existsSync, fsyncSync, mkdirSync, openSync } from 'node:fs'
import { DiscoveryError } from '../core/errors.ts'
import { dirname, join } from 'node:path'
import { DatabaseSync, type StatementSync } from 'node:sqlite'
import { vmSpecSchema, vmStateSchema, type VmSpec, type VmState } from '../core/messages.ts'
import { chainSchema, type Chain } from '../core/ownership-messages.ts'

export interface VmRecord {
  spec: VmSpec
  state: VmState
  /** Ownership epoch: grows by one at each migration commit and each restart on a live peer (fencing). */
  epoch: number
  /** The proof of our ownership (core/ownership.ts), its head at `epoch`; empty in a record of an earlier version. */
  chain: Chain
}

export class CorruptRecordError extends DiscoveryError {
  static name = 'CorruptRecordError'
  static defaultMessage = 'a stored record does not match its schema'
}

function fsyncDir (dir: string): void {
  let fd: number | undefined
  try {
    fd = openSync(dir, 'r')
    fsyncSync(fd)
  } catch {
    // Some file systems refuse to fsync a directory: the store still works, with the guarantee they give.
  } finally {
    if (fd != null) closeSync(fd)
  }
}

/** A VM that left this node (local-node.ts `departed`): when, and why — moved elsewhere, or deleted by a user. */
export interface Departure { id: string, atMs: number, why: 'user' | 'moved' }

type VmWrite = { put: VmRecord } | { delete: string, departure?: Departure }

interface Queued {
  write: VmWrite
  /** Set for a write someone waits on (durable before it resolves). */
  resolve?: () => void
  reject?: (err: Error) => void
}

/**
 * How long a write nobody waits on (`putVmLater`) may stay in memory before
 * it is written, when no durable write comes along to carry it.
 */
const LATER_MS = 100

export class Store {
  readonly path: string
  readonly #db: DatabaseSync
  readonly #putVm: StatementSync
  readonly #deleteVm: StatementSync
  readonly #putDeparture: StatementSync
  readonly #getMeta: StatementSync
  readonly #putMeta: StatementSync
  #queue: Queued[] = []
  #flushScheduled = false
  #laterTimer?: NodeJS.Timeout

  private constructor (path: string, db: DatabaseSync) {
    this.path = path
    this.#db = db
    // Durability (README, "Durability"). WAL: a commit appends to the log, readers never block the writer.
    // synchronous = FULL: in WAL mode SQLite then fsyncs the log at every commit, so a transaction is on
    // disk when COMMIT returns — it survives a process crash and a power loss or kernel crash alike.
    // NORMAL would fsync only at checkpoints: still safe against a crash of the process (the log is in the
    // kernel's page cache), but the last transactions before a power loss could vanish, and a 201 promises
    // the VM is durable. What FULL costs is paid once per batch (group commit, below): measured here, an
    // fsync'd commit of one record takes 0.36 ms (NORMAL 0.03 ms), and 0.018 ms per record when 30 share it.
    // A new WAL file's directory is fsync'd by SQLite on its first sync, which makes the database file's
    // own directory entry durable too; Store.open does the same for a new data directory.
    db.exec(`
      PRAGMA journal_mode = WAL;
      PRAGMA synchronous = FULL;
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
      CREATE TABLE IF NOT EXISTS vms (id TEXT PRIMARY KEY, spec TEXT NOT NULL, state TEXT NOT NULL, epoch INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS departed (id TEXT PRIMARY KEY, at_ms INTEGER NOT NULL, why TEXT NOT NULL);
    `)
    // A data dir of an earlier version has no chains: its VMs get a new origin at restore.
    const columns = db.prepare('PRAGMA table_info(vms)').all() as Array<{ name: string }>
    if (!columns.some(c => c.name === 'chain')) db.exec('ALTER TABLE vms ADD COLUMN chain TEXT')
    this.#putVm = db.prepare('INSERT INTO vms (id, spec, state, epoch, chain) VALUES (?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET spec = excluded.spec, state = excluded.state, epoch = excluded.epoch, chain = excluded.chain')
    this.#deleteVm = db.prepare('DELETE FROM vms WHERE id = ?')
    this.#putDeparture = db.prepare('INSERT INTO departed (id, at_ms, why) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET at_ms = excluded.at_ms, why = excluded.why')
    this.#getMeta = db.prepare('SELECT value FROM meta WHERE key = ?')
    this.#putMeta = db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value')
  }

  /** Opens (creating if needed) the store in `dataDir`. */
  static open (dataDir: string): Store {
    if (!existsSync(dataDir)) {
      mkdirSync(dataDir, { recursive: true, mode: 0o700 })
      // The new directory's entry in its parent: without this, a power loss could take the data dir away whole.
      fsyncDir(dirname(dataDir))
    }
    const path = join(dataDir, 'discovery.sqlite')
    return new Store(path, new DatabaseSync(path))
  }

  /** What the database runs with, read back from SQLite: `wal` and 2 (FULL). */
  durability (): { journalMode: string, synchronous: number } {
    const j = this.#db.prepare('PRAGMA journal_mode').get() as { journal_mode: string }
    const s = this.#db.prepare('PRAGMA synchronous').get() as { synchronous: number }
    return { journalMode: j.journal_mode, synchronous: Number(s.synchronous) }
  }

  getMeta (key: string): Uint8Array | undefined {
    const row = this.#getMeta.get(key) as { value: Uint8Array } | undefined
    return row?.value
  }

  setMeta (key: string, value: Uint8Array): void {
    this.#putMeta.run(key, value)
  }

  /** Writes (and fsyncs) one VM record now, after any queued write. */
  putVm (record: VmRecord): void {
    this.flush()
    this.#write({ put: record })
  }

  /**
   * Group commit: resolves once the record is written and fsync'd. Every
   * write queued in the same turn of the event loop goes into one
   * transaction, so many creates at once share one fsync; each still waits
   * for its own record to be durable before it is acknowledged.
   */
  async writeVm (record: VmRecord): Promise<void> {
    await this.#enqueueDurable({ put: record })
  }

  /** Group commit of a delete: resolves once the deletion is durable, with the VM's departure when given (in the same transaction). */
  async removeVm (id: string, departure?: Departure): Promise<void> {
    await this.#enqueueDurable(departure != null ? { delete: id, departure } : { delete: id })
  }

  /** Forgets the departures older than `beforeMs`. */
  forgetDepartures (beforeMs: number): void {
    if (this.#db.isOpen) this.#db.prepare('DELETE FROM departed WHERE at_ms < ?').run(beforeMs)
  }

  /** The VMs that left this node at or after `sinceMs`, oldest first. */
  departures (sinceMs: number): Departure[] {
    const rows = this.#db.prepare('SELECT id, at_ms, why FROM departed WHERE at_ms >= ? ORDER BY at_ms').all(sinceMs) as Array<{ id: string, at_ms: number, why: string }>
    return rows.map(r => ({ id: r.id, atMs: Number(r.at_ms), why: r.why === 'user' ? 'user' : 'moved' }))
  }

  /**
   * A write nobody waits on, e.g. a VM's state from creating to running
   * (a restart sets every VM back to creating anyway): it goes out with the
   * next batch, or within LATER_MS. The record is read when it is written.
   */
  putVmLater (record: VmRecord): void {
    this.#queue.push({ write: { put: record } })
    if (this.#laterTimer == null && !this.#flushScheduled) {
      this.#laterTimer = setTimeout(() => { this.#laterTimer = undefined; this.flush() }, LATER_MS)
      this.#laterTimer.unref()
    }
  }

  /** Writes everything queued now, in one transaction (and one fsync). */
  flush (): void {
    if (this.#laterTimer != null) {
      clearTimeout(this.#laterTimer)
      this.#laterTimer = undefined
    }
    const batch = this.#queue
    if (batch.length === 0) return
    this.#queue = []
    if (!this.#db.isOpen) {
      for (const q of batch) q.reject?.(new Error('the store is closed'))
      return
    }
    try {
      this.#db.exec('BEGIN')
      try {
        for (const q of batch) this.#write(q.write)
        this.#db.exec('COMMIT')
      } catch (err) {
        if (this.#db.isTransaction) this.#db.exec('ROLLBACK')
        throw err
      }
      for (const q of batch) q.resolve?.()
    } catch {
      // One bad write must not fail the others: each on its own, each with its own outcome.
      for (const q of batch) {
        try {
          this.#write(q.write)
          q.resolve?.()
        } catch (err: any) {
          q.reject?.(err)
        }
      }
    }
  }

  /** The database, for the tables of other concerns kept in the same file (replica-store.ts). */
  get db (): DatabaseSync {
    return this.#db
  }

  #write (w: VmWrite): void {
    if ('put' in w) this.#putVm.run(w.put.spec.id, JSON.stringify(w.put.spec), w.put.state, w.put.epoch, w.put.chain.length > 0 ? JSON.stringify(w.put.chain) : null)
    else {
      this.#deleteVm.run(w.delete)
      if (w.departure != null) this.#putDeparture.run(w.departure.id, w.departure.atMs, w.departure.why)
    }
  }

  async #enqueueDurable (write: VmWrite): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#queue.push({ write, resolve, reject })
      if (this.#flushScheduled) return
      this.#flushScheduled = true
      setImmediate(() => {
        this.#flushScheduled = false
        this.flush()
      })
    })
  }

  /** Every stored VM, validated: a record that does not parse is an error, never silently dropped. */
  listVms (): VmRecord[] {
    const rows = this.#db.prepare('SELECT spec, state, epoch, chain FROM vms ORDER BY id').all() as Array<{ spec: string, state: string, epoch: number, chain: string | null }>
    return rows.map(row => {
      const spec = vmSpecSchema.safeParse(JSON.parse(row.spec))
      const state = vmStateSchema.safeParse(row.state)
      const chain = row.chain == null ? { success: true as const, data: [] } : chainSchema.safeParse(JSON.parse(row.chain))
      if (!spec.success || !state.success || !chain.success) throw new CorruptRecordError(`stored VM record does not match its schema: ${row.spec.slice(0, 80)}`)
      return { spec: spec.data, state: state.data, epoch: Number(row.epoch), chain: chain.data }
    })
  }

  close (): void {
    this.flush()
    if (this.#db.isOpen) this.#db.close()
  }
}
