/**
 * The admin partitions (`--admin`): blocks and heals through the connection
 * gater, each change an event (`peer.partitioned`, `peer.healed`) and the
 * blocks in force a gauge. Without `--admin` there is no gater, and every
 * call is refused (AdminDisabledError: 404 at the API).
 */
import type { BlockedPeer, PartitionDirection, PartitionGater } from '../net/index.ts'
import { AdminDisabledError } from './errors.ts'
import type { EventLog } from './event-log.ts'
import type { Metrics } from './metrics.ts'

export class AdminPartitions {
  readonly #gater?: PartitionGater
  readonly #events: EventLog
  readonly #metrics: Metrics

  constructor (components: { gater?: PartitionGater, events: EventLog, metrics: Metrics }) {
    this.#gater = components.gater
    this.#events = components.events
    this.#metrics = components.metrics
  }

  get enabled (): boolean { return this.#gater != null }

  /** Blocks the peers (`both` ways, or `inbound` only); returns every block now in force. */
  async partition (peers: string[], direction: PartitionDirection): Promise<BlockedPeer[]> {
    const gater = this.#require()
    const before = new Map(gater.blocked().map(b => [b.peerId, b.direction]))
    const now = await gater.block(peers, { direction })
    for (const b of now) {
      if (before.get(b.peerId) !== b.direction) this.#events.emit('peer.partitioned', { peerId: b.peerId, direction: b.direction })
    }
    this.#count()
    return now
  }

  /** Lifts the blocks of the peers, or all; returns the peers healed. */
  heal (peers?: string[]): string[] {
    const healed = this.#require().heal(peers)
    for (const peerId of healed) this.#events.emit('peer.healed', { peerId })
    this.#count()
    return healed
  }

  blocked (): BlockedPeer[] { return this.#require().blocked() }

  #require (): PartitionGater {
    if (this.#gater == null) throw new AdminDisabledError()
    return this.#gater
  }

  #count (): void {
    const blocked = this.#gater?.blocked() ?? []
    for (const direction of ['both', 'inbound'] as const) this.#metrics.partitionedPeers.set({ direction }, blocked.filter(b => b.direction === direction).length)
  }
}
