/**
 * Live migrations in the simulated world, run by the agent's state machines
 * (core/migration-fsm.ts): the source's (`startMigration`, `stepMigration`)
 * and the destination's (`admitIncoming`, the one admission rule, then
 * `startIncoming`, `stepIncoming`). This file only carries out what they ask
 * for: their messages cross the simulated network, the transfer takes the
 * time the pre-copy model gives it, the destination's lease expires on the
 * simulated clock. Which phase comes next, and whether a destination may take
 * a VM, is decided in core, as in the agents (src/agent/migrations.ts).
 */
import { admitIncoming, DEFAULT_MIGRATION, migrationLeaseMs, type IncomingEvent, type IncomingRecord, isFinal, type MigrationAction, type MigrationEvent, type MigrationRecord, startIncoming, startMigration, stepIncoming, stepMigration } from '../core/migration-fsm.ts'
import { precopy } from '../core/precopy.ts'
import type { VmLoad } from '../core/rebalance-messages.ts'
import type { SimHost, SimVm, World } from './world.ts'

/** How long a source waits for the destination's answer to a propose (as the agents' request timeout). */
export const MIGRATION_TIMEOUT_MS = 5_000

export interface MigrationStats {
  count: number
  aborted: number
  memMiB: number
  totalMs: number[]
  downtimeMs: number[]
}

export type MigrationEnded = (ok: boolean, reason?: string) => void

/** One migration under way, as its source sees it. */
interface Outgoing {
  record: MigrationRecord
  vm: SimVm
  src: SimHost
  dst: SimHost
  onEnd: MigrationEnded
}

export class SimMigrations {
  readonly stats: MigrationStats = { count: 0, aborted: 0, memMiB: 0, totalMs: [], downtimeMs: [] }
  readonly #world: World
  /** The destinations' records, by migration id, until adopted or released. */
  readonly #incoming = new Map<string, IncomingRecord>()
  #next = 0

  constructor (world: World) {
    this.#world = world
  }

