/**
 * Durable local state in the data directory: the identity key and the VM
 * records, in embedded SQLite (`node:sqlite`, no native build). A VM record
 * is written (fsync'd) before the agent acknowledges the VM to anyone.
 */
export { Store, type VmRecord } from './store.ts'
export { loadOrCreateIdentity } from './identity.ts'
