/**
 * Partitions on demand, with three real agent processes A, B, C (each started
 * with `--admin` and a token file) and the real CLI:
 * - without `--admin` the admin routes do not exist (404), without the token
 *   they are 401, and `--admin` without a token refuses to start;
 * - `discovery admin partition --from A --to B`: A and B keep seeing each
 *   other alive (the failure detector's indirect probes reach the other
 *   through C), C sees both alive all along; A refuses B's attempts to
 *   reconnect and counts them; `admin heal` → all three alive;
 * - A cut off from both B and C: B and C declare A dead, A declares both
 *   dead; healed, all three alive again;
 * - one way (`--one-way`, A refuses what B starts): A's requests reach B (a
 *   create through A onto B gets 201), B's never reach A (a create through B
 *   that only A can host is refused, and A counts the streams it reset); both
 *   keep seeing each other alive, since the connection A opened stays up.
 */
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SseParser } from '../../src/cli/events.ts'
import { ApiClient, type AgentProcess, metricValue, runCli, startAgent, tempDir, waitFor } from './helpers.ts'

const token = randomBytes(16).toString('hex')
const dir = tempDir('admin')
const tokenFile = join(dir, 'api.token')
writeFileSync(tokenFile, token + '\n', { mode: 0o600 })

let a: AgentProcess
let b: AgentProcess
let c: AgentProcess
let plain: AgentProcess | undefined

const args = (role: string, bootstrap?: AgentProcess): string[] => [
  '--admin', '--api-token-file', tokenFile, '--data-dir', join(dir, role), '--api', '127.0.0.1:0',
  '--labels', `role=${role}`, '--cpu', '4', '--mem', '4GiB', '--boot-delay', '50ms',
  ...(bootstrap != null ? ['--bootstrap', bootstrap.addrs[0]] : [])
]

async function views (): Promise<Map<string, Map<string, string>>> {
  const out = new Map<string, Map<string, string>>()
  for (const x of [a, b, c]) {
    const nodes = await x.api.call<any[]>('GET', '/v1/nodes')
    out.set(x.peerId, new Map(nodes.map(n => [n.peerId, n.state])))
  }
  return out
}

async function allAlive (): Promise<true | undefined> {
  const v = await views()
  return [...v.values()].every(m => m.size === 3 && [...m.values()].every(s => s === 'alive')) ? true : undefined
}

/** Every `peer.*` status event of an agent since it started, replayed from its buffer and then followed. */
function follow (agent: AgentProcess): { events: Array<{ type: string, peerId: string, atMs: number }>, close: () => void } {
  const ac = new AbortController()
  const events: Array<{ type: string, peerId: string, atMs: number }> = []
  const parser = new SseParser((_id, type, data) => {
    if (!type.startsWith('peer.')) return
    const e = JSON.parse(data)
    events.push({ type, peerId: e.data.peerId, atMs: e.atMs })
  })
  void (async () => {
    const res = await fetch(`${agent.api.url}/v1/events?types=peer.suspect,peer.dead,peer.alive,peer.partitioned,peer.healed&lastEventId=0`, { headers: { authorization: `Bearer ${token}` }, signal: ac.signal })
    const decoder = new TextDecoder()
    for await (const chunk of res.body!) parser.push(decoder.decode(chunk, { stream: true }))
  })().catch(() => {})
  return { events, close: () => { ac.abort() } }
}

const cli = async (...argv: string[]): Promise<any> => {
  const r = await runCli([...argv, '--json'], 60_000, { DISCOVERY_API_TOKEN: token })
  expect(r.code, r.stderr).toBe(0)
  return JSON.parse(r.stdout)
}

beforeAll(async () => {
  const opts = { token }
  a = await startAgent(args('a'), 30_000, opts)
  ;[b, c] = await Promise.all([startAgent(args('b', a), 30_000, opts), startAgent(args('c', a), 30_000, opts)])
  await waitFor('every agent to see the three alive', allAlive, 60_000)
}, 90_000)

afterAll(() => { for (const x of [a, b, c, plain]) x?.proc.kill('SIGKILL') })

