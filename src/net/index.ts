/**
 * The network edge: the libp2p host, the state gossip topic, the stream
 * protocols and peer dialing. Everything received is validated here, against
 * the schemas of core/messages.ts, before the agent sees it. Protocol ids and
 * topics are in protocols.ts; the patches of libraries' internals, kept
 * together so that an upgrade re-checks them, in patches/.
 */
export { createHost } from './host.ts'
export { StateGossip } from './state-gossip.ts'
export { BYE_PROTOCOL, LIBP2P_UPKEEP_PROTOCOLS, MIGRATE_PROTOCOL, PLACE_PROTOCOL, PLACE_PROTOCOL_PIPELINED, REBALANCE_PROTOCOL, REPLICA_PROTOCOL, STATE_TOPIC, SWIM_PROTOCOL, VIEW_PROTOCOL } from './protocols.ts'
export { SwimTransport } from './swim-transport.ts'
export { PlaceServer } from './place-server.ts'
export { PlaceClient } from './place-client.ts'
export { PlaceStreamClosedError, PlaceTimeoutError, PlaceUnsentError } from './place-wire.ts'
export { Redialer } from './redialer.ts'
export { Farewell } from './farewell.ts'
export { newerStates, ViewSync } from './view-sync.ts'
export { PingMismatchError, probeRtt } from './rtt-probe.ts'
export { RpcServer, rpcRequest, RpcTimeoutError } from './rpc.ts'
export { InvalidMessageError, MessageTooLargeError } from './codec.ts'
export { type BlockedPeer, type PartitionDirection, PartitionedError, PartitionGater, UnexpectedRegistrarError } from './partition-gater.ts'
export { formatSwarmKey, parseSwarmKey, readSwarmKey, SWARM_KEY_FORMAT, SwarmKeyError } from './swarm-key.ts'
export { StreamActivity } from './stream-activity.ts'
