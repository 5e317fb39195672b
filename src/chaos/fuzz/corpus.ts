/**
 * The valid-shaped messages each entry point starts from, and what decides
 * whether a variant may be sent at all. A variant the target's own schema
 * takes is still sent only when it cannot legitimately change the target's
 * state (`harmless`): a reserve that cannot fit, a commit or delete naming a
 * lease or VM that does not exist there, a state that names another peer than
 * its signer, signatures that do not verify. A valid message that would
 * change state is not hostile, it is a request: it is dropped from the draw.
 */
import { randomUUID } from 'node:crypto'
import type { z } from 'zod'
import { placeRequestSchema, PROTOCOL_VERSION } from '../../core/messages.ts'
import { migrateRequestSchema } from '../../core/migrate-messages.ts'
import { rebalanceEnvelopeSchema } from '../../core/rebalance-messages.ts'
import { replicaRequestSchema } from '../../core/replica-messages.ts'
import { swimMessageSchema } from '../../core/swim-messages.ts'

/** What the generators know of the target: enough to keep a valid variant harmless. */
export interface TargetFacts {
  rogueId: string
  targetId: string
  /** Every VM id and peer id known in the cluster: a valid variant may not name one. */
  knownVms: Set<string>
  knownPeers: Set<string>
  capacity: { cpu: number, memMiB: number }
  cpuOvercommit: number
  /** State messages heard on the topic from real agents, to replay and to mutate. */
  heardStates: unknown[]
}

export interface StreamCorpus {
  schema: z.ZodType
  bases: unknown[]
  /** For a message the schema takes: may it be sent without legitimately changing the target? */
  harmless: (msg: any, facts: TargetFacts) => boolean
}

const B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'

/** A well-formed peer id of no peer (base58, the length of an Ed25519 one). */
export function strangerPeer (i: number): string {
  let s = '12D3KooW'
  let x = (i + 1) * 2654435761
  while (s.length < 52) { s += B58[x % 58]; x = Math.floor(x / 58) + 7919 * s.length }
  return s
}

export function strangerVm (i: number): string {
  return `vm-fz${(i * 48271 % 2147483647).toString(36).padStart(8, '0')}`
}

/** 64 bytes in base64: an Ed25519 signature's shape, verifying nothing. */
function forgedSig (i: number): string {
  return Buffer.from(Array.from({ length: 64 }, (_, k) => (i * 31 + k * 7) & 0xff)).toString('base64')
}

function spec (i: number, big: boolean): Record<string, unknown> {
  return { id: strangerVm(i), name: `fuzz-${i}`, cpu: big ? 1024 : 1, memMiB: big ? 16 * 1024 * 1024 : 64, image: 'fuzz', labels: { fuzz: 'yes' }, restartPolicy: 'always', createdAtMs: 1_700_000_000_000 }
}

function chain (i: number, owner: string): unknown[] {
  return [
    { kind: 'create', vmId: strangerVm(i), epoch: 0, owner, sig: forgedSig(i) },
    { kind: 'migrate', vmId: strangerVm(i), epoch: 1, owner: strangerPeer(i + 1), prev: { epoch: 0, owner }, sig: forgedSig(i + 1) }
  ]
}

function designation (i: number, owner: string, replicas: string[]): Record<string, unknown> {
  return { vmId: strangerVm(i), epoch: 1, owner, replicas, issuedAtMs: 1_700_000_000_000, sig: forgedSig(i + 2) }
}

const v = PROTOCOL_VERSION

function fits (res: { cpu: number, memMiB: number }, f: TargetFacts): boolean {
  return res.cpu <= Math.floor(f.capacity.cpu * f.cpuOvercommit) && res.memMiB <= f.capacity.memMiB
}

/** No VM id or peer id of the cluster anywhere in the message (the rogue's own id aside). */
function namesNothingKnown (msg: unknown, f: TargetFacts): boolean {
  const text = JSON.stringify(msg)
  for (const id of f.knownVms) if (text.includes(id)) return false
  for (const id of f.knownPeers) if (id !== f.rogueId && text.includes(id)) return false
  return true
}

export function placeCorpus (f: TargetFacts): StreamCorpus {
  const me = f.rogueId
  return {
    schema: placeRequestSchema,
    bases: [
      { v, op: 'reserve', leaseId: randomUUID(), resources: { cpu: 1024, memMiB: 16 * 1024 * 1024 }, constraints: { labels: { zone: 'a' }, spread: 'web' }, ttlMs: 1000 },
      { v, op: 'commit', leaseId: randomUUID(), vm: spec(1, false) },
      { v, op: 'commit', leaseId: randomUUID(), vm: spec(2, false), chain: chain(2, me) },
      { v, op: 'release', leaseId: randomUUID() },
      { v, op: 'delete', vmId: strangerVm(3) }
    ],
    harmless: (m, facts) => namesNothingKnown(m, facts) && (m.op !== 'reserve' || !fits(m.resources, facts))
  }
}

export function migrateCorpus (f: TargetFacts): StreamCorpus {
  const me = f.rogueId
  return {
    schema: migrateRequestSchema,
    bases: [
      { v, op: 'propose', migrationId: randomUUID(), vm: spec(4, true), epoch: 0, demand: 0.5, partitionId: 'fuzz-partition', ttlMs: 5000 },
      { v, op: 'commit', migrationId: randomUUID(), vm: spec(5, false), epoch: 1, chain: chain(5, me) },
      { v, op: 'abort', migrationId: randomUUID() },
      { v, op: 'request', vmId: strangerVm(6), to: strangerPeer(6) }
    ],
    harmless: (m, facts) => namesNothingKnown(m, facts) && (m.op !== 'propose' || !fits(m.vm, facts))
  }
}