describe('the admin routes\' guard', () => {
  it('are 401 without the token or with a wrong one, on every admin route', async () => {
    for (const t of [undefined, 'x'.repeat(token.length), token.slice(0, -1)]) {
      const anon = new ApiClient(a.api.url, t ?? '')
      for (const [method, path] of [['GET', '/v1/admin/partition'], ['POST', '/v1/admin/partition'], ['POST', '/v1/admin/heal']]) {
        const r = await anon.request(method, path, method === 'POST' ? { peers: [b.peerId] } : undefined)
        expect(r.status, `${method} ${path}`).toBe(401)
        expect(r.body.error).toBe('unauthorized')
      }
    }
    expect((await a.api.call('GET', '/v1/admin/partition')).blocked).toEqual([])
  })

  it('are 404 on an agent without --admin, in the documented error shape', async () => {
    plain = await startAgent(['--api-token-file', tokenFile, '--data-dir', join(dir, 'plain'), '--api', '127.0.0.1:0'], 30_000, { token })
    for (const [method, path] of [['GET', '/v1/admin/partition'], ['POST', '/v1/admin/partition'], ['POST', '/v1/admin/heal']]) {
      const r = await plain.api.request(method, path, method === 'POST' ? { peers: [b.peerId] } : undefined)
      expect(r.status, `${method} ${path}`).toBe(404)
      expect(r.body).toMatchObject({ error: 'not_found', message: expect.stringContaining('no route') })
    }
    plain.proc.kill('SIGKILL')
  })

  it('refuses --admin without a token, saying so (exit 2)', async () => {
    const r = await runCli(['agent', '--admin', '--data-dir', join(dir, 'no-token'), '--api', '127.0.0.1:0'], 30_000, { DISCOVERY_API_TOKEN: '' })
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/--admin needs an API token/)
  })

  it('refuses a bad body with 400 and partitioning an agent from itself', async () => {
    for (const body of [{}, { peers: [] }, { peers: ['not a peer id!'] }, { peers: [b.peerId], direction: 'outbound' }, { peers: [b.peerId], extra: 1 }, { peers: [a.peerId] }]) {
      const r = await a.api.request('POST', '/v1/admin/partition', body)
      expect(r.status, JSON.stringify(body)).toBe(400)
      expect(r.body.error).toBe('bad_request')
    }
    expect((await a.api.call('GET', '/v1/admin/partition')).blocked).toEqual([])
  })
})

