/**
 * `GET /v1/events` against one real agent: a create shows on the stream,
 * `Last-Event-ID` resumes without a gap or a repeat, `?types=` filters, a
 * client that goes leaves no listener behind; and `discovery events`
 * follows it, reconnects across a restart of the agent, gives up after its
 * tries, and leaves on Ctrl-C with 0.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { BIN } from '../../src/cli/cluster.ts'
import { SseParser, type StreamEvent } from '../../src/cli/events.ts'
import { type AgentProcess, ApiClient, metricValue, startAgent, tempDir, waitFor } from './helpers.ts'

const TOKEN = 'events-test-token'
const dataDir = tempDir('events')
let agent: AgentProcess
let api: ApiClient

const agentArgs = (apiAddr: string): string[] => ['--data-dir', dataDir, '--api', apiAddr, '--listen', '/ip4/127.0.0.1/tcp/0', '--api-token', TOKEN, '--cpu', '16', '--mem', '32GiB']

beforeAll(async () => {
  agent = await startAgent(agentArgs('127.0.0.1:0'))
  api = new ApiClient(agent.api.url, TOKEN)
})
afterAll(() => { agent?.proc.kill('SIGKILL') })

interface Frame { id?: string, type: string, event: StreamEvent }

/** A stream read in the background: its frames so far, and a way to close it. */
interface Stream { frames: Frame[], close: () => void, ended: Promise<void> }

async function openStream (query = '', headers: Record<string, string> = {}): Promise<Stream> {
  const ac = new AbortController()
  const res = await fetch(`${agent.api.url}/v1/events${query}`, { headers: { authorization: `Bearer ${TOKEN}`, ...headers }, signal: ac.signal })
  expect(res.status).toBe(200)
  expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/)
  const frames: Frame[] = []
  const parser = new SseParser((id, type, data) => { frames.push({ id, type, event: JSON.parse(data) }) })
  const decoder = new TextDecoder()
  const ended = (async () => {
    try {
      for await (const chunk of res.body!) parser.push(decoder.decode(chunk, { stream: true }))
    } catch {}
  })()
  return { frames, close: () => { ac.abort() }, ended }
}

async function createVm (): Promise<string> {
  return (await api.call('POST', '/v1/vms', { cpu: 1, memMiB: 128 })).id
}

/** Open streams and the event log's listeners, as the agent counts them. */
async function counts (): Promise<{ streams: number, listeners: number }> {
  const text = await api.call('GET', '/metrics')
  return { streams: metricValue(text, 'discovery_api_event_streams'), listeners: metricValue(text, 'discovery_event_listeners') }
}

/** Waits until the agent has `n` streams open (the previous tests' closed ones gone). */
async function streamsOpen (n: number): Promise<{ streams: number, listeners: number }> {
  return await waitFor(`${n} open streams`, async () => { const c = await counts(); return c.streams === n ? c : undefined }, 30_000)
}

/** The frames' ids grow by one each, from `first`. */
function expectContiguous (frames: Frame[], first: number): void {
  expect(frames.map(f => Number(f.id))).toEqual(frames.map((_, i) => first + i))
}

