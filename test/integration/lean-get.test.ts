/**
 * The benchmark's lean GET client (bench/lib/lean-get.ts), against a real
 * HTTP server: statuses and their times, one kept-alive socket per agent,
 * answers split across reads or two in one, a connection the server closed,
 * and the errors for what it does not read.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LeanClients } from '../../bench/lib/lean-get.ts'

let server: http.Server
let origin: string
const sockets = new Set<unknown>()

beforeAll(async () => {
  server = http.createServer((req, res) => {
    sockets.add(req.socket)
    const url = new URL(req.url ?? '/', 'http://x')
    if (url.pathname === '/slow') {
      setTimeout(() => { res.writeHead(200, { 'content-length': 2 }); res.end('ok') }, Number(url.searchParams.get('ms')))
    } else if (url.pathname === '/split') {
      // Head and body in separate writes, the body in two.
      res.writeHead(404, { 'content-length': 10 })
      res.flushHeaders()
      setTimeout(() => { res.write('01234'); setTimeout(() => { res.end('56789') }, 20) }, 20)
    } else if (url.pathname === '/close') {
      res.writeHead(200, { 'content-length': 2, connection: 'close' })
      res.end('ok')
    } else if (url.pathname === '/chunked') {
      res.writeHead(200, { 'transfer-encoding': 'chunked' })
      res.end('ok')
    } else if (url.pathname === '/never') {
      // No answer.
    } else {
      const text = JSON.stringify({ path: url.pathname })
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
      res.end(text)
    }
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
afterAll(() => { server.closeAllConnections(); server.close() })

describe('LeanClients', () => {
  it('reads statuses in order over one kept-alive socket, timed when the status line arrives', async () => {
    sockets.clear()
    const c = new LeanClients([origin])
    try {
      const before = Date.now()
      const slow = await c.get(0, '/slow?ms=150', 5_000)
      expect(slow.status).toBe(200)
      expect(slow.atMs - before).toBeGreaterThanOrEqual(140)
      expect((await c.get(0, '/split', 5_000)).status).toBe(404)
      // The body of /split is still arriving when its status is known: it is skipped, and the next answer read right.
      for (let i = 0; i < 5; i++) expect((await c.get(0, `/vms/${i}`, 5_000)).status).toBe(200)
      expect(sockets.size).toBe(1)
    } finally {
      c.close()
    }
  })

  it('asks many servers at once, and opens a new socket after the server closed one', async () => {
    sockets.clear()
    const c = new LeanClients([origin, origin, origin])
    try {
      const answers = await Promise.all([0, 1, 2].map(async i => await c.get(i, '/a', 5_000)))
      expect(answers.map(a => a.status)).toEqual([200, 200, 200])
      expect(sockets.size).toBe(3)
      expect((await c.get(0, '/close', 5_000)).status).toBe(200)
      // Its socket closes; the next request opens another.
      await new Promise(resolve => setTimeout(resolve, 50))
      expect((await c.get(0, '/b', 5_000)).status).toBe(200)
      expect(sockets.size).toBe(4)
    } finally {
      c.close()
    }
  })

  it('fails with the reason: no Content-Length, no answer in time, two requests at once, nobody listening', async () => {
    const c = new LeanClients([origin, 'http://127.0.0.1:1'])
    try {
      await expect(c.get(0, '/chunked', 5_000)).rejects.toThrow(/without Content-Length: HTTP\/1\.1 200/)
      await expect(c.get(0, '/never', 200)).rejects.toThrow(/not answered within 200 ms/)
      c.close()
      const first = c.get(0, '/slow?ms=100', 5_000)
      await expect(c.get(0, '/a', 5_000)).rejects.toThrow(/one request at a time/)
      expect((await first).status).toBe(200)
      await expect(c.get(1, '/a', 5_000)).rejects.toThrow(/ECONNREFUSED/)
    } finally {
      c.close()
    }
  })
})
