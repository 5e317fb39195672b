/**
 * The network edge: the libp2p host, the state gossip topic, the stream
 * protocols and peer dialing. Everything received is validated here, against
 * the schemas of core/messages.ts, before the agent sees it.
 */
export { createHost } from './host.ts'
export { StateGossip, STATE_TOPIC } from './state-gossip.ts'
export { PlaceServer, placeRequest, placeRequestOnce, PLACE_PROTOCOL, PLACE_PROTOCOL_PIPELINED, PlaceTimeoutError, PlaceUnsentError, PlaceStreamClosedError } from './place-protocol.ts'
export { Redialer } from './redialer.ts'
export { RpcServer, rpcRequest, RpcTimeoutError } from './rpc.ts'
export { InvalidMessageError, MessageTooLargeError } from './codec.ts'
export { MIGRATE_PROTOCOL, REBALANCE_PROTOCOL } from './protocols.ts'
