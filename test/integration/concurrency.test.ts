/**
 * 200 creates fired at once through all five agents at a cluster with room
 * for exactly 150 such VMs: exactly 150 succeed, 50 get 503, and no node is
 * ever over-committed. Only the owner of the capacity reserves it, so
 * concurrent placements through different agents cannot both win one slot.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ApiClient, runCli, tempDir, waitFor } from './helpers.ts'

const N = 5
const dir = tempDir('concurrency')
let apis: ApiClient[] = []

beforeAll(async () => {
  // 30 vCPU / 30 GiB per node; VMs of 1 vCPU / 1 GiB: room for exactly 150.
  const up = await runCli(['cluster', 'up', '--nodes', String(N), '--dir', dir, '--base-port', '0', '--cpu', '30', '--mem', '30GiB', '--json'])
  expect(up.code, up.stderr).toBe(0)
  apis = JSON.parse(up.stdout).nodes.map((m: { api: string }) => new ApiClient(m.api, undefined, 60_000))
})

afterAll(async () => {
  expect((await runCli(['cluster', 'down', '--dir', dir, '--purge'])).code).toBe(0)
})

describe('concurrent creates at a cluster with room for 150', () => {
  it('accepts exactly 150 of 200 simultaneous creates and refuses 50 with 503', async () => {
    const results = await Promise.all(Array.from({ length: 200 }, async (_, i) =>
      await apis[i % N].request('POST', '/v1/vms', { cpu: 1, memMiB: 1024 })))
    const byStatus = new Map<number, number>()
    for (const r of results) byStatus.set(r.status, (byStatus.get(r.status) ?? 0) + 1)
    expect(Object.fromEntries(byStatus)).toEqual({ 201: 150, 503: 50 })
    for (const r of results.filter(r => r.status === 503)) {
      expect(r.body.error).toBe('no_capacity')
      expect(r.body.message).toMatch(/1 vCPU \/ 1024 MiB/)
    }
    const perNode = new Map<string, number>()
    for (const r of results.filter(r => r.status === 201)) perNode.set(r.body.node, (perNode.get(r.body.node) ?? 0) + 1)
    for (const count of perNode.values()) expect(count).toBeLessThanOrEqual(30)
    expect([...perNode.values()].reduce((a, b) => a + b, 0)).toBe(150)
  })

  it('leaves every node exactly full and none over capacity, in every view', async () => {
    await waitFor('every view to show all five nodes full, with no reservation left', async () => {
      const views = await Promise.all(apis.map(async a => await a.call<any[]>('GET', '/v1/nodes')))
      for (const view of views) {
        for (const n of view) {
          expect(n.used.cpu + n.reserved.cpu).toBeLessThanOrEqual(n.capacity.cpu)
          expect(n.used.memMiB + n.reserved.memMiB).toBeLessThanOrEqual(n.capacity.memMiB)
        }
      }
      return views.every(v => v.length === N && v.every(n => n.used.cpu === 30 && n.reserved.cpu === 0 && n.vmCount === 30)) ? true : undefined
    }, 30_000)
    const vms = await apis[2].call<any[]>('GET', '/v1/vms?scope=cluster')
    expect(new Set(vms.map(v => v.id)).size).toBe(150)
  })
})
