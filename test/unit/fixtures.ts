/**
 * Builders for the unit tests: valid NodeState and VmSummary values with
 * every field filled in, so a test names only what it is about. Each builder
 * runs its result through the schema, so a fixture can never drift from what
 * the network would accept.
 */
import { nodeStateSchema, PROTOCOL_VERSION, vmSummarySchema, type NodeState, type VmSummary } from '../../src/core/messages.ts'

/** A peer id that passes the base58 check, even for a one-letter tag: `tag` must avoid 0, O, I and l. */
export function peerId (tag: string): string {
  return `12D3KooWNode${tag}`
}

export interface NodeInit extends Partial<Omit<NodeState, 'v' | 'peerId'>> {
  /** Becomes `12D3KooWNode<tag>`. */
  tag: string
}

export function makeNode (init: NodeInit): NodeState {
  const { tag, ...rest } = init
  return nodeStateSchema.parse({
    v: PROTOCOL_VERSION,
    peerId: peerId(tag),
    incarnation: 1,
    seq: 0,
    addrs: ['/ip4/127.0.0.1/tcp/4001'],
    capacity: { cpu: 8, memMiB: 16384 },
    cpuOvercommit: 1,
    used: { cpu: 0, memMiB: 0 },
    reserved: { cpu: 0, memMiB: 0 },
    labels: {},
    vms: [],
    ...rest
  })
}

let vmCounter = 0

export function makeVm (init: Partial<VmSummary> = {}): VmSummary {
  vmCounter++
  return vmSummarySchema.parse({
    id: `vm-${String(vmCounter).padStart(8, '0')}`,
    name: `vm${vmCounter}`,
    cpu: 1,
    memMiB: 512,
    state: 'running',
    epoch: 0,
    ...init
  })
}
