/**
 * Durable local state in the data directory: the identity key, the VM
 * records with their ownership chains, and what this node holds for others
 * (replicas and tombstones), in embedded SQLite (`node:sqlite`, no native
 * build). A VM record is written (fsync'd) before the agent acknowledges the
 * VM to anyone; a replica before its holder answers its owner.
 */
export { Store, type VmRecord } from './store.ts'
export { ReplicaStore, type StoredReplica } from './replica-store.ts'
export { loadOrCreateIdentity } from './identity.ts'
