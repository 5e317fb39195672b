/**
 * The typed events an agent emits: what it did and what it saw happen in the
 * cluster. Metrics and logs subscribe to them, and `GET /v1/events` streams
 * them (server-sent events). A type is `area.what`; its data is plain JSON.
 *
 * VM and peer events describe this agent's view: `vm.placed` is emitted by
 * the agent that placed the VM, by the node that took it, and by every other
 * agent when gossip brings the VM into its view; so a client following any
 * one agent sees the whole cluster, as that agent knows it.
 */
import type { PeerStatus } from '../core/cluster-view.ts'

export interface AgentEventMap {
  /** A peer entered this agent's view. */
  'peer.joined': { peerId: string }
  /** A suspect or dead peer was heard from again. */
  'peer.alive': { peerId: string, from: PeerStatus }
  'peer.suspect': { peerId: string, from: PeerStatus }
  'peer.dead': { peerId: string, from: PeerStatus }
  /**
   * A suspect or dead peer refuted: it showed a higher incarnation in the
   * same run (it was alive all along, or paused). After `dead`, the death
   * was a false positive. A restarted peer is `peer.alive` only.
   */
  'peer.refuted': { peerId: string, from: PeerStatus, falsePositive: boolean }
  /** An admin partition (`--admin`) blocks the peer: `both` ways, or `inbound` (it cannot start anything with this agent). */
  'peer.partitioned': { peerId: string, direction: 'both' | 'inbound' }
  /** An admin partition of the peer was lifted. */
  'peer.healed': { peerId: string }
  /** A peer's gossiped state changed (capacity, usage, VMs). */
  'peer.state': { peerId: string, seq: number, used: { cpu: number, memMiB: number }, reserved: { cpu: number, memMiB: number }, vmCount: number }
  /** This agent accepted a create request and is placing the VM. */
  'vm.created': { id: string, name: string, cpu: number, memMiB: number }
  /** The VM is on `node`: placed by this agent, taken by it, or seen in gossip. */
  'vm.placed': { id: string, node: string, cpu: number, memMiB: number, attempts?: number, ms?: number }
  /** The VM booted on `node`. */
  'vm.running': { id: string, node: string }
  /** The VM is gone from `node` (deleted, or moved away: a `vm.placed` elsewhere follows). */
  'vm.deleted': { id: string, node: string }
  /** A placement this agent ran failed: no node could host the VM, or its owner stayed silent. */
  'vm.failed': { id: string, reason: string, uncertain: boolean, ms: number }
  /**
   * This agent restarted a dead owner's VM on `node` at `epoch`; `ms` from the death being declared here to the new
   * owner's commit, of which `placeMs` placing it (`attempts` candidates asked; before, the other holders were asked for tombstones).
   */
  'vm.restarted': { id: string, deadOwner: string, node: string, epoch: number, ms: number, placeMs: number, attempts: number }
  /** A dead owner's VM that nothing restarts (`restartPolicy: never`), reported by the one holder that would have restarted it. */
  'vm.lost': { id: string, owner: string, reason: string }
  /** Our copy of the VM stopped: `node` runs it at a higher epoch, with a valid proof (fencing). */
  'vm.fenced': { id: string, node: string, epoch: number }
  /** A proof that did not hold — an epoch claimed without one, a forged restart, a tombstone or record of no standing — dropped; the VM keeps running. */
  'replica.refused': { vmId: string, from: string, what: 'claim' | 'record' | 'tombstone', reason: string }
  /**
   * Our VM's process is gone: found gone at this agent's start, or died (`reason`). Its restart policy
   * says what follows: `restart` in place (after `restartInMs`), or `lost` (a `vm.lost` follows).
   */
  'vm.stopped': { id: string, node: string, reason: string, action: 'restart' | 'lost', restartInMs?: number }
  'migration.started': { id: string, vmId: string, from: string, to: string, partitionId?: string }
  /** `interSite`: the two nodes' zones (their `zone` labels) differ. */
  'migration.committed': { id: string, vmId: string, from: string, to: string, totalMs?: number, downtimeMs?: number, bytesMiB?: number, partitionId?: string, interSite?: boolean }
  'migration.aborted': { id: string, vmId: string, from: string, to: string, reason: string, partitionId?: string, interSite?: boolean }
  'rebalance.started': { partitionId: string, problem: 'overload' | 'underload', initiator: string }
  'rebalance.planned': { partitionId: string, migrations: number, size: number }
  /** This node joined a partition, merged into another, was blocked or left it on a timeout. */
  'rebalance.progress': { partitionId: string, kind: 'joined' | 'merged' | 'blocked' | 'left-timeout' }
  'rebalance.ended': { partitionId: string, outcome: 'solved' | 'failed' | 'unsolvable' | 'timeout', size: number, durationMs: number }
  /** This node's VMs ask for more CPU than its cores. */
  'overload.started': { peerId: string, demand: number, cores: number }
  'overload.ended': { peerId: string, durationMs: number }
}

export type AgentEventType = keyof AgentEventMap

export const EVENT_TYPES: readonly AgentEventType[] = Object.freeze([
  'peer.joined', 'peer.alive', 'peer.suspect', 'peer.dead', 'peer.refuted', 'peer.state', 'peer.partitioned', 'peer.healed',
  'vm.created', 'vm.placed', 'vm.running', 'vm.deleted', 'vm.failed', 'vm.stopped', 'vm.restarted', 'vm.lost', 'vm.fenced', 'replica.refused',
  'migration.started', 'migration.committed', 'migration.aborted',
  'rebalance.started', 'rebalance.planned', 'rebalance.progress', 'rebalance.ended',
  'overload.started', 'overload.ended'
] as const)

/** One emitted event: `id` grows by one per event of this agent's run. */
export interface AgentEvent<T extends AgentEventType = AgentEventType> {
  id: number
  type: T
  atMs: number
  data: AgentEventMap[T]
}
