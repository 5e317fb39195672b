import { describe, expect, it } from 'vitest'
import type { ZodType } from 'zod'
import { createVmSchema, describeIssues, LIMITS, nodeStateSchema, placeRequestSchema, PROTOCOL_VERSION } from '../../src/core/messages.ts'
import { makeNode, makeVm, peerId } from './fixtures.ts'

const manyLabels = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, 'v']))
const LEASE = '3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f'

/** Parses and returns the one-line error, or fails the test if the value was accepted. */
function issuesOf (schema: ZodType, value: unknown): string {
  const res = schema.safeParse(value)
  expect(res.success, `accepted ${JSON.stringify(value)}`).toBe(false)
  if (res.success) return ''
  return describeIssues(res.error)
}

describe('createVmSchema', () => {
  it.each<{ name: string, body: unknown }>([
    { name: 'the minimum', body: { cpu: 1, memMiB: 1 } },
    { name: 'the limits', body: { cpu: LIMITS.maxCpu, memMiB: LIMITS.maxMemMiB } },
    { name: 'a name and an image', body: { name: 'web-1.prod_a', cpu: 2, memMiB: 2048, image: 'debian-12' } },
    { name: 'labels', body: { cpu: 2, memMiB: 2048, labels: { app: 'web', 'example.com/tier': 'front-end', empty: '' } } },
    { name: 'as many labels as allowed', body: { cpu: 2, memMiB: 2048, labels: manyLabels(LIMITS.maxLabels) } },
    { name: 'the longest label key and value', body: { cpu: 1, memMiB: 1, labels: { ['k'.repeat(63)]: 'v'.repeat(63) } } },
    { name: 'constraints', body: { cpu: 2, memMiB: 2048, constraints: { labels: { gpu: 'yes' }, zone: 'paris-1', spread: 'web' } } }
  ])('accepts $name', ({ body }) => {
    const res = createVmSchema.safeParse(body)
    expect(res.success).toBe(true)
    expect(res.data).toEqual(body)
  })

  it.each<{ name: string, body: unknown, path: string }>([
    { name: 'missing cpu', body: { memMiB: 1024 }, path: 'cpu' },
    { name: 'missing memMiB', body: { cpu: 1 }, path: 'memMiB' },
    { name: 'cpu 0', body: { cpu: 0, memMiB: 1024 }, path: 'cpu' },
    { name: 'negative cpu', body: { cpu: -2, memMiB: 1024 }, path: 'cpu' },
    { name: 'non-integer cpu', body: { cpu: 1.5, memMiB: 1024 }, path: 'cpu' },
    { name: 'string cpu', body: { cpu: '2', memMiB: 1024 }, path: 'cpu' },
    { name: 'NaN cpu', body: { cpu: Number.NaN, memMiB: 1024 }, path: 'cpu' },
    { name: 'cpu above the limit', body: { cpu: LIMITS.maxCpu + 1, memMiB: 1024 }, path: 'cpu' },
    { name: 'memMiB above the limit', body: { cpu: 1, memMiB: LIMITS.maxMemMiB + 1 }, path: 'memMiB' },
    { name: 'memMiB 0', body: { cpu: 1, memMiB: 0 }, path: 'memMiB' },
    { name: 'an unknown field', body: { cpu: 1, memMiB: 1024, disk: 10 }, path: '(body)' },
    { name: 'an unknown constraint', body: { cpu: 1, memMiB: 1024, constraints: { region: 'eu' } }, path: 'constraints' },
    { name: 'too many labels', body: { cpu: 1, memMiB: 1024, labels: manyLabels(LIMITS.maxLabels + 1) }, path: 'labels' },
    { name: 'a label value too long', body: { cpu: 1, memMiB: 1024, labels: { app: 'v'.repeat(64) } }, path: 'labels.app' },
    { name: 'a label key too long', body: { cpu: 1, memMiB: 1024, labels: { ['k'.repeat(64)]: 'v' } }, path: `labels.${'k'.repeat(64)}` },
    { name: 'a label key with a space', body: { cpu: 1, memMiB: 1024, labels: { 'bad key': 'v' } }, path: 'labels.bad key' },
    { name: 'a label key starting with a dot', body: { cpu: 1, memMiB: 1024, labels: { '.hidden': 'v' } }, path: 'labels..hidden' },
    { name: 'an empty label key', body: { cpu: 1, memMiB: 1024, labels: { '': 'v' } }, path: 'labels.' },
    { name: 'a label value with a slash', body: { cpu: 1, memMiB: 1024, labels: { app: 'a/b' } }, path: 'labels.app' },
    { name: 'a constraint label key that is bad', body: { cpu: 1, memMiB: 1024, constraints: { labels: { 'a b': 'v' } } }, path: 'constraints.labels.a b' },
    { name: 'a name starting with a dash', body: { name: '-web', cpu: 1, memMiB: 1024 }, path: 'name' },
    { name: 'an empty image', body: { cpu: 1, memMiB: 1024, image: '' }, path: 'image' },
    { name: 'a zone with a space', body: { cpu: 1, memMiB: 1024, constraints: { zone: 'paris 1' } }, path: 'constraints.zone' },
    { name: 'not an object', body: 'cpu=1', path: '(body)' },
    { name: 'null', body: null, path: '(body)' }
  ])('rejects $name, naming `$path`', ({ body, path }) => {
    const text = issuesOf(createVmSchema, body)
    expect(text.startsWith(`${path}: `), text).toBe(true)
  })
})

