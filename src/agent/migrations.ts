/**
 * Live migrations of this agent, both ends, over `/discovery/migrate/1.0.0`.
 * As source it runs core/migration-fsm.ts: propose → the destination
 * reserves and accepts → transfer (the driver) → commit → drop our copy; or
 * abort and resume. As destination it reserves with a lease, adopts the VM
 * at its new epoch on commit, releases on abort (or lets the lease expire).
 */
import { DiscoveryError } from '../core/errors.ts'
import { randomUUID } from 'node:crypto'
import { PROTOCOL_VERSION, type VmSpec } from '../core/messages.ts'
import type { MigrateRequest, MigrateResponse } from '../core/migrate-messages.ts'
import { admitIncoming, DEFAULT_MIGRATION, migrationLeaseMs, type IncomingEvent, type IncomingRecord, isFinal, type MigrationAction, type MigrationConfig, type MigrationEvent, type MigrationRecord, startIncoming, startMigration, stepIncoming, stepMigration } from '../core/migration-fsm.ts'
import type { Chain } from '../core/ownership-messages.ts'
import type { HostLoad } from '../core/rebalance-messages.ts'
import type { Driver } from '../hypervisor/driver.ts'
import type { LocalNode } from './local-node.ts'

export { DEFAULT_MIGRATION, type MigrationConfig }

/** An abort the destination did not answer is sent again after 1 s, doubling to 30 s, while its lease may still hold. */
const ABORT_RETRY_FIRST_MS = 1_000
const ABORT_RETRY_MAX_MS = 30_000
/** In doubt, the commit asked again after this, then twice as long each time up to the max. */
const COMMIT_ASK_FIRST_MS = 500
const COMMIT_ASK_MAX_MS = 4_000

export interface MigrationsInit {
  self: string
  local: LocalNode
  driver: Driver
  config: MigrationConfig
  send: (peerId: string, req: MigrateRequest) => Promise<MigrateResponse>
  /** The partition this node is in (rebalancing), if any: proposals from another partition are refused. */
  partition: () => string | undefined
  /** This node as the planner sees it, reservations included: what the admission of an incoming VM reads. */
  load: () => HostLoad
  /** The chain a commit carries: ours, with our migrate link to `to` (core/ownership.ts). */
  commitChain?: (vmId: string, to: string) => Chain | undefined
  /** Whether a migration to `to` crosses sites (zones differ): recorded, counted. */
  interSite?: (to: string) => boolean
  onStarted: (record: MigrationRecord) => void
  onEnded: (record: MigrationRecord) => void
  now: () => number
}

export class MigrationBusyError extends DiscoveryError {
  static name = 'MigrationBusyError'
  static defaultMessage = 'the VM is already migrating'
}

export class Migrations {
  readonly #init: MigrationsInit
  readonly #records = new Map<string, MigrationRecord>()
  /** Transfers under way, by destination: aborted when the destination is lost. */
  readonly #transfers = new Map<string, Map<string, AbortController>>()
  readonly #doubts = new Map<string, NodeJS.Timeout>()
  readonly #waiters = new Map<string, Array<(r: MigrationRecord) => void>>()
  /** Aborts, and commits in doubt, waiting to be sent again (cleared at stop). */
  readonly #retries = new Set<NodeJS.Timeout>()
  #stopped = false
  /** Incoming migrations, by migration id, until adopted or released. */
  readonly #incoming = new Map<string, IncomingRecord>()

  constructor (init: MigrationsInit) {
    this.#init = init
  }

