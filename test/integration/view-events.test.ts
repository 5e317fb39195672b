/**
 * The benchmark's view clock (bench/lib/view-events.ts): from each process's
 * `GET /v1/events`, when it first had a VM, by the time in its event — frames
 * cut anywhere between chunks, other events and comments skipped — and
 * `waitAll` that returns once every process had it, or at its deadline.
 */
import { createServer, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { watchViews } from '../../bench/lib/view-events.ts'

const servers: Server[] = []
afterEach(async () => { await Promise.all(servers.splice(0).map(async s => { s.closeAllConnections(); await new Promise(r => s.close(r)) })) })

/** A process's event stream: `streams` gets each open response to write frames to. */
async function eventServer (streams: ServerResponse[]): Promise<string> {
  const server = createServer((req, res) => {
    expect(req.url).toBe('/v1/events?types=vm.created,vm.placed')
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    res.write(': opened\n\n')
    streams.push(res)
  })
  servers.push(server)
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

const frame = (type: string, atMs: number, id: string): string => `id: 1\nevent: ${type}\ndata: ${JSON.stringify({ id: 1, type, atMs, data: { id, node: 'n' } })}\n\n`

describe('view events', () => {
  it('keeps the first time each process had a VM, from frames cut anywhere', async () => {
    const a: ServerResponse[] = []
    const b: ServerResponse[] = []
    const views = await watchViews([await eventServer(a), await eventServer(b)])
    try {
      const text = frame('vm.created', 1_000, 'vm-aaaaaa') + ': keep-alive\n\n' + frame('vm.placed', 2_000, 'vm-aaaaaa')
      // Byte by byte for the first process: frames cut at every place.
      for (const ch of text) a[0].write(ch)
      const waited = views.waitAll('vm-aaaaaa', 5_000)
      b[0].write(frame('vm.placed', 1_500, 'vm-aaaaaa').slice(0, 20))
      b[0].write(frame('vm.placed', 1_500, 'vm-aaaaaa').slice(20))
      await waited
      expect(views.at(0, 'vm-aaaaaa')).toBe(1_000)
      expect(views.at(1, 'vm-aaaaaa')).toBe(1_500)
      expect(views.at(1, 'vm-bbbbbb')).toBeUndefined()
    } finally {
      views.close()
    }
  })

  it('waitAll returns at its deadline when a process never had the VM', async () => {
    const a: ServerResponse[] = []
    const b: ServerResponse[] = []
    const views = await watchViews([await eventServer(a), await eventServer(b)])
    try {
      a[0].write(frame('vm.placed', 1_000, 'vm-cccccc'))
      const t0 = performance.now()
      await views.waitAll('vm-cccccc', 300)
      expect(performance.now() - t0).toBeGreaterThanOrEqual(250)
      expect(views.at(0, 'vm-cccccc')).toBe(1_000)
      expect(views.at(1, 'vm-cccccc')).toBeUndefined()
    } finally {
      views.close()
    }
  })

  it('fails when a process does not serve events', async () => {
    const server = createServer((_req, res) => { res.writeHead(404); res.end() })
    servers.push(server)
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    await expect(watchViews([`http://127.0.0.1:${(server.address() as AddressInfo).port}`])).rejects.toThrow(/answered HTTP 404/)
  })
})