describe('GET /v1/events', () => {
  it('streams a create as vm.created then vm.placed, with growing ids, framed as documented', async () => {
    const s = await openStream()
    try {
      const id = await createVm()
      const placed = await waitFor('vm.placed on the stream', () => s.frames.find(f => f.type === 'vm.placed' && f.event.data.id === id))
      const created = s.frames.find(f => f.type === 'vm.created' && f.event.data.id === id)!
      expect(created).toBeDefined()
      expect(Number(placed.id)).toBeGreaterThan(Number(created.id))
      expect(created.event).toMatchObject({ id: Number(created.id), type: 'vm.created', data: { id, cpu: 1, memMiB: 128 } })
      expect(placed.event).toMatchObject({ id: Number(placed.id), type: 'vm.placed', data: { id, node: agent.peerId, cpu: 1, memMiB: 128 } })
      expect(Math.abs(placed.event.atMs - Date.now())).toBeLessThan(60_000)
      expectContiguous(s.frames, Number(s.frames[0].id))
    } finally {
      s.close()
    }
  })

  it('resumes after Last-Event-ID (header or query) with no gap and no repeat', async () => {
    const first = await openStream()
    await createVm()
    await waitFor('two events', () => first.frames.length >= 2 ? true : undefined)
    first.close()
    const lastSeen = Number(first.frames.at(-1)!.id)
    // Missed while away:
    const away = [await createVm(), await createVm()]
    const resumes: Array<{ query: string, headers: Record<string, string> }> = [{ query: '', headers: { 'last-event-id': String(lastSeen) } }, { query: `?lastEventId=${lastSeen}`, headers: {} }]
    for (const resume of resumes) {
      const again = await openStream(resume.query, resume.headers)
      try {
        await waitFor('the missed creates replayed', () => away.every(id => again.frames.some(f => f.type === 'vm.placed' && f.event.data.id === id)) ? true : undefined)
        expect(again.frames.some(f => f.type === 'events.missed')).toBe(false)
        expectContiguous(again.frames, lastSeen + 1)
      } finally {
        again.close()
      }
    }
    // The header wins over the query (EventSource reconnects with the header and the first URL).
    const both = await openStream(`?lastEventId=0`, { 'last-event-id': String(lastSeen) })
    try {
      await waitFor('the replay', () => both.frames.length >= 4 ? true : undefined)
      expect(Number(both.frames[0].id)).toBe(lastSeen + 1)
    } finally {
      both.close()
    }
  })

  it('filters by ?types=, live and in the replay', async () => {
    const s = await openStream('?types=vm.placed&lastEventId=0')
    try {
      const id = await createVm()
      await waitFor('its vm.placed', () => s.frames.find(f => f.event.data.id === id))
      expect(s.frames.length).toBeGreaterThan(3)
      expect(new Set(s.frames.map(f => f.type))).toEqual(new Set(['vm.placed']))
      const ids = s.frames.map(f => Number(f.id))
      expect(ids).toEqual([...ids].sort((a, b) => a - b))
    } finally {
      s.close()
    }
  })

  it('says the agent restarted when the asked id is ahead of its own, then replays its buffer', async () => {
    const s = await openStream('', { 'last-event-id': '999999999' })
    try {
      await waitFor('the replay', () => s.frames.length >= 2 ? true : undefined)
      expect(s.frames[0]).toMatchObject({ id: undefined, type: 'events.missed', event: { type: 'events.missed', data: { missed: 0, restarted: true } } })
      expect(Number(s.frames[1].id)).toBe(1)
    } finally {
      s.close()
    }
  })

  it('drops a client\'s listener when it goes', async () => {
    // Whatever listens inside the agent itself is the baseline.
    const base = (await streamsOpen(0)).listeners
    const streams = await Promise.all([1, 2, 3, 4, 5].map(async () => await openStream('?types=vm.deleted')))
    expect((await streamsOpen(5)).listeners).toBe(base + 5)
    for (const s of streams) s.close()
    await Promise.all(streams.map(async s => await s.ended))
    expect((await streamsOpen(0)).listeners).toBe(base)
  })
})

