/**
 * Live migration as a service: `/discovery/migrate/1.0.0` served (proposals,
 * commits and aborts as destination, requests to migrate one of our VMs),
 * user migrations of any VM (ours directly, a peer's through its owner), and
 * the events and figures of every migration this node runs as source. Both
 * ends run core/migration-fsm.ts through migrations.ts.
 */
import type { Libp2p } from '@libp2p/interface'
import type { Logger } from 'pino'
import type { AgentConfig } from '../config.ts'
import type { Clock } from '../core/clock.ts'
import { PROTOCOL_VERSION } from '../core/messages.ts'
import { migrateRequestSchema, migrateResponseSchema, type MigrateRequest, type MigrateResponse, type MigrationRecord } from '../core/migrate-messages.ts'
import { compareHeads } from '../core/ownership.ts'
import type { Chain } from '../core/ownership-messages.ts'
import { arraySource, CandidateOrder } from '../core/placement.ts'
import { isInterSite, type Locality } from '../core/locality.ts'
import type { Rng } from '../core/rng.ts'
import type { Driver } from '../hypervisor/index.ts'
import { MIGRATE_PROTOCOL, RpcServer } from '../net/index.ts'
import { MigrationRefusedError, NoCapacityError, PeerUnreachableError } from './errors.ts'
import type { EventLog } from './event-log.ts'
import type { LocalNode } from './local-node.ts'
import type { Membership } from './membership.ts'
import { Migrations } from './migrations.ts'
import type { OwnState } from './own-state.ts'
import type { PeerClient } from './peer-client.ts'

export interface MigrationComponents {
  self: string
  config: AgentConfig
  clock: Clock
  rng: Rng
  log: Logger
  events: EventLog
  libp2p: Libp2p
  local: LocalNode
  driver: Driver
  membership: Membership
  ownState: OwnState
  peers: PeerClient
  /** The rebalancing partition this node is in, if any. */
  partition: () => string | undefined
  /** The chain a migration's commit carries: ours with our migrate link to `to`. */
  commitChain: (vmId: string, to: string) => Chain | undefined
  /** This agent's zone and its peers' round trips, when a destination is chosen by locality. */
  locality: () => Locality | undefined
  invalid: (source: string, from: string, reason: string) => void
}

export class MigrationService {
  readonly #c: MigrationComponents
  readonly #migrations: Migrations
  readonly #server: RpcServer<typeof migrateRequestSchema>

