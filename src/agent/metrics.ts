/** The agent's Prometheus metrics, one registry per agent. */
import type { Connection, Libp2p } from '@libp2p/interface'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { EventLog } from './event-log.ts'
import type { LocalNode } from './local-node.ts'

export function createMetrics () {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, prefix: 'discovery_process_', eventLoopMonitoringPrecision: 1000 })
  return {
    registry,
    invalidMessages: new Counter({ name: 'discovery_invalid_messages_total', help: 'Malformed, oversized or hostile inputs dropped, by where they came from', labelNames: ['source'] as const, registers: [registry] }),
    placements: new Counter({ name: 'discovery_placements_total', help: 'VM creates handled by this agent, by result', labelNames: ['result'] as const, registers: [registry] }),
    placeAttempts: new Counter({ name: 'discovery_place_attempts_total', help: 'Reservations this agent asked of candidates, by result', labelNames: ['result'] as const, registers: [registry] }),
    placeServed: new Counter({ name: 'discovery_place_requests_total', help: 'Place protocol requests this agent served, by op and result', labelNames: ['op', 'result'] as const, registers: [registry] }),
    createSeconds: new Histogram({ name: 'discovery_vm_create_seconds', help: 'Time to place a VM, from request to acknowledgement', buckets: [0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: [registry] }),
    gossipPublished: new Counter({ name: 'discovery_gossip_published_total', help: 'State messages this agent published', registers: [registry] }),
    gossipGaps: new Counter({ name: 'discovery_gossip_delta_gaps_total', help: 'State deltas whose base this agent did not hold (a message lost or overtaken): that peer\'s VM list is inexact until its next whole state', registers: [registry] }),
    viewSyncs: new Counter({ name: 'discovery_view_syncs_total', help: 'View syncs (anti-entropy) this agent asked of a peer, by why: join (a peer it connected to in its first minute, one at a time until caught up), unknown (a peer whose detector named one it did not know, or a peer connected and still unknown 2 s later), periodic', labelNames: ['why'] as const, registers: [registry] }),
    viewSyncsAnswered: new Counter({ name: 'discovery_view_syncs_answered_total', help: 'View syncs this agent answered for peers', registers: [registry] }),
    viewSyncStates: new Counter({ name: 'discovery_view_sync_states_total', help: 'States the view syncs this agent asked brought, by outcome of the merge', labelNames: ['result'] as const, registers: [registry] }),
    gossipReceived: new Counter({ name: 'discovery_gossip_received_total', help: 'State messages received, by outcome of the merge', labelNames: ['result'] as const, registers: [registry] }),
    peers: new Gauge({ name: 'discovery_peers', help: 'Peers in this agent\'s view, by status', labelNames: ['status'] as const, registers: [registry] }),
    vms: new Gauge({ name: 'discovery_vms', help: 'VMs this agent runs, by state', labelNames: ['state'] as const, registers: [registry] }),
    capacity: new Gauge({ name: 'discovery_capacity', help: 'This node\'s capacity', labelNames: ['resource'] as const, registers: [registry] }),
    used: new Gauge({ name: 'discovery_used', help: 'This node\'s committed resources', labelNames: ['resource'] as const, registers: [registry] }),
    reserved: new Gauge({ name: 'discovery_reserved', help: 'This node\'s reserved (leased) resources', labelNames: ['resource'] as const, registers: [registry] }),
    migrations: new Counter({ name: 'discovery_migrations_total', help: 'Migrations this agent ran as source, by how they ended', labelNames: ['result'] as const, registers: [registry] }),
    rebalanceNotes: new Counter({ name: 'discovery_rebalance_events_total', help: 'Rebalancing (DVMS) events at this agent, by kind', labelNames: ['kind'] as const, registers: [registry] }),
    disconnects: new Counter({ name: 'discovery_peer_disconnects_total', help: 'Times this agent lost its last connection to a peer', registers: [registry] }),
    partitionRefused: new Counter({ name: 'discovery_partition_refused_total', help: 'Dials, connections and streams refused because an admin partition blocks the peer, by what', labelNames: ['what'] as const, registers: [registry] }),
    partitionedPeers: new Gauge({ name: 'discovery_partitioned_peers', help: 'Peers an admin partition blocks now, by direction', labelNames: ['direction'] as const, registers: [registry] }),
    connections: new Gauge({ name: 'discovery_connections', help: 'Open libp2p connections', registers: [registry] }),
    connectionsOpened: new Counter({ name: 'discovery_connections_opened_total', help: 'libp2p connections opened (each a TCP connect and a noise handshake), by who dialled', labelNames: ['direction'] as const, registers: [registry] }),
    detectorProbes: new Counter({ name: 'discovery_detector_probes_total', help: 'Failure-detector probes this agent sent (round-robin, on a hint, to verify an accusation, to revive a dead peer)', registers: [registry] }),
    detectorIndirectProbes: new Counter({ name: 'discovery_detector_indirect_probes_total', help: 'Probes that got no direct ack in time and went through helpers (ping-req)', registers: [registry] }),
    detectorFailedProbes: new Counter({ name: 'discovery_detector_failed_probes_total', help: 'Probes that ended with no ack and a helper\'s nack: accusations this agent made', registers: [registry] }),
    detectorSuspicions: new Counter({ name: 'discovery_detector_suspicions_total', help: 'Peers this agent began to show suspect', registers: [registry] }),
    detectorRefutations: new Counter({ name: 'discovery_detector_refutations_total', help: 'Accusations of this agent that it refuted by raising its incarnation', registers: [registry] }),
    detectorDeaths: new Counter({ name: 'discovery_detector_deaths_total', help: 'Peers this agent declared dead', registers: [registry] }),
    detectorFalsePositives: new Counter({ name: 'discovery_detector_false_positives_total', help: 'Peers declared dead here that came back in the same run (they refuted the death)', registers: [registry] }),
    detectorSyncs: new Counter({ name: 'discovery_detector_syncs_total', help: 'Syncs this agent sent: the peers it holds suspect or dead, to one peer, which answers with what it knows beyond that', registers: [registry] }),
    detectorSyncNews: new Counter({ name: 'discovery_detector_sync_news_total', help: 'Membership updates this agent sent in answer to a sync: what the asking peer lacked or held in an older form', registers: [registry] }),
    detectorMessages: new Counter({ name: 'discovery_detector_messages_total', help: 'Failure-detector messages (/discovery/swim/1.0.0), by direction and type (ping, ack, ping-req, nack, gossip, sync)', labelNames: ['direction', 'type'] as const, registers: [registry] }),
    detectorHealth: new Gauge({ name: 'discovery_detector_health', help: 'Lifeguard local health score: 0 healthy; each point stretches probe intervals and timeouts by one more time', registers: [registry] }),
    detectorHostSlowdown: new Gauge({ name: 'discovery_detector_host_slowdown', help: 'How much the host\'s slowdown stretches probe timeouts and the probe interval (1: not at all; local profile only)', registers: [registry] }),
    detectorProcessesStopped: new Counter({ name: 'discovery_detector_processes_stopped_total', help: 'Times the kernel showed the process of a peer this agent observes on its host stopped or gone (probed at once on the plain timeout)', registers: [registry] }),
    restarts: new Counter({ name: 'discovery_vm_restarts_total', help: 'Restarts of dead owners\' VMs this agent ran, by result', labelNames: ['result'] as const, registers: [registry] }),
    vmsLost: new Counter({ name: 'discovery_vms_lost_total', help: 'VMs this agent reported lost (restartPolicy never): a dead owner\'s, or its own whose process died', registers: [registry] }),
    fenced: new Counter({ name: 'discovery_vms_fenced_total', help: 'Copies of VMs this agent stopped because a higher epoch runs elsewhere, with proof', registers: [registry] }),
    replicasHeld: new Gauge({ name: 'discovery_replicas_held', help: 'Replicas of other owners\' VMs this agent holds', registers: [registry] }),
    replicasPending: new Gauge({ name: 'discovery_replicas_pending', help: 'Records and tombstones of this agent\'s VMs queued for holders that do not have them yet (until 0, a VM may not survive this agent\'s death)', registers: [registry] }),
    tombstones: new Gauge({ name: 'discovery_tombstones', help: 'Tombstones of deleted VMs this agent keeps', registers: [registry] }),
    replicaMessages: new Counter({ name: 'discovery_replica_messages_total', help: 'Replica protocol requests this agent sent, by op and result', labelNames: ['op', 'result'] as const, registers: [registry] }),
    localRestarts: new Counter({ name: 'discovery_vm_local_restarts_total', help: 'Our VMs whose process was gone (at start, or died) that this agent started again in place', registers: [registry] }),
    interSiteMigrations: new Counter({ name: 'discovery_migrations_inter_site_total', help: 'Migrations this agent ran as source between two zones, by how they ended', labelNames: ['result'] as const, registers: [registry] }),
    peerRtt: new Gauge({ name: 'discovery_peer_rtt_seconds', help: 'Round trip to each connected peer (libp2p ping, the least of the recent samples)', labelNames: ['peer'] as const, registers: [registry] })
  }
}

