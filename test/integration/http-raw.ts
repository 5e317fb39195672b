/**
 * HTTP at the byte level, for the hostile-request tests: `fetch` normalizes
 * paths, refuses odd methods and headers, and reports EPIPE instead of an
 * answer the server sends before it has read the whole body.
 */
import { request } from 'node:http'
import { connect } from 'node:net'

export interface RawAnswer {
  /** Undefined when the server closed the connection without answering. */
  status?: number
  headers: Record<string, string>
  text: string
}

/** One request through node:http: any method, path and header it lets through; the body written only if no answer came first. */
export async function httpRequest (url: string, method: string, path: string, headers: Record<string, string | number> = {}, body?: string | Buffer): Promise<RawAnswer> {
  const { hostname, port } = new URL(url)
  const bytes = body == null ? undefined : typeof body === 'string' ? Buffer.from(body) : body
  // Node sends a DELETE's body with neither length nor chunking: say how long it is, unless told otherwise.
  const names = Object.keys(headers).map(h => h.toLowerCase())
  if (bytes != null && bytes.length > 0 && !names.includes('content-length') && !names.includes('transfer-encoding')) headers = { ...headers, 'content-length': bytes.length }
  return await new Promise((resolve, reject) => {
    let answered = false
    const req = request({ host: hostname, port, method, path, headers, agent: false, setHost: true }, (res) => {
      answered = true
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      const done = (): void => { resolve({ status: res.statusCode, headers: res.headers as Record<string, string>, text: Buffer.concat(chunks).toString('utf8') }) }
      res.on('end', done)
      res.on('aborted', done)
      res.on('error', done)
    })
    req.setTimeout(15_000, () => { req.destroy(new Error(`${method} ${path}: no answer in 15 s`)) })
    req.on('error', (err) => { if (!answered) reject(err) })
    if (bytes == null || bytes.length === 0) {
      req.end()
      return
    }
    // Headers first: a server that refuses the body (413) answers before reading it.
    req.flushHeaders()
    void (async () => {
      const step = 16 * 1024
      for (let i = 0; i < bytes.length && !answered && !req.destroyed; i += step) {
        if (!req.write(bytes.subarray(i, i + step))) await new Promise(r => setTimeout(r, 5))
      }
      if (!answered && !req.destroyed) req.end()
    })()
  })
}

/** Bytes on a fresh TCP connection; reads until the server closes it (or `timeoutMs`). */
export async function rawRequest (url: string, bytes: string | Buffer, timeoutMs = 5_000): Promise<RawAnswer> {
  const { hostname, port } = new URL(url)
  return await new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port) })
    const chunks: Buffer[] = []
    const timer = setTimeout(() => { socket.destroy() }, timeoutMs)
    socket.on('connect', () => { socket.write(bytes) })
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.on('error', () => {})
    socket.on('close', () => {
      clearTimeout(timer)
      const all = Buffer.concat(chunks).toString('utf8')
      const head = all.indexOf('\r\n\r\n')
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(all)
      const headers: Record<string, string> = {}
      for (const line of all.slice(0, head).split('\r\n').slice(1)) {
        const colon = line.indexOf(':')
        if (colon > 0) headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim()
      }
      resolve({ status: m != null ? Number(m[1]) : undefined, headers, text: head >= 0 ? all.slice(head + 4) : '' })
    })
  })
}