  /**
   * Migrates `vmId` from `fromId` to `toId`; `partitionId` is the rebalancing
   * partition that ordered it (the destination's admission reads it).
   * `onEnd` is called once, when the source's record is final.
   */
  migrate (vmId: string, fromId: string, toId: string, partitionId: string | undefined, onEnd: MigrationEnded): void {
    const w = this.#world
    const vm = w.vmById.get(vmId)
    const src = w.hostById.get(fromId)
    const dst = w.hostById.get(toId)
    if (vm == null || src == null || dst == null || vm.host !== src.idx || vm.migrating) {
      // The agent refuses this before any message (MigrationBusyError, or no such VM here).
      this.stats.aborted++
      onEnd(false, 'the VM is not (or no longer) at the source, or already migrating')
      return
    }
    vm.migrating = true
    const record = startMigration({ id: `migration-${this.#next++}`, vmId, from: src.id, to: dst.id, memMiB: vm.memMiB, epoch: vm.epoch, startedAtMs: w.now, ...(partitionId != null ? { partitionId } : {}) })
    const m: Outgoing = { record, vm, src, dst, onEnd }
    // A lost propose or answer: the source gives up after the request timeout (an answer that
    // came in time has moved the record on, and the state machine ignores this).
    w.queue.push(w.now + MIGRATION_TIMEOUT_MS, () => { this.#apply(m, { type: 'unreachable', reason: 'no answer from the destination in time' }) })
    // The propose carries the VM's demand as the source measures it when it sends.
    const load: VmLoad = { id: vm.id, cpu: vm.cpu, memMiB: vm.memMiB, demand: vm.demand * vm.cpu }
    w.network.send(() => { this.#propose(m, load) })
  }

  /** The destination receives a propose: admit (core's rule) and reserve, or refuse. */
  #propose (m: Outgoing, load: VmLoad): void {
    const w = this.#world
    const { record, dst } = m
    const partitionId = w.partitionOf(dst)
    const refusal = admitIncoming(w.hostLoad(dst), load, { ...(partitionId != null ? { partitionId } : {}), ...(record.partitionId != null ? { proposalPartitionId: record.partitionId } : {}) })
    if (refusal != null) {
      w.network.send(() => { this.#apply(m, { type: 'refused', reason: refusal }) })
      return
    }
    // The reservation counts on the destination as a VM that never moves, with the VM's demand.
    dst.reserved.set(record.id, { id: `reserved:${load.id}`, cpu: load.cpu, memMiB: load.memMiB, demand: load.demand, pinned: true })
    const incoming = startIncoming({ migrationId: record.id, vmId: record.vmId, from: record.from, epoch: record.epoch, expiresAtMs: w.now + migrationLeaseMs(DEFAULT_MIGRATION) })
    this.#incoming.set(record.id, incoming)
    w.queue.push(incoming.expiresAtMs, () => { this.#stepIncoming(m, { type: 'expired' }) })
    w.network.send(() => { this.#apply(m, { type: 'accepted' }) })
  }

  /** The source's state machine takes `event`; its actions are carried out here. */
  #apply (m: Outgoing, event: MigrationEvent): void {
    const step = stepMigration(m.record, event, this.#world.now)
    if (step.record === m.record) return
    m.record = step.record
    for (const action of step.actions) this.#do(m, action)
    // An action may have fed the next event already (a commit answered at once): end on this step's phase only.
    if (isFinal(step.record.phase)) this.#ended(m)
  }

  #do (m: Outgoing, action: MigrationAction): void {
    const w = this.#world
    switch (action) {
      case 'start-transfer': {
        const pc = precopy({ memMiB: m.vm.memMiB, bandwidthMiBps: w.scenario.bandwidthMiBps, cpuBusy: Math.min(1, m.vm.demand), dirtyIntensity: m.vm.dirtyIntensity, maxDowntimeMs: DEFAULT_MIGRATION.maxDowntimeMs })
        if (!pc.ok) this.#apply(m, { type: 'transfer-failed', reason: pc.reason })
        else w.queue.push(w.now + pc.totalMs, () => { this.#apply(m, { type: 'transferred', totalMs: pc.totalMs, downtimeMs: pc.downtimeMs, bytesMiB: pc.bytesMiB }) })
        break
      }
      case 'send-commit': {
        // Counted as one message but answered at once: the commit closes a transfer of
        // seconds, and the published figures (README) were measured this way.
        w.network.sent++
        const step = this.#stepIncoming(m, { type: 'commit', epoch: m.record.epoch + 1 })
        if (step == null) this.#apply(m, { type: 'commit-refused', reason: 'no such migration at the destination' })
        else if (step.refusal != null) this.#apply(m, { type: 'commit-refused', reason: step.refusal })
        else this.#apply(m, { type: 'committed' })
        break
      }
      case 'send-abort':
        w.network.send(() => { this.#stepIncoming(m, { type: 'abort' }) })
        break
      case 'resume-local':
        m.vm.migrating = false
        break
      case 'drop-local':
        // The destination's adoption moved the VM (World.adopt): nothing is left at the source.
        break
      case 'wait-for-evidence':
        w.queue.push(w.now + DEFAULT_MIGRATION.doubtMs, () => { this.#apply(m, { type: 'doubt-expired' }) })
        break
    }
  }

  /** The destination's state machine takes `event`; undefined when it holds no record of the migration. */
  #stepIncoming (m: Outgoing, event: IncomingEvent): ReturnType<typeof stepIncoming> | undefined {
    const id = m.record.id
    const rec = this.#incoming.get(id)
    if (rec == null) return undefined
    const step = stepIncoming(rec, event, this.#world.now)
    if (step.actions.includes('release')) m.dst.reserved.delete(id)
    if (step.actions.includes('adopt')) this.#world.adopt(m.vm, m.src, m.dst, id)
    if (step.record.phase === 'reserved') this.#incoming.set(id, step.record)
    else this.#incoming.delete(id)
    return step
  }

  #ended (m: Outgoing): void {
    const r = m.record
    if (r.phase === 'committed') {
      this.stats.count++
      this.stats.memMiB += r.memMiB
      this.stats.totalMs.push(r.totalMs ?? 0)
      this.stats.downtimeMs.push(r.downtimeMs ?? 0)
      m.onEnd(true)
    } else {
      this.stats.aborted++
      m.onEnd(false, r.reason)
    }
  }
}
