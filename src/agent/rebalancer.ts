/**
 * Wires core/rebalance.ts (the DVMS partition state machine) into a live
 * agent: a monitor every second, the ring from the view, messages over
 * `/discovery/rebalance/1.0.0`, migrations through the migration protocol.
 */
import type { HostLoad } from '../core/planner.ts'
import { type Effects, type Note, RebalanceNode, type RebalanceConfig, type RebalanceMessage } from '../core/rebalance.ts'
import type { Ring } from '../core/ring.ts'
import type { MigrationRecord } from '../core/migrate-messages.ts'

export interface RebalancerInit {
  self: string
  config: RebalanceConfig
  monitorMs: number
  local: () => HostLoad
  ring: () => Ring
  send: (peerId: string, msg: RebalanceMessage) => Promise<void>
  migrate: (vmId: string, to: string, partitionId: string) => Promise<MigrationRecord>
  onNote: (note: Note) => void
  onError: (what: string, err: Error) => void
  now: () => number
}

export class Rebalancer {
  readonly #init: RebalancerInit
  readonly #node: RebalanceNode
  #timer?: NodeJS.Timeout

  constructor (init: RebalancerInit) {
    this.#init = init
    this.#node = new RebalanceNode(init.self, init.config)
  }

  get partitionId (): string | undefined { return this.#node.partitionId }

  start (): void {
    if (this.#timer != null) return
    this.#timer = setInterval(() => { this.tick() }, this.#init.monitorMs)
    this.#timer.unref()
  }

  stop (): void {
    if (this.#timer != null) clearInterval(this.#timer)
    this.#timer = undefined
  }

  tick (): void {
    this.#apply(this.#node.tick(this.#init.now(), this.#init.local(), this.#init.ring()))
  }

  receive (from: string, msg: RebalanceMessage): void {
    this.#apply(this.#node.receive(from, msg, this.#init.now(), this.#init.local(), this.#init.ring()))
  }

  #apply (fx: Effects): void {
    for (const note of fx.notes) this.#init.onNote(note)
    for (const { to, msg } of fx.send) void this.#send(to, msg)
    for (const { partitionId, migration } of fx.migrate) {
      this.#init.migrate(migration.vmId, migration.to, partitionId)
        .then(r => { this.#apply(this.#node.migrationEnded(migration.vmId, r.phase === 'committed', this.#init.now(), r.reason)) },
          (err: Error) => { this.#apply(this.#node.migrationEnded(migration.vmId, false, this.#init.now(), err.message)) })
    }
  }

  /** Sends; a token whose next node is unreachable goes on to the node after it. */
  async #send (to: string, msg: RebalanceMessage, attempt = 0): Promise<void> {
    try {
      await this.#init.send(to, msg)
    } catch (err: any) {
      if (msg.type === 'event' && attempt < 3) {
        const next = this.#init.ring().successor(to)
        if (next != null && next !== to) {
          if (next === this.#init.self) this.receive(this.#init.self, msg)
          else await this.#send(next, msg, attempt + 1)
          return
        }
      }
      this.#init.onError(`send ${msg.type} to ${to}`, err)
    }
  }
}
