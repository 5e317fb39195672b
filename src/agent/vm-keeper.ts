/**
 * Keeps this node's VMs running, as a hypervisor agent should:
 * - at start, each stored VM is `adopt`ed from the hypervisor (a QEMU that
 *   outlived the previous agent runs on, untouched); one that is `gone` is
 *   reported and its restart policy applied (core/local-restart.ts): started
 *   again, or reported lost and forgotten — once the agent has asked its
 *   peers whether the VM runs elsewhere now (restored-check.ts,
 *   `resumeDeferred`). Then whatever the hypervisor has
 *   that no record names (a migration's destination whose agent died before
 *   the commit) is swept away;
 * - later, a VM whose process dies on its own (the driver reports it
 *   `stopped`, with the reason) is reported and, under `always`, started
 *   again in place, with growing pauses if it keeps dying. A check on every
 *   tick catches what the event cannot (a VM that died during a migration
 *   that was then aborted).
 */
import type { Logger } from 'pino'
import type { Clock } from '../core/clock.ts'
import { type CrashHistory, decideGone, DEFAULT_LOCAL_RESTART, type LocalRestartConfig, started } from '../core/local-restart.ts'
import type { Driver } from '../hypervisor/index.ts'
import type { EventLog } from './event-log.ts'
import type { LocalNode } from './local-node.ts'
import type { Metrics } from './metrics.ts'

export interface VmKeeperComponents {
  self: string
  clock: Clock
  log: Logger
  events: EventLog
  metrics: Metrics
  local: LocalNode
  driver: Driver
  config?: LocalRestartConfig
}

export interface RestoreReport {
  adopted: number
  restarted: number
  lost: number
  /** VMs the hypervisor had that no record names, removed. */
  swept: number
  /** VMs whose hypervisor could not be asked (left stopped, logged). */
  failed: number
}

export class VmKeeper {
  readonly #c: VmKeeperComponents
  readonly #config: LocalRestartConfig
  readonly #history = new Map<string, CrashHistory>()
  /** VMs between their death and their restart (a timer pending, or the create under way). */
  readonly #pending = new Map<string, NodeJS.Timeout | 'starting'>()
  /** VMs gone at start, their policy applied once the agent has checked them with its peers. */
  #deferred = new Set<string>()
  #stopped = false

  constructor (components: VmKeeperComponents) {
    this.#c = components
    this.#config = components.config ?? DEFAULT_LOCAL_RESTART
    components.driver.onStateChange(change => {
      if (change.state === 'stopped') this.#gone(change.id, change.reason ?? 'its process exited')
    })
  }

  /** Asks the hypervisor for every VM the store brought back (LocalNode.restore ran before). */
  async restore (): Promise<RestoreReport> {
    const { local, driver, log } = this.#c
    const report: RestoreReport = { adopted: 0, restarted: 0, lost: 0, swept: 0, failed: 0 }
    for (const rec of local.records()) {
      const id = rec.spec.id
      let outcome: 'adopted' | 'gone'
      try {
        outcome = await driver.adopt(rec.spec)
      } catch (err: any) {
        // Its QEMU runs but does not answer: starting a second copy could corrupt its disk. Left stopped, for the operator.
        report.failed++
        local.setState(id, 'stopped')
        log.error({ component: 'discovery:vm', vm: id, err: err.message }, 'cannot adopt a VM: left stopped')
        continue
      }
      if (outcome === 'adopted') {
        report.adopted++
        local.setState(id, 'running')
        continue
      }
      // The sim driver models a hypervisor whose VMs ran on while the agent was away: they come back with it,
      // whatever their restart policy (that is its model, not news: a `never` VM is not lost by an agent restart).
      if (driver.name === 'sim') {
        report.restarted++
        await this.#restart(id)
        continue
      }
      if ((rec.spec.restartPolicy ?? 'always') === 'never') report.lost++
      else report.restarted++
      local.setState(id, 'stopped')
      this.#deferred.add(id)
    }
    const swept = await driver.sweep(local.records().map(r => r.spec.id))
    report.swept = swept.length
    if (swept.length > 0) log.warn({ component: 'discovery:vm', vms: swept }, 'removed VMs of an earlier run that no record names (migrations that never committed here)')
    return report
  }

  /**
   * Applies the restart policy of the VMs gone at start, once the agent knows
   * which of them were restarted elsewhere or deleted meanwhile (those are no
   * longer ours, and are left alone).
   */
  async resumeDeferred (): Promise<void> {
    const ids = [...this.#deferred]
    this.#deferred.clear()
    for (const id of ids) await this.#gone(id, 'its process was gone when the agent started')
  }

  /** On every agent tick: a VM the hypervisor says is stopped, and nothing is restarting. */
  tick (): void {
    // #gone leaves alone what is migrating, leaving or already being restarted.
    for (const rec of this.#c.local.records()) {
      if (this.#c.driver.state(rec.spec.id) === 'stopped' && !this.#deferred.has(rec.spec.id)) void this.#gone(rec.spec.id, 'its process is gone')
    }
  }

  stop (): void {
    this.#stopped = true
    for (const t of this.#pending.values()) if (t !== 'starting') clearTimeout(t)
    this.#pending.clear()
  }

  /** One of our VMs is gone: report it and apply its restart policy. */
  async #gone (id: string, reason: string): Promise<void> {
    const { local, events, self, clock, log } = this.#c
    const rec = local.get(id)
    // Not ours (an incoming migration that failed), moving (the migration's end decides), leaving (deleted, or fenced:
    // it runs elsewhere), or already being restarted.
    if (rec == null || rec.state === 'migrating' || local.isDeleting(id) || this.#pending.has(id) || this.#stopped) return
    const decision = decideGone(rec.spec.restartPolicy, this.#history.get(id), clock.now(), this.#config)
    if (decision.action === 'lost') {
      events.emit('vm.stopped', { id, node: self, reason, action: 'lost' })
      events.emit('vm.lost', { id, owner: self, reason: `${reason}, and ${decision.reason}` })
      this.#history.delete(id)
      await local.deleteVm(id).catch((err: Error) => { log.error({ component: 'discovery:vm', vm: id, err: err.message }, 'could not forget a lost VM') })
      return
    }
    events.emit('vm.stopped', { id, node: self, reason, action: 'restart', restartInMs: decision.delayMs })
    this.#history.set(id, decision.history)
    if (rec.state !== 'creating') local.setState(id, 'stopped')
    if (decision.delayMs === 0) {
      await this.#restart(id)
      return
    }
    const t = setTimeout(() => {
      this.#pending.delete(id)
      void this.#restart(id)
    }, decision.delayMs)
    t.unref()
    this.#pending.set(id, t)
  }

  async #restart (id: string): Promise<void> {
    const { local, driver, clock, log, metrics } = this.#c
    const rec = local.get(id)
    // Deleted or moved meanwhile.
    if (rec == null || local.isDeleting(id) || this.#stopped || this.#pending.has(id)) return
    this.#pending.set(id, 'starting')
    try {
      if (rec.state !== 'creating') local.setState(id, 'creating')
      await driver.create(rec.spec)
      this.#history.set(id, started(this.#history.get(id) ?? { crashes: 1 }, clock.now()))
      metrics.localRestarts.inc()
    } catch (err: any) {
      this.#pending.delete(id)
      if (local.get(id) == null) return
      log.warn({ component: 'discovery:vm', vm: id, err: err.message }, 'a VM could not be started again')
      await this.#gone(id, `it could not be started again: ${String(err.message)}`)
      return
    }
    this.#pending.delete(id)
  }
}
