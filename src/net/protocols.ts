/** Every protocol id and topic the agents speak, in one place. */
export { PLACE_PROTOCOL, PLACE_PROTOCOL_PIPELINED } from './place-protocol.ts'
export { STATE_TOPIC } from './state-gossip.ts'
export const MIGRATE_PROTOCOL = '/discovery/migrate/1.0.0'
export const REBALANCE_PROTOCOL = '/discovery/rebalance/1.0.0'