/** `discovery events ARGS`, its stdout read line by line. */
function spawnEvents (args: string[]): { child: ChildProcess, lines: string[], stderr: () => string, exited: Promise<number | null> } {
  const child = spawn(process.execPath, [BIN, 'events', '--api', agent.api.url, '--api-token', TOKEN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  const lines: string[] = []
  let stderr = ''
  createInterface({ input: child.stdout! }).on('line', (l) => { lines.push(l) })
  child.stderr!.on('data', (d) => { stderr += String(d) })
  const exited = new Promise<number | null>(resolve => child.on('exit', (code) => { resolve(code) }))
  return { child, lines, stderr: () => stderr, exited }
}

describe('discovery events', () => {
  it('prints one JSON object per event with --json, and one line each in text; Ctrl-C exits 0', async () => {
    await streamsOpen(0)
    const json = spawnEvents(['--json', '--types', 'vm.created,vm.placed'])
    const text = spawnEvents([])
    try {
      await streamsOpen(2)
      const id = await createVm()
      await waitFor('two JSON lines', () => json.lines.length >= 2 ? true : undefined)
      const [created, placed] = json.lines.slice(0, 2).map(l => JSON.parse(l))
      expect(created).toMatchObject({ type: 'vm.created', data: { id } })
      expect(placed).toMatchObject({ type: 'vm.placed', data: { id, node: agent.peerId } })
      expect(placed.id).toBeGreaterThan(created.id)
      await waitFor('two text lines', () => text.lines.length >= 2 ? true : undefined)
      expect(text.lines[0]).toMatch(new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z\\s+vm\\.created\\s+id=${id} `))
      expect(text.lines[1]).toMatch(new RegExp(`vm\\.placed\\s+id=${id} node=…${agent.peerId.slice(-10)} cpu=1 memMiB=128`))
      json.child.kill('SIGINT')
      text.child.kill('SIGINT')
      expect(await json.exited).toBe(0)
      expect(await text.exited).toBe(0)
    } finally {
      json.child.kill('SIGKILL')
      text.child.kill('SIGKILL')
    }
  })

  it('exits 2 on an unknown type and 1 when no agent answers', async () => {
    const bad = spawnEvents(['--types', 'vm.exploded'])
    expect(await bad.exited).toBe(2)
    expect(bad.stderr()).toMatch(/^discovery: Expected types to be .*vm\.placed.*`vm\.exploded`/)
    const none = spawn(process.execPath, [BIN, 'events', '--api', 'http://127.0.0.1:9'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let err = ''
    none.stderr.on('data', (d) => { err += String(d) })
    expect(await new Promise(resolve => none.on('exit', resolve))).toBe(1)
    expect(err).toMatch(/cannot reach the agent at http:\/\/127\.0\.0\.1:9/)
  })

  it('reconnects with Last-Event-ID across a restart of the agent, then gives up with 1 once it is gone', async () => {
    const port = new URL(agent.api.url).port
    await streamsOpen(0)
    const follower = spawnEvents(['--json'])
    try {
      await streamsOpen(1)
      const before = await createVm()
      await waitFor('the create before the restart', () => follower.lines.some(l => JSON.parse(l).data.id === before) ? true : undefined)
      agent.proc.kill('SIGTERM')
      await agent.exited
      agent = await startAgent(agentArgs(`127.0.0.1:${port}`))
      api = new ApiClient(agent.api.url, TOKEN)
      const after = await createVm()
      // Its vm.placed itself, not just its first event: vm.created may come first, and the check below is on vm.placed.
      await waitFor('the create after the restart', () => follower.lines.some(l => { const e = JSON.parse(l); return e.type === 'vm.placed' && e.data.id === after }) ? true : undefined, 30_000)
      const events = follower.lines.map(l => JSON.parse(l))
      // The restarted agent's ids start over: the client is told, and the new run's events follow.
      const marker = events.findIndex(e => e.type === 'events.missed')
      expect(marker).toBeGreaterThan(0)
      expect(events[marker].data).toMatchObject({ restarted: true })
      expect(events.slice(marker + 1).some(e => e.type === 'vm.placed' && e.data.id === after)).toBe(true)
      expect(follower.stderr()).toMatch(/reconnect/)

      agent.proc.kill('SIGKILL')
      await agent.exited
      expect(await follower.exited).toBe(1)
      expect(follower.stderr()).toMatch(/lost the event stream of .* could not reconnect in 6 tries/)
    } finally {
      follower.child.kill('SIGKILL')
    }
  })
})