describe('nodeStateSchema', () => {
  const good = makeNode({ tag: 'A', labels: { zone: 'z1' }, vms: [makeVm({ spread: 'web' })] })

  it('accepts a well-formed state', () => {
    expect(nodeStateSchema.parse(good)).toEqual(good)
    expect(good.v).toBe(PROTOCOL_VERSION)
  })

  it.each<{ name: string, patch: Record<string, unknown>, path: string }>([
    { name: 'a newer protocol version', patch: { v: 2 }, path: 'v' },
    { name: 'version 0', patch: { v: 0 }, path: 'v' },
    { name: 'the version as a string', patch: { v: '1' }, path: 'v' },
    { name: 'no version', patch: { v: undefined }, path: 'v' },
    { name: 'a peer id with a 0 (not base58)', patch: { peerId: '12D3KooW0000' }, path: 'peerId' },
    { name: 'a peer id with an l (not base58)', patch: { peerId: '12D3KooWlllll' }, path: 'peerId' },
    { name: 'a peer id too short', patch: { peerId: '12D3Koo' }, path: 'peerId' },
    { name: 'a peer id too long', patch: { peerId: peerId('z'.repeat(130)) }, path: 'peerId' },
    { name: 'a negative seq', patch: { seq: -1 }, path: 'seq' },
    { name: 'a CPU over-commit below 1', patch: { cpuOvercommit: 0.5 }, path: 'cpuOvercommit' },
    { name: 'negative used memory', patch: { used: { cpu: 0, memMiB: -1 } }, path: 'used.memMiB' },
    { name: 'too many addresses', patch: { addrs: Array.from({ length: LIMITS.maxAddrs + 1 }, () => '/ip4/127.0.0.1/tcp/1') }, path: 'addrs' },
    { name: 'a VM with a bad id', patch: { vms: [{ ...makeVm(), id: 'VM-1' }] }, path: 'vms.0.id' },
    { name: 'a VM in an unknown state', patch: { vms: [makeVm(), { ...makeVm(), state: 'paused' }] }, path: 'vms.1.state' },
    { name: 'an unknown field', patch: { extra: true }, path: '(body)' }
  ])('rejects $name, naming `$path`', ({ patch, path }) => {
    const text = issuesOf(nodeStateSchema, { ...good, ...patch })
    expect(text.startsWith(`${path}: `), text).toBe(true)
  })
})