  list (): MigrationRecord[] {
    return [...this.#records.values()].sort((a, b) => b.startedAtMs - a.startedAtMs)
  }

  active (): number {
    let n = 0
    for (const r of this.#records.values()) if (!isFinal(r.phase)) n++
    return n
  }

  /** Starts migrating one of our VMs to `to`; resolves with the record once it has ended. */
  async migrate (vmId: string, to: string, partitionId?: string): Promise<MigrationRecord> {
    const rec = this.#init.local.get(vmId)
    if (rec == null) throw new Error(`no VM ${vmId} on this node`)
    if (rec.state === 'migrating' || [...this.#records.values()].some(r => r.vmId === vmId && !isFinal(r.phase))) throw new MigrationBusyError(`${vmId} is already migrating`)
    if (to === this.#init.self) throw new Error('a VM cannot migrate to the node it runs on')
    const record = startMigration({ id: randomUUID(), vmId, from: this.#init.self, to, memMiB: rec.spec.memMiB, epoch: rec.epoch, startedAtMs: this.#init.now(), ...(partitionId != null ? { partitionId } : {}), interSite: this.#init.interSite?.(to) ?? false })
    this.#records.set(record.id, record)
    this.#init.onStarted(record)
    this.#init.local.setState(vmId, 'migrating')
    const ended = new Promise<MigrationRecord>(resolve => { this.#waiters.set(record.id, [resolve]) })
    void this.#propose(record, rec.spec, this.#init.driver.demand(vmId) * rec.spec.cpu)
    return await ended
  }

  /** The destination of some transfers is gone (disconnected, dead): abort them. */
  peerLost (peerId: string): void {
    const transfers = this.#transfers.get(peerId)
    if (transfers == null) return
    for (const c of transfers.values()) c.abort(new Error(`the destination ${peerId} was lost`))
  }

  /** Gossip shows `vmId` at a higher epoch elsewhere: an in-doubt migration of it committed after all. */
  fenced (vmId: string): void {
    for (const r of this.#records.values()) {
      if (r.vmId === vmId && (r.phase === 'in-doubt' || r.phase === 'committing')) this.#apply(r.id, { type: 'fenced' })
    }
  }

  /** Serves `/discovery/migrate/1.0.0` as destination. */
  async handle (req: MigrateRequest, from = ''): Promise<MigrateResponse> {
    const local = this.#init.local
    const now = this.#init.now()
    this.#expireIncoming(now)
    switch (req.op) {
      case 'propose': {
        const vm = { id: req.vm.id, cpu: req.vm.cpu, memMiB: req.vm.memMiB, demand: req.demand, ...(req.vm.constraints?.spread != null ? { spread: req.vm.constraints.spread } : {}) }
        const partitionId = this.#init.partition()
        const refusal = admitIncoming(this.#init.load(), vm, { ...(partitionId != null ? { partitionId } : {}), ...(req.partitionId != null ? { proposalPartitionId: req.partitionId } : {}) })
        if (refusal != null) return { v: PROTOCOL_VERSION, ok: false, reason: refusal }
        // The source's lease, no longer than our own migrations may take.
        const ttlMs = Math.min(req.ttlMs, migrationLeaseMs(this.#init.config))
        const r = local.reserveIncoming(req.migrationId, req.vm, ttlMs, from !== '' ? from : undefined)
        if (!r.ok) return { v: PROTOCOL_VERSION, ok: false, reason: r.reason }
        let uri: string
        try {
          uri = (await this.#init.driver.prepareIncoming(req.vm)).uri
        } catch (err: any) {
          local.release(req.migrationId)
          return { v: PROTOCOL_VERSION, ok: false, reason: `the hypervisor cannot take ${req.vm.id}: ${err.message}` }
        }
        this.#incoming.set(req.migrationId, startIncoming({ migrationId: req.migrationId, vmId: req.vm.id, from, epoch: req.epoch, expiresAtMs: now + ttlMs }))
        return { v: PROTOCOL_VERSION, ok: true, uri }
      }
      case 'commit': {
        const rec = this.#incoming.get(req.migrationId)
        if (rec == null) {
          // Adopted already (a commit asked again), or never reserved here: the ledger knows.
          const r = await local.adoptIncoming(req.migrationId, req.vm, req.epoch, req.chain, from)
          return r.ok ? { v: PROTOCOL_VERSION, ok: true } : { v: PROTOCOL_VERSION, ok: false, reason: r.reason }
        }
        const step = this.#stepIncoming(rec, { type: 'commit', epoch: req.epoch }, now)
        if (step.refusal != null) return { v: PROTOCOL_VERSION, ok: false, reason: step.refusal }
        if (!step.actions.includes('adopt')) return { v: PROTOCOL_VERSION, ok: true }
        const r = await local.adoptIncoming(req.migrationId, req.vm, req.epoch, req.chain, from)
        return r.ok ? { v: PROTOCOL_VERSION, ok: true } : { v: PROTOCOL_VERSION, ok: false, reason: r.reason }
      }
      case 'abort': {
        const rec = this.#incoming.get(req.migrationId)
        if (rec != null) this.#stepIncoming(rec, { type: 'abort' }, now)
        else local.release(req.migrationId)
        return { v: PROTOCOL_VERSION, ok: true }
      }
      case 'request':
        return { v: PROTOCOL_VERSION, ok: false, reason: 'request is served by the agent' }
    }
  }

  #stepIncoming (rec: IncomingRecord, event: IncomingEvent, now: number): ReturnType<typeof stepIncoming> {
    const step = stepIncoming(rec, event, now)
    if (step.actions.includes('release')) {
      this.#init.local.release(rec.migrationId)
      // A hypervisor waiting for the VM (QEMU with -incoming) waits no more.
      if (this.#init.local.get(rec.vmId) == null) this.#init.driver.delete(rec.vmId).catch(() => {})
    }
    if (step.record.phase === 'reserved') this.#incoming.set(rec.migrationId, step.record)
    else this.#incoming.delete(rec.migrationId)
    return step
  }

  /** On every agent tick: incoming migrations whose lease ran out are let go (a QEMU waiting with -incoming exits). */
  tick (): void {
    if (this.#incoming.size > 0) this.#expireIncoming(this.#init.now())
  }

  #expireIncoming (now: number): void {
    for (const rec of this.#incoming.values()) if (rec.expiresAtMs <= now) this.#stepIncoming(rec, { type: 'expired' }, now)
  }

  stop (): void {
    this.#stopped = true
    for (const transfers of this.#transfers.values()) for (const c of transfers.values()) c.abort(new Error('the agent is stopping'))
    for (const t of this.#doubts.values()) clearTimeout(t)
    for (const t of this.#retries) clearTimeout(t)
  }

  async #propose (record: MigrationRecord, spec: VmSpec, demand: number): Promise<void> {
    let res: MigrateResponse
    try {
      res = await this.#init.send(record.to, { v: PROTOCOL_VERSION, op: 'propose', migrationId: record.id, vm: spec, epoch: record.epoch, demand, ttlMs: migrationLeaseMs(this.#init.config), ...(record.partitionId != null ? { partitionId: record.partitionId } : {}) })
    } catch (err: any) {
      this.#apply(record.id, { type: 'unreachable', reason: `the destination did not answer: ${err.message}` })
      return
    }
    this.#apply(record.id, res.ok ? { type: 'accepted', ...(res.uri != null ? { uri: res.uri } : {}) } : { type: 'refused', reason: res.reason })
  }

  #apply (id: string, event: MigrationEvent): void {
    const before = this.#records.get(id)
    if (before == null) return
    const { record, actions } = stepMigration(before, event, this.#init.now())
    this.#records.set(id, record)
    for (const action of actions) this.#do(record, action)
    if (isFinal(record.phase)) this.#end(record)
  }

  #do (record: MigrationRecord, action: MigrationAction): void {
    const local = this.#init.local
    switch (action) {
      case 'start-transfer': {
        const controller = new AbortController()
        const byDest = this.#transfers.get(record.to) ?? new Map<string, AbortController>()
        byDest.set(record.id, controller)
        this.#transfers.set(record.to, byDest)
        const { bandwidthMiBps, maxDowntimeMs, deadlineMs } = this.#init.config
        this.#init.driver.transferOut(record.vmId, { ...(record.uri != null ? { uri: record.uri } : {}), bandwidthMiBps, maxDowntimeMs, deadlineMs, signal: controller.signal })
          .then(r => { this.#apply(record.id, { type: 'transferred', ...r }) }, (err: Error) => { this.#apply(record.id, { type: 'transfer-failed', reason: err.message }) })
          .finally(() => {
            byDest.delete(record.id)
            if (byDest.size === 0) this.#transfers.delete(record.to)
          })
        break
      }
      case 'send-commit': {
        const rec = local.get(record.vmId)
        if (rec == null) {
          this.#apply(record.id, { type: 'commit-refused', reason: 'the VM was deleted during its migration' })
          break
        }
        this.#sendCommit(record, rec.spec)
          .then(res => { this.#apply(record.id, res.ok ? { type: 'committed' } : { type: 'commit-refused', reason: res.reason }) }, () => { this.#apply(record.id, { type: 'commit-lost' }) })
        break
      }
      case 'send-abort':
        this.#sendAbort(record, 0)
        break
      case 'drop-local':
        void local.deleteVm(record.vmId, 'moved')
        break
      case 'resume-local':
        // After a completed transfer the hypervisor left the VM paused here.
        if (record.transferredAtMs != null) {
          this.#init.driver.resume(record.vmId).then(() => { local.setState(record.vmId, 'running') }, () => { local.setState(record.vmId, 'running') })
        } else {
          local.setState(record.vmId, 'running')
        }
        break
      case 'wait-for-evidence': {
        const t = setTimeout(() => {
          this.#doubts.delete(record.id)
          this.#apply(record.id, { type: 'doubt-expired' })
        }, this.#init.config.doubtMs)
        t.unref()
        this.#doubts.set(record.id, t)
        this.#askCommit(record.id, 0)
        break
      }
    }
  }

  #sendCommit (record: MigrationRecord, spec: VmSpec): Promise<MigrateResponse> {
    const chain = this.#init.commitChain?.(record.vmId, record.to)
    return this.#init.send(record.to, { v: PROTOCOL_VERSION, op: 'commit', migrationId: record.id, vm: spec, epoch: record.epoch + 1, ...(chain != null ? { chain } : {}) })
  }

  /**
   * In doubt, asks the destination the commit again (idempotent there) after
   * 0.5 s, then twice as long each time up to 4 s, until it answers: adopted
   * (committed) or refused (its reservation gone: it never will), instead of
   * waiting out `doubtMs` once the destination is back.
   */
  #askCommit (id: string, tries: number): void {
    const t = setTimeout(() => {
      this.#retries.delete(t)
      const record = this.#records.get(id)
      const rec = record != null ? this.#init.local.get(record.vmId) : undefined
      if (this.#stopped || record == null || record.phase !== 'in-doubt' || rec == null) return
      this.#sendCommit(record, rec.spec).then(
        res => { this.#apply(id, res.ok ? { type: 'committed' } : { type: 'commit-refused', reason: res.reason }) },
        () => { this.#askCommit(id, tries + 1) })
    }, Math.min(COMMIT_ASK_MAX_MS, COMMIT_ASK_FIRST_MS * 2 ** tries))
    t.unref()
    this.#retries.add(t)
  }

  /**
   * Tells the destination to release what it reserved, until it answers or
   * its lease would have run out anyway: a destination paused for a while
   * gets the abort when it comes back, instead of holding room for minutes.
   */
  #sendAbort (record: MigrationRecord, tries: number): void {
    this.#init.send(record.to, { v: PROTOCOL_VERSION, op: 'abort', migrationId: record.id }).catch(() => {
      const delayMs = Math.min(ABORT_RETRY_MAX_MS, ABORT_RETRY_FIRST_MS * 2 ** tries)
      if (this.#stopped || this.#init.now() + delayMs > record.startedAtMs + migrationLeaseMs(this.#init.config)) return
      const t = setTimeout(() => {
        this.#retries.delete(t)
        this.#sendAbort(record, tries + 1)
      }, delayMs)
      t.unref()
      this.#retries.add(t)
    })
  }

  #end (record: MigrationRecord): void {
    const t = this.#doubts.get(record.id)
    if (t != null) clearTimeout(t)
    this.#doubts.delete(record.id)
    for (const w of this.#waiters.get(record.id) ?? []) w(record)
    this.#waiters.delete(record.id)
    this.#init.onEnded(record)
    const ended = [...this.#records.values()].filter(r => isFinal(r.phase))
    if (ended.length > this.#init.config.keepEnded) {
      ended.sort((a, b) => a.startedAtMs - b.startedAtMs)
      for (const r of ended.slice(0, ended.length - this.#init.config.keepEnded)) this.#records.delete(r.id)
    }
  }
}
