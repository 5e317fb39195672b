/**
 * Cooperative rebalancing as a service: core/rebalance.ts (the DVMS
 * partition state machine) fed with a monitor tick, the messages of
 * `/discovery/rebalance/1.0.0` and the end of the migrations it ordered; its
 * notes become events and the list `GET /v1/rebalance` shows; an overload of
 * this node starting and ending becomes events too.
 */
import type { Libp2p } from '@libp2p/interface'
import type { Logger } from 'pino'
import type { AgentConfig } from '../config.ts'
import type { Clock } from '../core/clock.ts'
import { PROTOCOL_VERSION } from '../core/messages.ts'
import { migrateResponseSchema, type MigrationRecord } from '../core/migrate-messages.ts'
import { demandOf, isOverloaded } from '../core/planner.ts'
import { type Effects, type Note, RebalanceNode, type RttOf } from '../core/rebalance.ts'
import { rebalanceEnvelopeSchema, type HostLoad, type RebalanceMessage } from '../core/rebalance-messages.ts'
import type { Ring } from '../core/ring.ts'
import { REBALANCE_PROTOCOL, RpcServer } from '../net/index.ts'
import type { EventLog } from './event-log.ts'
import type { PeerClient } from './peer-client.ts'
import { type AlignedTask, everyAligned } from '../net/aligned-timers.ts'

/** Notes kept for `GET /v1/rebalance`. */
const KEEP_NOTES = 500
/** Sends of a token tried on the next peers of the ring when its next one is unreachable. */
const TOKEN_HOPS_ON_FAILURE = 3

export interface RebalanceEventView {
  atMs: number
  note: Note
}

export interface RebalanceComponents {
  self: string
  config: AgentConfig
  clock: Clock
  log: Logger
  events: EventLog
  libp2p: Libp2p
  peers: PeerClient
  /** This node as the planner sees it. */
  load: () => HostLoad
  ring: () => Ring
  /** Round trips to the peers when partitions grow nearest-first (locality on); undefined: the ring. */
  rtt: () => RttOf | undefined
  /** Runs a migration this node was ordered to make as source. */
  migrate: (vmId: string, to: string, partitionId: string) => Promise<MigrationRecord>
  heard: (peerId: string) => void
  invalid: (source: string, from: string, reason: string) => void
}

export class RebalanceService {
  readonly #c: RebalanceComponents
  readonly #node: RebalanceNode
  readonly #server: RpcServer<typeof rebalanceEnvelopeSchema>
  readonly #notes: RebalanceEventView[] = []
  #timer?: AlignedTask
  #overloadSince?: number

  constructor (components: RebalanceComponents) {
    this.#c = components
    this.#node = new RebalanceNode(components.self, components.config.rebalance)
    this.#server = new RpcServer({
      libp2p: components.libp2p,
      protocol: REBALANCE_PROTOCOL,
      schema: rebalanceEnvelopeSchema,
      timeoutMs: components.config.requestTimeoutMs,
      onInvalid: (from, reason) => { components.invalid('rebalance', from, reason) },
      handle: async (req, from) => {
        components.heard(from)
        this.receive(from, req.msg)
        return { v: PROTOCOL_VERSION, ok: true }
      }
    })
  }

  get partitionId (): string | undefined { return this.#node.partitionId }

  async start (): Promise<void> {
    await this.#server.start()
    if (this.#timer != null) return
    this.#timer = everyAligned(this.#c.config.monitorIntervalMs, () => { this.tick() })
  }

  async stop (): Promise<void> {
    this.#timer?.clear()
    this.#timer = undefined
    await this.#server.stop()
  }

  /** This node's recent rebalancing notes, oldest first. */
  notes (): RebalanceEventView[] {
    return [...this.#notes]
  }

  /** The monitor: an overload of this node starts or ends, and the partition state machine ticks. */
  tick (): void {
    const now = this.#c.clock.now()
    const load = this.#c.load()
    this.#watchOverload(load, now)
    this.#apply(this.#node.tick(now, load, this.#c.ring(), this.#c.rtt()))
  }

  receive (from: string, msg: RebalanceMessage): void {
    this.#apply(this.#node.receive(from, msg, this.#c.clock.now(), this.#c.load(), this.#c.ring(), this.#c.rtt()))
  }

  #watchOverload (load: HostLoad, now: number): void {
    const over = isOverloaded(load)
    if (over && this.#overloadSince == null) {
      this.#overloadSince = now
      this.#c.events.emit('overload.started', { peerId: this.#c.self, demand: Math.round(demandOf(load) * 100) / 100, cores: load.capacity.cpu })
    } else if (!over && this.#overloadSince != null) {
      this.#c.events.emit('overload.ended', { peerId: this.#c.self, durationMs: now - this.#overloadSince })
      this.#overloadSince = undefined
    }
  }

  #apply (fx: Effects): void {
    for (const note of fx.notes) this.#note(note)
    for (const { to, msg } of fx.send) void this.#send(to, msg)
    for (const { partitionId, migration } of fx.migrate) {
      this.#c.migrate(migration.vmId, migration.to, partitionId)
        .then(r => { this.#apply(this.#node.migrationEnded(migration.vmId, r.phase === 'committed', this.#c.clock.now(), r.reason)) },
          (err: Error) => { this.#apply(this.#node.migrationEnded(migration.vmId, false, this.#c.clock.now(), err.message)) })
    }
  }

  #note (note: Note): void {
    this.#notes.push({ atMs: this.#c.clock.now(), note })
    if (this.#notes.length > KEEP_NOTES) this.#notes.shift()
    const events = this.#c.events
    if (note.kind === 'initiated') events.emit('rebalance.started', { partitionId: note.partitionId, problem: note.problem.kind, initiator: this.#c.self })
    else if (note.kind === 'planned') events.emit('rebalance.planned', { partitionId: note.partitionId, migrations: note.migrations, size: note.size })
    else if (note.kind === 'ended') events.emit('rebalance.ended', { partitionId: note.partitionId, outcome: note.outcome, size: note.size, durationMs: note.durationMs })
    else events.emit('rebalance.progress', { partitionId: note.partitionId, kind: note.kind })
  }

  /** Sends; a token whose next node is unreachable goes on to the node after it. */
  async #send (to: string, msg: RebalanceMessage, attempt = 0): Promise<void> {
    try {
      await this.#c.peers.rpc(to, REBALANCE_PROTOCOL, { v: PROTOCOL_VERSION, msg }, migrateResponseSchema)
    } catch (err: any) {
      if (msg.type === 'event' && attempt < TOKEN_HOPS_ON_FAILURE) {
        const next = this.#c.ring().successor(to)
        if (next != null && next !== to) {
          if (next === this.#c.self) this.receive(this.#c.self, msg)
          else await this.#send(next, msg, attempt + 1)
          return
        }
      }
      this.#c.log.warn({ component: 'discovery:rebalance', what: `send ${msg.type} to ${to}`, err: err.message }, 'rebalance message failed')
    }
  }
}