export type Metrics = ReturnType<typeof createMetrics>

/** Counters read as rates from their first scrape (a missing series is not a zero to Prometheus' rate()). */
export function zeroCounters (m: Metrics): void {
  for (const result of ['committed', 'aborted']) m.interSiteMigrations.inc({ result }, 0)
  for (const direction of ['inbound', 'outbound']) m.connectionsOpened.inc({ direction }, 0)
}

/** Counts the connections libp2p opens, by direction: what a join or a bounded fan-out's churn costs in handshakes. */
export function countConnections (metrics: Metrics, libp2p: Pick<Libp2p, 'addEventListener' | 'removeEventListener'>): () => void {
  const f = (evt: CustomEvent<Connection>): void => { metrics.connectionsOpened.inc({ direction: evt.detail.direction }) }
  libp2p.addEventListener('connection:open', f)
  return () => { libp2p.removeEventListener('connection:open', f) }
}

/**
 * The counters that follow the agent's events: placements and their time,
 * migrations by outcome, rebalancing by kind. (Per-message counters — gossip,
 * place requests served, invalid input — are counted where the message is.)
 */
export function countEvents (metrics: Metrics, events: EventLog): () => void {
  const off = [
    events.on('vm.placed', e => {
      // Only the placing agent's event carries its figures; the others saw it happen.
      if (e.data.ms == null) return
      metrics.placements.inc({ result: 'placed' })
      metrics.createSeconds.observe(e.data.ms / 1000)
    }),
    events.on('vm.failed', e => {
      metrics.placements.inc({ result: e.data.uncertain ? 'failed' : 'no-capacity' })
      metrics.createSeconds.observe(e.data.ms / 1000)
    }),
    events.on('migration.committed', e => {
      metrics.migrations.inc({ result: 'committed' })
      if (e.data.interSite === true) metrics.interSiteMigrations.inc({ result: 'committed' })
    }),
    events.on('migration.aborted', e => {
      metrics.migrations.inc({ result: 'aborted' })
      if (e.data.interSite === true) metrics.interSiteMigrations.inc({ result: 'aborted' })
    }),
    events.on('vm.restarted', () => { metrics.restarts.inc({ result: 'restarted' }) }),
    events.on('vm.fenced', () => { metrics.fenced.inc() }),
    events.on('vm.lost', () => { metrics.vmsLost.inc() }),
    events.on('rebalance.started', () => { metrics.rebalanceNotes.inc({ kind: 'initiated' }) }),
    events.on('rebalance.planned', () => { metrics.rebalanceNotes.inc({ kind: 'planned' }) }),
    events.on('rebalance.progress', e => { metrics.rebalanceNotes.inc({ kind: e.data.kind }) }),
    events.on('rebalance.ended', e => { metrics.rebalanceNotes.inc({ kind: `ended-${e.data.outcome}` }) })
  ]
  return () => { for (const f of off) f() }
}

/** The gauges of this node, sampled on the agent's tick. */
export function sampleNode (metrics: Metrics, local: LocalNode, connections: number): void {
  const byState: Record<string, number> = { creating: 0, running: 0, stopped: 0, migrating: 0 }
  for (const vm of local.records()) byState[vm.state] = (byState[vm.state] ?? 0) + 1
  for (const [state, n] of Object.entries(byState)) metrics.vms.set({ state }, n)
  const ledger = local.ledger
  metrics.capacity.set({ resource: 'cpu' }, ledger.capacity.cpu)
  metrics.capacity.set({ resource: 'memMiB' }, ledger.capacity.memMiB)
  metrics.used.set({ resource: 'cpu' }, ledger.used.cpu)
  metrics.used.set({ resource: 'memMiB' }, ledger.used.memMiB)
  metrics.reserved.set({ resource: 'cpu' }, ledger.reserved.cpu)
  metrics.reserved.set({ resource: 'memMiB' }, ledger.reserved.memMiB)
  metrics.connections.set(connections)
}
