/**
 * The agent: the composition root that runs on every machine. It wires the
 * pure core to the network, the hypervisor and the store, and owns the timers.
 */
export { Agent, VERSION, MAX_VM_WAIT_MS, type NodeView, type ClusterVm } from './agent.ts'
export { AdminDisabledError, NoCapacityError, VmNotFoundError, PeerUnreachableError, PlacementUncertainError, DeleteUncertainError, MigrationRefusedError } from './errors.ts'