export function rebalanceCorpus (f: TargetFacts): StreamCorpus {
  const me = f.rogueId
  const host = { peerId: me, capacity: { cpu: 4, memMiB: 4096 }, cpuOvercommit: 1, vms: [{ id: strangerVm(7), cpu: 2, memMiB: 512, demand: 2, spread: 'web' }], labels: { zone: 'a' } }
  return {
    schema: rebalanceEnvelopeSchema,
    bases: [
      { v, msg: { type: 'event', partitionId: `${me}:1`, initiator: me, problem: { kind: 'overload', peerId: me }, members: [host], turns: 0, blocked: false, hops: 1, startedAtMs: 1_700_000_000_000 } },
      { v, msg: { type: 'blocked', partitionId: 'fuzz-partition' } },
      { v, msg: { type: 'order', partitionId: 'fuzz-partition', leader: me, migrations: [{ vmId: strangerVm(8), from: strangerPeer(8), to: me, memMiB: 512 }] } },
      { v, msg: { type: 'report', partitionId: 'fuzz-partition', vmId: strangerVm(9), ok: true, reason: 'done' } },
      { v, msg: { type: 'dissolve', partitionId: 'fuzz-partition', outcome: 'solved' } }
    ],
    // A valid event token is a legitimate request to join a partition: never sent.
    harmless: (m, facts) => namesNothingKnown(m, facts) && m.msg.type !== 'event'
  }
}

export function replicaCorpus (f: TargetFacts): StreamCorpus {
  const me = f.rogueId
  const record = (i: number): unknown => ({ spec: spec(i, false), chain: chain(i, me), designation: designation(i, strangerPeer(i + 1), [me]) })
  const tombstone = (i: number): unknown => ({ vmId: strangerVm(i), epoch: 1, owner: strangerPeer(i + 1), deletedAtMs: 1_700_000_000_000, chain: chain(i, me), sig: forgedSig(i + 3) })
  return {
    schema: replicaRequestSchema,
    bases: [
      { v, op: 'put', records: [record(10), record(11)] },
      { v, op: 'drop', vmIds: [strangerVm(12)] },
      { v, op: 'delete', tombstones: [tombstone(13)] },
      { v, op: 'confirm-dead', peerId: strangerPeer(14) },
      { v, op: 'chain', vmIds: [strangerVm(15), strangerVm(16)] },
      { v, op: 'claim', chains: [{ vmId: strangerVm(17), chain: chain(17, me) }] },
      { v, op: 'held', vmIds: [strangerVm(18)] },
      { v, op: 'handoff', records: [record(19)] },
      { v, op: 'tombstones', vmIds: [strangerVm(20)] },
      { v, op: 'heads', heads: [{ vmId: strangerVm(21), epoch: 1, owner: me }] }
    ],
    // Every signature is forged: a valid-shaped record or proof must be refused on it.
    harmless: namesNothingKnown
  }
}

export function swimCorpus (f: TargetFacts): StreamCorpus {
  const me = f.rogueId
  const updates = [
    { peer: strangerPeer(20), run: 1, inc: 0, status: 'alive' },
    { peer: strangerPeer(21), run: 1, inc: 3, status: 'suspect', accusers: [me] },
    { peer: strangerPeer(22), run: 2, inc: 0, status: 'dead', accusers: [me, strangerPeer(23), strangerPeer(24)] }
  ]
  const common = { v, run: 1_700_000_000_000, inc: 0, updates }
  return {
    schema: swimMessageSchema,
    bases: [
      { type: 'ping', seq: 1, ...common },
      { type: 'ack', seq: 2, of: strangerPeer(25), ...common },
      { type: 'ping-req', seq: 3, target: strangerPeer(26), ...common },
      { type: 'nack', seq: 4, unreachable: true, ...common },
      { type: 'gossip', ...common },
      { type: 'sync', ...common }
    ],
    // Updates about the cluster's members are what the detector exists to act on: only strangers are named.
    harmless: namesNothingKnown
  }
}

/** Gossip bases: states that name another peer than the rogue that signs them, a delta from nowhere, and the real states heard. */
export function gossipBases (f: TargetFacts): unknown[] {
  const me = f.rogueId
  const state = (peerId: string): Record<string, unknown> => ({
    v, peerId, incarnation: 1_700_000_000_000, seq: 5, addrs: ['/ip4/127.0.0.1/tcp/1'], api: 'http://127.0.0.1:1', capacity: { cpu: 64, memMiB: 65536 }, cpuOvercommit: 1,
    used: { cpu: 1, memMiB: 64 }, reserved: { cpu: 0, memMiB: 0 }, labels: { zone: 'a' }, demand: 0.5, idle: false,
    vms: [{ id: strangerVm(30), name: 'fuzz-30', cpu: 1, memMiB: 64, state: 'running', epoch: 0, spread: 'web' }]
  })
  return [
    state(f.targetId),
    state(strangerPeer(31)),
    { ...state(me), v: 2 },
    { ...state(me), delta: { base: 9, removed: [strangerVm(32)], count: 1 } },
    { ...state(me), vms: [], delta: { base: 4, removed: [], count: 0 } },
    ...f.heardStates
  ]
}