  constructor (components: MigrationComponents) {
    this.#c = components
    const { self, config, events, local, driver, peers, ownState, clock } = components
    this.#migrations = new Migrations({
      self,
      local,
      driver,
      config: config.migration,
      now: () => clock.now(),
      send: async (peerId, req) => await peers.rpc(peerId, MIGRATE_PROTOCOL, req, migrateResponseSchema),
      partition: components.partition,
      load: () => ownState.hostLoad(),
      commitChain: components.commitChain,
      interSite: (to) => isInterSite(config.labels, components.membership.view.get(to)?.state.labels),
      onStarted: (r) => { events.emit('migration.started', { id: r.id, vmId: r.vmId, from: r.from, to: r.to, ...(r.partitionId != null ? { partitionId: r.partitionId } : {}) }) },
      onEnded: (r) => {
        const base = { id: r.id, vmId: r.vmId, from: r.from, to: r.to, ...(r.partitionId != null ? { partitionId: r.partitionId } : {}), ...(r.interSite === true ? { interSite: true } : {}) }
        if (r.phase === 'committed') events.emit('migration.committed', { ...base, ...(r.totalMs != null ? { totalMs: r.totalMs } : {}), ...(r.downtimeMs != null ? { downtimeMs: r.downtimeMs } : {}), ...(r.bytesMiB != null ? { bytesMiB: r.bytesMiB } : {}) })
        else events.emit('migration.aborted', { ...base, reason: r.reason ?? 'aborted' })
      }
    })
    this.#server = new RpcServer({
      libp2p: components.libp2p,
      protocol: MIGRATE_PROTOCOL,
      schema: migrateRequestSchema,
      timeoutMs: config.requestTimeoutMs,
      onInvalid: (from, reason) => { components.invalid('migrate', from, reason) },
      handle: async (req, from) => {
        components.membership.heard(from)
        return await this.#serve(req, from)
      }
    })
  }

  async start (): Promise<void> {
    await this.#server.start()
  }

  async stop (): Promise<void> {
    this.#migrations.stop()
    await this.#server.stop()
  }

  list (): MigrationRecord[] {
    return this.#migrations.list()
  }

  tick (): void {
    this.#migrations.tick()
  }

  /** Migrates one of our VMs to `to` (a rebalancing order); resolves once it has ended. */
  async migrate (vmId: string, to: string, partitionId?: string): Promise<MigrationRecord> {
    return await this.#migrations.migrate(vmId, to, partitionId)
  }

  /** The destination of some transfers is gone: abort them. */
  peerLost (peerId: string): void {
    this.#migrations.peerLost(peerId)
  }

  /**
   * `owner` runs `vmId` above our head, and proved it (claims.ts checked its
   * chain): an in-doubt migration of it committed after all; a copy not
   * migrating stops (fencing). True when our copy stops.
   */
  fenced (vmId: string, owner: string, epoch: number): boolean {
    this.#migrations.fenced(vmId)
    const local = this.#c.local.get(vmId)
    if (local == null || local.state === 'migrating' || this.#c.local.isDeleting(vmId) || compareHeads({ epoch, owner }, { epoch: local.epoch, owner: this.#c.self }) <= 0) return false
    this.#c.log.warn({ component: 'discovery:fencing', vm: vmId, ours: local.epoch, theirs: epoch, owner }, 'a higher epoch runs elsewhere: stopping our copy')
    void this.#c.local.deleteVm(vmId, 'moved')
    return true
  }

  /**
   * Live-migrates a VM: ours directly; another node's by asking its owner.
   * Without `to`, the destination is chosen like a placement (excluding the VM's node).
   */
  async migrateVm (id: string, to?: string): Promise<MigrationRecord> {
    const { self, local, membership, peers } = this.#c
    const rec = local.get(id)
    if (rec == null) {
      const vm = membership.getVm(id)
      let res: MigrateResponse
      try {
        res = await peers.rpc(vm.node, MIGRATE_PROTOCOL, { v: PROTOCOL_VERSION, op: 'request', vmId: id, ...(to != null ? { to } : {}) }, migrateResponseSchema)
      } catch (err: any) {
        throw new PeerUnreachableError(`node ${vm.node} that runs ${id} cannot be reached: ${err.message}`)
      }
      if (res.migration != null) return res.migration
      if (!res.ok) throw new MigrationRefusedError(res.reason)
      throw new MigrationRefusedError('the owner did not return the migration')
    }
    let dest = to
    if (dest == null) {
      const nodes = membership.alive().filter(s => s.peerId !== self)
      // Like a placement: the least loaded that fits, in this node's zone first, then the nearest (with locality on).
      const order = new CandidateOrder(arraySource(nodes), { resources: { cpu: rec.spec.cpu, memMiB: rec.spec.memMiB }, constraints: rec.spec.constraints }, new Map(), this.#c.rng, nodes.length, this.#c.locality())
      const first = order.next()
      if (first == null) throw new NoCapacityError(`no other node can host ${id} (${rec.spec.cpu} vCPU / ${rec.spec.memMiB} MiB)`)
      dest = first.peerId
    } else if (dest === self) {
      throw new MigrationRefusedError(`${id} already runs on ${dest}`)
    } else if (membership.view.get(dest)?.status !== 'alive') {
      throw new PeerUnreachableError(`no live peer ${dest} is known to this agent`)
    }
    return await this.#migrations.migrate(id, dest)
  }

  async #serve (req: MigrateRequest, from: string): Promise<MigrateResponse> {
    if (req.op === 'request') {
      try {
        const migration = await this.migrateVm(req.vmId, req.to)
        return migration.phase === 'committed' ? { v: PROTOCOL_VERSION, ok: true, migration } : { v: PROTOCOL_VERSION, ok: false, reason: migration.reason ?? 'aborted', migration }
      } catch (err: any) {
        return { v: PROTOCOL_VERSION, ok: false, reason: `${err.name}: ${err.message}` }
      }
    }
    return await this.#migrations.handle(req, from)
  }
}
