/**
 * Every protocol id and gossip topic an agent speaks, in one place: what two
 * agents of different versions must agree on. A change here is a change of
 * the wire contract (DESIGN.md, "Protocols between agents"): add a version,
 * keep serving the old one.
 */

/** Reserve, commit, release, delete: one request and one answer per stream. */
export const PLACE_PROTOCOL = '/discovery/place/1.0.0'
/** The same messages, any number per long-lived stream, answered in order. */
export const PLACE_PROTOCOL_PIPELINED = '/discovery/place/1.1.0'
/** Live migration: propose, accept with a reservation, transfer, commit or abort. */
export const MIGRATE_PROTOCOL = '/discovery/migrate/1.0.0'
/** The cooperative rebalancing token and its partition messages. */
export const REBALANCE_PROTOCOL = '/discovery/rebalance/1.0.0'
/** "I close our connection on purpose": said before an idle connection is closed (farewell.ts). */
export const BYE_PROTOCOL = '/discovery/bye/1.0.0'
/** A peer's view of the cluster, for an agent that joins or may have missed states (view-sync.ts). */
export const VIEW_PROTOCOL = '/discovery/view/1.0.0'
/** Replicated VM records: put, drop, delete (tombstones), confirm-dead, chain (the proof of a claimed epoch), held. */
export const REPLICA_PROTOCOL = '/discovery/replica/1.0.0'
/** Gossipsub topic of each agent's signed NodeState. */
export const STATE_TOPIC = '/discovery/state/1'
/** The failure detector (SWIM with Lifeguard): ping, ack, ping-req, nack, gossip, one datagram per frame on a long-lived stream. */
export const SWIM_PROTOCOL = '/discovery/swim/1.0.0'

/**
 * libp2p's own upkeep of a connection (ping, from its connection monitor, and
 * identify): a one-way admin partition lets them through, or the peer would
 * close the connection we opened (partition-gater.ts).
 */
export const LIBP2P_UPKEEP_PROTOCOLS: readonly string[] = Object.freeze(['/ipfs/ping/1.0.0', '/ipfs/id/1.0.0', '/ipfs/id/push/1.0.0'])
