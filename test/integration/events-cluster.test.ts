/**
 * `GET /v1/events` across a real cluster of three agent processes: a VM
 * created through one agent and placed on a second shows on the third's
 * stream as `vm.placed` then `vm.running` (learnt from gossip), and a stream
 * resumed with `Last-Event-ID` carries on from the next event, with no gap
 * and no repeat.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SseParser, type StreamEvent } from '../../src/cli/events.ts'
import { type AgentProcess, startAgent, tempDir, waitFor } from './helpers.ts'

let a: AgentProcess
let b: AgentProcess
let c: AgentProcess

const args = (role: string, bootstrap?: AgentProcess): string[] => [
  '--data-dir', tempDir(`events-${role}`), '--api', '127.0.0.1:0', '--listen', '/ip4/127.0.0.1/tcp/0',
  '--labels', `role=${role}`, '--cpu', '8', '--mem', '16GiB', '--boot-delay', '300ms',
  ...(bootstrap != null ? ['--bootstrap', bootstrap.addrs[0]] : [])
]

beforeAll(async () => {
  a = await startAgent(args('a'))
  ;[b, c] = await Promise.all([startAgent(args('b', a)), startAgent(args('c', a))])
  await waitFor('every agent to see the three', async () => {
    const views = await Promise.all([a, b, c].map(async x => await x.api.call<any[]>('GET', '/v1/nodes')))
    return views.every(v => v.filter(n => n.state === 'alive').length === 3) ? true : undefined
  }, 60_000)
})
afterAll(() => { for (const x of [a, b, c]) x?.proc.kill('SIGKILL') })

interface Frame { id: number, type: string, event: StreamEvent }

async function open (agent: AgentProcess, headers: Record<string, string> = {}): Promise<{ frames: Frame[], close: () => void }> {
  const ac = new AbortController()
  const res = await fetch(`${agent.api.url}/v1/events`, { headers, signal: ac.signal })
  expect(res.status).toBe(200)
  const frames: Frame[] = []
  const parser = new SseParser((id, type, data) => { if (id != null) frames.push({ id: Number(id), type, event: JSON.parse(data) }) })
  const decoder = new TextDecoder()
  void (async () => {
    try {
      for await (const chunk of res.body!) parser.push(decoder.decode(chunk, { stream: true }))
    } catch {}
  })()
  return { frames, close: () => { ac.abort() } }
}

async function createOnB (): Promise<string> {
  const vm = await a.api.call('POST', '/v1/vms', { cpu: 1, memMiB: 256, constraints: { labels: { role: 'b' } } })
  expect(vm.node).toBe(b.peerId)
  return vm.id
}

describe('GET /v1/events in a cluster', () => {
  it('shows on a third agent\'s stream a VM created through one agent and placed on another: vm.placed, then vm.running', async () => {
    const s = await open(c)
    try {
      const id = await createOnB()
      const running = await waitFor('vm.running on the third agent\'s stream', () => s.frames.find(f => f.type === 'vm.running' && f.event.data.id === id), 30_000)
      const placed = s.frames.find(f => f.type === 'vm.placed' && f.event.data.id === id)
      expect(placed?.event.data).toMatchObject({ id, node: b.peerId, cpu: 1, memMiB: 256 })
      expect(running.event.data).toEqual({ id, node: b.peerId })
      expect(placed!.id).toBeLessThan(running.id)
      // Each once: learnt from gossip, whatever the number of state messages that listed it.
      expect(s.frames.filter(f => f.event.data.id === id).map(f => f.type)).toEqual(['vm.placed', 'vm.running'])
    } finally {
      s.close()
    }
  })

  it('resumes from Last-Event-ID with the next event: no gap, no repeat', async () => {
    const first = await open(c)
    const one = await createOnB()
    const seen = await waitFor('the first VM running', () => first.frames.find(f => f.type === 'vm.running' && f.event.data.id === one), 30_000)
    first.close()
    const lastId = first.frames[first.frames.length - 1].id
    expect(lastId).toBeGreaterThanOrEqual(seen.id)
    // While nobody follows the stream, more happens.
    const two = await createOnB()
    await waitFor('the second VM in the third agent\'s view', async () => (await c.api.request('GET', `/v1/vms/${two}`)).body?.state === 'running' ? true : undefined, 30_000)
    const resumed = await open(c, { 'last-event-id': String(lastId) })
    try {
      await waitFor('the second VM on the resumed stream', () => resumed.frames.find(f => f.type === 'vm.running' && f.event.data.id === two), 30_000)
      const ids = resumed.frames.map(f => f.id)
      expect(ids[0]).toBe(lastId + 1)
      expect(ids).toEqual(ids.map((_, i) => lastId + 1 + i))
      expect(resumed.frames.some(f => f.event.data.id === one && f.type === 'vm.placed')).toBe(false)
      expect(resumed.frames.filter(f => f.event.data.id === two).map(f => f.type)).toEqual(['vm.placed', 'vm.running'])
    } finally {
      resumed.close()
    }
  })
})