describe('placeRequestSchema', () => {
  const vm = { id: 'vm-abc123', name: 'web', cpu: 1, memMiB: 512, createdAtMs: 0 }

  it.each<{ op: string, body: Record<string, unknown> }>([
    { op: 'reserve', body: { v: 1, op: 'reserve', leaseId: LEASE, resources: { cpu: 1, memMiB: 512 }, ttlMs: 5000 } },
    { op: 'reserve', body: { v: 1, op: 'reserve', leaseId: LEASE, resources: { cpu: 1, memMiB: 512 }, ttlMs: 100, constraints: { spread: 'web' } } },
    { op: 'commit', body: { v: 1, op: 'commit', leaseId: LEASE, vm } },
    { op: 'release', body: { v: 1, op: 'release', leaseId: LEASE } }
  ])('accepts a $op request and keeps its op', ({ op, body }) => {
    const res = placeRequestSchema.safeParse(body)
    expect(res.success).toBe(true)
    expect(res.data?.op).toBe(op)
    expect(res.data).toEqual(body)
  })

  it.each<{ name: string, body: unknown, path: string }>([
    { name: 'an unknown op', body: { v: 1, op: 'migrate', leaseId: LEASE }, path: 'op' },
    { name: 'no op', body: { v: 1, leaseId: LEASE }, path: 'op' },
    { name: 'a wrong version', body: { v: 2, op: 'release', leaseId: LEASE }, path: 'v' },
    { name: 'a lease id that is not a UUID', body: { v: 1, op: 'release', leaseId: 'lease-1' }, path: 'leaseId' },
    { name: 'reserve without resources', body: { v: 1, op: 'reserve', leaseId: LEASE, ttlMs: 5000 }, path: 'resources' },
    { name: 'reserve with a TTL too short', body: { v: 1, op: 'reserve', leaseId: LEASE, resources: { cpu: 1, memMiB: 1 }, ttlMs: 99 }, path: 'ttlMs' },
    { name: 'reserve with a TTL too long', body: { v: 1, op: 'reserve', leaseId: LEASE, resources: { cpu: 1, memMiB: 1 }, ttlMs: 120_001 }, path: 'ttlMs' },
    // The op picks the branch: fields of another branch are unknown keys, not a match elsewhere.
    { name: 'release carrying resources', body: { v: 1, op: 'release', leaseId: LEASE, resources: { cpu: 1, memMiB: 1 } }, path: '(body)' },
    { name: 'commit carrying a TTL instead of a VM', body: { v: 1, op: 'commit', leaseId: LEASE, ttlMs: 5000 }, path: 'vm' },
    { name: 'commit with a bad VM', body: { v: 1, op: 'commit', leaseId: LEASE, vm: { ...vm, cpu: 0 } }, path: 'vm.cpu' }
  ])('rejects $name, naming `$path`', ({ body, path }) => {
    const text = issuesOf(placeRequestSchema, body)
    expect(text.startsWith(`${path}: `), text).toBe(true)
  })
})

describe('describeIssues', () => {
  it('names the nested field path and says what was expected', () => {
    const res = createVmSchema.safeParse({ cpu: 1, memMiB: 1, constraints: { zone: 'bad zone' } })
    expect(res.success).toBe(false)
    if (res.success) return
    expect(describeIssues(res.error)).toBe('constraints.zone: a group name: letters, digits, . _ -')
  })

  it('uses (body) for an issue at the root', () => {
    const res = createVmSchema.safeParse({ cpu: 1, memMiB: 1, nope: 1 })
    expect(res.success).toBe(false)
    if (res.success) return
    expect(describeIssues(res.error)).toMatch(/^\(body\): .*nope/)
  })

  it('lists at most three issues, joined by "; "', () => {
    const res = createVmSchema.safeParse({ cpu: 0, memMiB: 0, name: '-x', image: '', labels: { a: '/' } })
    expect(res.success).toBe(false)
    if (res.success) return
    expect(res.error.issues.length).toBeGreaterThan(3)
    const parts = describeIssues(res.error).split('; ')
    expect(parts).toHaveLength(3)
    expect(parts.map(p => p.split(': ')[0])).toEqual(res.error.issues.slice(0, 3).map(i => i.path.join('.')))
  })
})