describe('a partition both ways, then healed', () => {
  it('leaves A and B alive to each other through C, C seeing both alive; heal leaves all alive', async () => {
    const [fa, fb, fc] = [follow(a), follow(b), follow(c)]
    const since = Date.now()
    try {
      const r = await cli('admin', 'partition', '--from', a.api.url, '--to', b.peerId)
      expect(r.blocked).toEqual([{ peerId: b.peerId, direction: 'both', sinceMs: expect.any(Number) }])
      const saw = (f: typeof fa, type: string, peer: AgentProcess): boolean => f.events.some(e => e.type === type && e.peerId === peer.peerId)
      await waitFor('A to see B partitioned', () => saw(fa, 'peer.partitioned', b) ? true : undefined, 10_000)
      expect(fb.events.some(e => e.type === 'peer.partitioned')).toBe(false)
      // A's probes of B fail at once (the dial is refused) and go through C, which reaches B: B is not accused.
      await new Promise(resolve => setTimeout(resolve, 5_000))
      for (const f of [fa, fb, fc]) expect(f.events.filter(e => (e.type === 'peer.suspect' || e.type === 'peer.dead') && e.atMs >= since)).toEqual([])
      expect(await allAlive()).toBe(true)
      // The redialers try to reconnect the pair (the one with the smaller id keeps a connection warm): A refuses
      // B's connections or its own dials to B, whichever comes, and counts them.
      await waitFor('A to refuse a connection with B', async () => {
        const metrics = await (await fetch(`${a.api.url}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text()
        expect(metricValue(metrics, 'discovery_partitioned_peers', { direction: 'both' })).toBe(1)
        const refused = metricValue(metrics, 'discovery_partition_refused_total', { what: 'inbound-connection' }) + metricValue(metrics, 'discovery_partition_refused_total', { what: 'dial' })
        return refused > 0 ? true : undefined
      }, 20_000)

      const healed = await cli('admin', 'heal', '--from', a.api.url)
      expect(healed).toEqual({ healed: [b.peerId], blocked: [] })
      await waitFor('all three alive in every view after the heal', allAlive, 30_000)
      expect(saw(fa, 'peer.healed', b)).toBe(true)
    } finally {
      for (const f of [fa, fb, fc]) f.close()
    }
  }, 90_000)
})

describe('a one-way partition', () => {
  it('lets A reach B but not B reach A; both still see each other alive, and nobody\'s status moves', async () => {
    const watching = [follow(a), follow(b), follow(c)]
    const since = Date.now()
    const r = await cli('admin', 'partition', '--from', a.api.url, '--to', b.api.url, '--one-way')
    expect(r.blocked).toEqual([{ peerId: b.peerId, direction: 'inbound', sinceMs: expect.any(Number) }])
    // A starts: a create through A that only B can host is placed on B.
    const onB = await a.api.request('POST', '/v1/vms', { cpu: 1, memMiB: 256, constraints: { labels: { role: 'b' } } })
    expect(onB.status, JSON.stringify(onB.body)).toBe(201)
    expect(onB.body.node).toBe(b.peerId)
    // B starts: a create through B that only A can host never reaches A.
    const onA = await b.api.request('POST', '/v1/vms', { cpu: 1, memMiB: 256, constraints: { labels: { role: 'a' } } })
    expect([503, 504], JSON.stringify(onA.body)).toContain(onA.status)
    expect(await a.api.call<any[]>('GET', '/v1/vms')).toEqual([])
    const metrics = await (await fetch(`${a.api.url}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text()
    expect(metricValue(metrics, 'discovery_partition_refused_total', { what: 'stream' })).toBeGreaterThan(0)
    // Neither lost the other: the connection A opened stays up, pinged both ways.
    const v = await views()
    expect(v.get(a.peerId)!.get(b.peerId)).toBe('alive')
    expect(v.get(b.peerId)!.get(a.peerId)).toBe('alive')
    // A one-way fault makes nobody flap: B's probes of A go through C, and A's acks to B too (B's stream to A is reset).
    await new Promise(resolve => setTimeout(resolve, 10_000))
    for (const [i, f] of watching.entries()) {
      expect(f.events.filter(e => (e.type === 'peer.suspect' || e.type === 'peer.dead') && e.atMs >= since).map(e => ({ ...e, observer: ['A', 'B', 'C'][i], peer: e.peerId === a.peerId ? 'A' : e.peerId === b.peerId ? 'B' : 'C', afterMs: e.atMs - since }))).toEqual([])
      f.close()
    }

    await cli('admin', 'heal', '--from', a.api.url, '--to', b.peerId)
    const back = await b.api.request('POST', '/v1/vms', { cpu: 1, memMiB: 256, constraints: { labels: { role: 'a' } } })
    expect(back.status, JSON.stringify(back.body)).toBe(201)
    expect(back.body.node).toBe(a.peerId)
  }, 90_000)
})

describe('an agent cut off from every other', () => {
  it('is declared dead by B and C, and declares them dead; healed, all three are alive again', async () => {
    const [fa, fb, fc] = [follow(a), follow(b), follow(c)]
    try {
      await cli('admin', 'partition', '--from', a.api.url, '--to', b.peerId, c.peerId)
      const saw = (f: typeof fa, type: string, peer: AgentProcess): boolean => f.events.some(e => e.type === type && e.peerId === peer.peerId)
      await waitFor('B and C to declare A dead, and A both of them', () => saw(fb, 'peer.dead', a) && saw(fc, 'peer.dead', a) && saw(fa, 'peer.dead', b) && saw(fa, 'peer.dead', c) ? true : undefined, 30_000)
      // B and C never declared each other dead. A passing suspicion may come from A's own accusations, counted
      // before B and C agree that A is dead: with three agents the quorums are capped by the two observers.
      expect(fb.events.filter(e => e.type === 'peer.dead' && e.peerId === c.peerId)).toEqual([])
      expect(fc.events.filter(e => e.type === 'peer.dead' && e.peerId === b.peerId)).toEqual([])
      await cli('admin', 'heal', '--from', a.api.url)
      await waitFor('all three alive in every view after the heal', allAlive, 30_000)
    } finally {
      for (const f of [fa, fb, fc]) f.close()
    }
  }, 90_000)
})
