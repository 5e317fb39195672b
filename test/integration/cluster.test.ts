/**
 * A real local cluster: five agent processes started through the CLI, talking
 * libp2p over TCP on loopback. VMs placed through every API, views that
 * converge, deletes that free capacity, a SIGKILLed agent seen as dead, and
 * hostile input from the API and from a peer that changes nothing.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { lpStream } from 'it-length-prefixed-stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createHost, PLACE_PROTOCOL, STATE_TOPIC } from '../../src/net/index.ts'
import { ApiClient, metricValue, readCluster, runCli, tempDir, waitFor } from './helpers.ts'

const N = 5
const dir = tempDir('cluster')
let apis: ApiClient[] = []

interface Node { peerId: string, capacity: { cpu: number, memMiB: number }, used: { cpu: number, memMiB: number }, reserved: { cpu: number, memMiB: number }, state: string, vmCount: number }

async function allNodes (): Promise<Node[][]> {
  return await Promise.all(apis.map(async a => await a.call<Node[]>('GET', '/v1/nodes')))
}

function overCommitted (views: Node[][]): string[] {
  const bad: string[] = []
  for (const view of views) {
    for (const n of view) {
      if (n.used.cpu + n.reserved.cpu > n.capacity.cpu || n.used.memMiB + n.reserved.memMiB > n.capacity.memMiB) bad.push(`${n.peerId}: ${JSON.stringify(n)}`)
    }
  }
  return bad
}

beforeAll(async () => {
  const up = await runCli(['cluster', 'up', '--nodes', String(N), '--dir', dir, '--base-port', '0', '--cpu', '40', '--mem', '32GiB', '--json'])
  expect(up.code, up.stderr).toBe(0)
  const file = JSON.parse(up.stdout)
  expect(file.nodes).toHaveLength(N)
  apis = file.nodes.map((m: { api: string }) => new ApiClient(m.api))
})

afterAll(async () => {
  const down = await runCli(['cluster', 'down', '--dir', dir, '--purge'])
  expect(down.code).toBe(0)
})

describe('a five-agent cluster started with `discovery cluster up`', () => {
  const created: Array<{ id: string, node: string, via: number, cpu: number, memMiB: number }> = []

  it('sees every agent alive from every agent', async () => {
    const views = await allNodes()
    for (const view of views) {
      expect(view).toHaveLength(N)
      expect(view.every(n => n.state === 'alive')).toBe(true)
    }
  })

  it('places 60 VMs created round-robin through all five APIs, never over capacity', async () => {
    const healths = await Promise.all(apis.map(async a => await a.call('GET', '/v1/health')))
    let watching = true
    const violations: string[] = []
    const watcher = (async () => {
      while (watching) {
        violations.push(...overCommitted(await allNodes()))
        await new Promise(r => setTimeout(r, 50))
      }
    })()
    // Sizes from 1 to 4 vCPU and 1 to 3 GiB: 150 vCPU and 120 GiB in all, far more than any one node's 40 vCPU / 32 GiB.
    const requests = Array.from({ length: 60 }, (_, i) => ({ via: i % N, cpu: 1 + (i % 4), memMiB: 1024 * (1 + (i % 3)) }))
    try {
      await Promise.all(requests.map(async (r, i) => {
        const res = await apis[r.via].request('POST', '/v1/vms', { name: `web-${i}`, cpu: r.cpu, memMiB: r.memMiB })
        expect(res.status, JSON.stringify(res.body)).toBe(201)
        created.push({ id: res.body.id, node: res.body.node, via: r.via, cpu: r.cpu, memMiB: r.memMiB })
      }))
    } finally {
      watching = false
      await watcher
    }
    expect(violations).toEqual([])
    expect(new Set(created.map(c => c.id)).size).toBe(60)
    // Cross-node placement: some VMs landed on another node than the agent that took the request.
    expect(created.filter(c => c.node !== healths[c.via].peerId).length).toBeGreaterThan(0)
    expect(new Set(created.map(c => c.node)).size).toBe(N)
    const perNode = new Map<string, number>()
    for (const c of created) perNode.set(c.node, (perNode.get(c.node) ?? 0) + c.cpu)
    for (const cpu of perNode.values()) expect(cpu).toBeLessThanOrEqual(40)
  })

  it('converges: every agent sees the same 60 VMs and the same node capacities', async () => {
    const want = created.map(c => c.id).sort()
    await waitFor('every scope=cluster view to hold the 60 VMs', async () => {
      const lists = await Promise.all(apis.map(async a => await a.call<Array<{ id: string, node: string }>>('GET', '/v1/vms?scope=cluster')))
      return lists.every(l => JSON.stringify(l.map(v => v.id).sort()) === JSON.stringify(want)) ? true : undefined
    }, 30_000)
    const usedByNode = new Map<string, number>()
    for (const c of created) usedByNode.set(c.node, (usedByNode.get(c.node) ?? 0) + c.cpu)
    await waitFor('every agent to agree on every node\'s capacity and use', async () => {
      const views = await allNodes()
      const ok = views.every(view => view.length === N && view.every(n => n.capacity.cpu === 40 && n.capacity.memMiB === 32768 && n.used.cpu === (usedByNode.get(n.peerId) ?? 0)))
      return ok ? true : undefined
    }, 30_000)
    const lists = await Promise.all(apis.map(async a => await a.call<Array<{ id: string, node: string }>>('GET', '/v1/vms?scope=cluster')))
    for (const list of lists) {
      for (const vm of list) expect(vm.node).toBe(created.find(c => c.id === vm.id)?.node)
    }
  })

  it('answers GET /v1/vms/:id?wait= once the VM reaches the agent\'s view, or 404 at the deadline', async () => {
    const res = await apis[0].request('POST', '/v1/vms', { name: 'waited-for', cpu: 1, memMiB: 256 })
    expect(res.status, JSON.stringify(res.body)).toBe(201)
    // Asked at once of every agent: those the gossip has not reached yet hold the request until it does.
    const seen = await Promise.all(apis.map(async a => await a.request('GET', `/v1/vms/${res.body.id}?wait=20s`)))
    for (const s of seen) {
      expect(s.status, JSON.stringify(s.body)).toBe(200)
      expect(s.body.node).toBe(res.body.node)
    }
    const t0 = Date.now()
    const missing = await apis[2].request('GET', '/v1/vms/vm-neverplaced?wait=300ms')
    expect(missing.status).toBe(404)
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290)
    for (const bad of ['forever', '61s', '-1s']) {
      const r = await apis[2].request('GET', `/v1/vms/${res.body.id}?wait=${bad}`)
      expect(r.status, bad).toBe(400)
      expect(r.body.message).toMatch(/wait: expected a duration/)
    }
    expect((await apis[0].request('DELETE', `/v1/vms/${res.body.id}`)).status).toBe(200)
  })

  it('deletes VMs through any agent and frees their capacity in every view', async () => {
    const victims = created.slice(0, 12)
    await Promise.all(victims.map(async (v, i) => {
      const res = await apis[(v.via + 1 + i) % N].request('DELETE', `/v1/vms/${v.id}`)
      expect(res.status, JSON.stringify(res.body)).toBe(200)
    }))
    const gone = new Set(victims.map(v => v.id))
    const usedByNode = new Map<string, number>()
    for (const c of created) if (!gone.has(c.id)) usedByNode.set(c.node, (usedByNode.get(c.node) ?? 0) + c.cpu)
    await waitFor('every view to show the freed capacity', async () => {
      const views = await allNodes()
      return views.every(view => view.every(n => n.used.cpu === (usedByNode.get(n.peerId) ?? 0))) ? true : undefined
    }, 30_000)
    const lists = await Promise.all(apis.map(async a => await a.call<Array<{ id: string }>>('GET', '/v1/vms?scope=cluster')))
    for (const list of lists) {
      expect(list).toHaveLength(48)
      expect(list.some(v => gone.has(v.id))).toBe(false)
    }
    const again = await apis[0].request('DELETE', `/v1/vms/${victims[0].id}`)
    expect(again.status).toBe(404)
    expect(again.body.error).toBe('not_found')
  })

  it('answers bad API bodies with a clear error, counts them, and changes nothing', async () => {
    const before = await apis[1].call<unknown[]>('GET', '/v1/vms?scope=cluster')
    const cases: Array<[unknown, number, RegExp]> = [
      [{ cpu: 0, memMiB: 512 }, 400, /cpu/],
      [{ cpu: 1 }, 400, /memMiB/],
      [{ cpu: '2', memMiB: 512 }, 400, /cpu/],
      [{ cpu: 1, memMiB: 512, extra: true }, 400, /extra|unrecognized/i],
      [{ cpu: 1, memMiB: 512, labels: { 'bad key!': 'x' } }, 400, /label/],
      [{ cpu: 100_000, memMiB: 512 }, 400, /cpu/]
    ]
    for (const [body, status, message] of cases) {
      const res = await apis[1].request('POST', '/v1/vms', body)
      expect(res.status).toBe(status)
      expect(res.body.error).toBe('bad_request')
      expect(res.body.message).toMatch(message)
    }
    const raw = await fetch(`${apis[1].url}/v1/vms`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"cpu": 1, "memMiB": ' })
    expect(raw.status).toBe(400)
    expect((await raw.json()).error).toBe('bad_request')
    const huge = await fetch(`${apis[1].url}/v1/vms`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ cpu: 1, memMiB: 1, name: 'x'.repeat(200_000) }) })
    expect(huge.status).toBe(413)
    expect((await huge.json()).error).toBe('payload_too_large')
    const noRoom = await apis[1].request('POST', '/v1/vms', { cpu: 64, memMiB: 512 })
    expect(noRoom.status).toBe(503)
    expect(noRoom.body.message).toMatch(/no node can host 64 vCPU/)
    const missing = await apis[1].request('GET', '/v1/vms/vm-doesnotexist')
    expect(missing.status).toBe(404)
    const metrics = await (await fetch(`${apis[1].url}/metrics`)).text()
    expect(metricValue(metrics, 'discovery_invalid_messages_total', { source: 'api' })).toBeGreaterThanOrEqual(cases.length + 2)
    expect((await apis[1].call('GET', '/v1/health')).status).toBe('ok')
    expect(await apis[1].call<unknown[]>('GET', '/v1/vms?scope=cluster')).toHaveLength(before.length)
  })

  it('drops garbage gossip and garbage stream messages from a peer, crashes nothing, changes no state', async () => {
    const file = readCluster(dir)
    const target = apis[0]
    const health = await target.call('GET', '/v1/health')
    const other = await apis[2].call('GET', '/v1/health')
    const rogue = await createHost({ privateKey: await generateKeyPair('Ed25519') as any, listen: '/ip4/127.0.0.1/tcp/0' })
    try {
      const pubsub = (rogue as any).services.pubsub
      pubsub.subscribe(STATE_TOPIC)
      await rogue.dial(multiaddr(`${file.nodes[0].listen}/p2p/${health.peerId}`))
      await waitFor('the agent to subscribe the rogue peer to the state topic', () => pubsub.getSubscribers(STATE_TOPIC).some((p: any) => p.toString() === health.peerId) ? true : undefined)
      const before = await target.call<Node[]>('GET', '/v1/nodes')
      const enc = new TextEncoder()
      const forged = { v: 1, peerId: other.peerId, incarnation: Date.now() * 2, seq: 1, addrs: [], capacity: { cpu: 9999, memMiB: 9999 }, cpuOvercommit: 1, used: { cpu: 0, memMiB: 0 }, reserved: { cpu: 0, memMiB: 0 }, labels: {}, vms: [] }
      const garbage = [enc.encode('not json at all'), enc.encode(JSON.stringify({ v: 2, hello: 'world' })), enc.encode(JSON.stringify(forged)), new Uint8Array([0xff, 0xfe, 0x00])]
      const metricsBefore = metricValue(await (await fetch(`${target.url}/metrics`)).text(), 'discovery_invalid_messages_total', { source: 'gossip' })
      for (const g of garbage) await pubsub.publish(STATE_TOPIC, g)
      await waitFor('the agent to count the garbage gossip', async () => {
        const n = metricValue(await (await fetch(`${target.url}/metrics`)).text(), 'discovery_invalid_messages_total', { source: 'gossip' })
        return n >= metricsBefore + garbage.length ? n : undefined
      }, 15_000)

      const stream = await rogue.dialProtocol(multiaddr(`${file.nodes[0].listen}/p2p/${health.peerId}`), PLACE_PROTOCOL)
      const lp = lpStream(stream)
      await lp.write(enc.encode(JSON.stringify({ v: 1, op: 'reserve', leaseId: 'nope', resources: { cpu: -5, memMiB: 1 }, ttlMs: 1000 })))
      const answer = JSON.parse(new TextDecoder().decode((await lp.read()).subarray()))
      expect(answer.ok).toBe(false)
      expect(answer.reason).toMatch(/invalid request/)
      const metrics = await (await fetch(`${target.url}/metrics`)).text()
      expect(metricValue(metrics, 'discovery_invalid_messages_total', { source: 'place' })).toBeGreaterThanOrEqual(1)

      expect((await target.call('GET', '/v1/health')).status).toBe('ok')
      const after = await target.call<Node[]>('GET', '/v1/nodes')
      const forgedView = after.find(n => n.peerId === other.peerId)
      expect(forgedView?.capacity).toEqual(before.find(n => n.peerId === other.peerId)?.capacity)
      expect(after.some(n => n.capacity.cpu === 9999)).toBe(false)
    } finally {
      await rogue.stop()
    }
  })

  it('sees an agent killed with SIGKILL as dead from every other agent', async () => {
    const file = readCluster(dir)
    const victim = file.nodes[N - 1]
    const victimId = (await apis[N - 1].call('GET', '/v1/health')).peerId
    process.kill(victim.pid, 'SIGKILL')
    await waitFor('every other agent to see the killed agent as dead', async () => {
      const views = await Promise.all(apis.slice(0, N - 1).map(async a => await a.call<Node[]>('GET', '/v1/nodes')))
      return views.every(v => v.find(n => n.peerId === victimId)?.state === 'dead') ? true : undefined
    }, 30_000)
    const status = await runCli(['cluster', 'status', '--dir', dir, '--json'])
    expect(status.code).toBe(1)
    const rows = JSON.parse(status.stdout)
    expect(rows.filter((r: { up: boolean }) => !r.up)).toHaveLength(1)
  })
})
