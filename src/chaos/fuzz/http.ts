/**
 * Hostile HTTP requests on every route of the API: each route's valid request
 * (method, path, query, token, content type, body) with some of its parts
 * made wrong — a malformed or unknown VM id, a bad query, no token or a wrong
 * one, another content type or charset, a mutated or damaged body, a body
 * over the limit, another method. Routes that change state are only sent
 * what cannot change it: ids of no VM, or a body, token or type that must be
 * refused. A valid `GET /v1/events` is a stream: its headers are the answer.
 */
import { createRequire } from 'node:module'
import fc from 'fast-check'
import { createVmSchema } from '../../core/messages.ts'
import { damage, drawArbitrary, mutate, type Draw } from './mutate.ts'

// Through require, not an ES import (see api/errors.ts): the bundle hoists every ES import of a built-in to its top,
// so this one made every agent load Node's fetch implementation (undici) at start, fuzzer or not.
const { request } = createRequire(import.meta.url)('node:http') as typeof import('node:http')

export interface HttpCase {
  method: string
  path: string
  headers: Record<string, string>
  body?: Uint8Array
}

export interface HttpAnswer { status?: number, text: string }

/** Refusals of bad input, each counted in `discovery_invalid_messages_total{source="api"}` (a 404 of a well-formed id is not). */
export const COUNTED_STATUSES = new Set([400, 401, 405, 413, 414, 415, 431])

interface Route { method: string, path: (id: string) => string, body?: unknown, mutates: boolean, takesId: boolean }

const ROUTES: readonly Route[] = [
  { method: 'GET', path: () => '/v1/health', mutates: false, takesId: false },
  { method: 'GET', path: () => '/v1/nodes', mutates: false, takesId: false },
  { method: 'GET', path: () => '/v1/vms', mutates: false, takesId: false },
  { method: 'POST', path: () => '/v1/vms', body: { cpu: 1, memMiB: 64, name: 'fuzz', image: 'fuzz', labels: { a: 'b' }, constraints: { zone: 'z', spread: 's' }, restartPolicy: 'never' }, mutates: true, takesId: false },
  { method: 'GET', path: id => `/v1/vms/${id}`, mutates: false, takesId: true },
  { method: 'DELETE', path: id => `/v1/vms/${id}`, mutates: true, takesId: true },
  { method: 'POST', path: id => `/v1/vms/${id}/migrate`, body: { to: '12D3KooWFuzzFuzzFuzzFuzzFuzzFuzzFuzzFuzzFuzzFuzzFuzz' }, mutates: true, takesId: true },
  { method: 'PUT', path: id => `/v1/vms/${id}/demand`, body: { demand: 0.5 }, mutates: true, takesId: true },
  { method: 'GET', path: () => '/v1/migrations', mutates: false, takesId: false },
  { method: 'GET', path: () => '/v1/rebalance', mutates: false, takesId: false },
  { method: 'GET', path: () => '/v1/events', mutates: false, takesId: false },
  { method: 'GET', path: () => '/metrics', mutates: false, takesId: false },
  { method: 'GET', path: () => '/', mutates: false, takesId: false }
]

const MALFORMED_IDS = ['', 'a'.repeat(80), 'vm-' + 'c'.repeat(97), 'vm-abc', 'vm-UPPER12345', '%E2%98%83', 'vm-%C3%A9t%C3%A9123', 'vm-123456%2F..%2F..', '..%2F..%2Fetc%2Fpasswd',
  '%00', 'vm-1234567%00', '%3Cscript%3E', 'vm-12345678%20', '%25', 'vm-%E0%A4%A', 'vm-12345678%', 'vm-' + 'd'.repeat(300), 'vm-doesnotexist', 'vm-fz00000000']
const QUERIES = ['', '', '', '?scope=everything', '?scope=cluster&scope=local', '?scope=', '?scope=%ZZ', '?wait=-1', '?wait=abc', '?wait=61s', '?wait=1e9', '?wait=5%00s',
  '?types=nope', '?types=', '?lastEventId=-1', `?lastEventId=${'9'.repeat(30)}`, '?x=1', `?q=${'q'.repeat(20_000)}`, '?__proto__[x]=1', '?scope=local&scope=local&scope=local']
const AUTH = ['ok', 'ok', 'ok', 'ok', 'none', 'wrong', 'basic', 'scheme', 'bare'] as const
const TYPES = ['application/json', 'application/json', 'application/json', 'application/json', 'text/plain', 'application/json; charset=latin1', 'application/json; charset=utf-16', 'application/x-www-form-urlencoded', ''] as const
const OTHER_METHODS = ['PATCH', 'OPTIONS', 'PROPFIND', 'TRACE']

interface HttpDraw { route: number, id: number, query: number, auth: number, type: number, method: number, body: Draw, big: boolean }

const httpDraw: fc.Arbitrary<HttpDraw> = fc.record({
  route: fc.nat({ max: ROUTES.length - 1 }),
  id: fc.nat(),
  query: fc.nat({ max: QUERIES.length - 1 }),
  auth: fc.nat({ max: AUTH.length - 1 }),
  type: fc.nat({ max: TYPES.length - 1 }),
  method: fc.nat({ max: 19 }),
  body: drawArbitrary(1),
  big: fc.double({ min: 0, max: 1, noNaN: true }).map(x => x < 0.01)
})

export interface HttpFacts {
  token?: string
  /** A VM the target owns: read routes may name it, routes that change state never. */
  realVm?: string
}

function build (d: HttpDraw, facts: HttpFacts): { c: HttpCase, harmless: boolean } {
  const route = ROUTES[d.route]
  const ids = route.mutates || facts.realVm == null ? MALFORMED_IDS : [...MALFORMED_IDS, facts.realVm]
  const id = ids[d.id % ids.length]
  const query = QUERIES[d.query]
  const method = d.method === 0 ? OTHER_METHODS[d.id % OTHER_METHODS.length] : route.method
  const headers: Record<string, string> = {}
  const auth = AUTH[d.auth]
  const token = facts.token ?? 'no-token-set'
  if (auth === 'ok') headers.authorization = `Bearer ${token}`
  else if (auth === 'wrong') headers.authorization = `Bearer ${token}x`
  else if (auth === 'basic') headers.authorization = `Basic ${Buffer.from(`u:${token}`).toString('base64')}`
  else if (auth === 'scheme') headers.authorization = 'Bearer '
  else if (auth === 'bare') headers.authorization = token
  let body: Uint8Array | undefined
  let parsedBody: unknown
  if (route.body != null || d.body.text === 'garbage') {
    const type = TYPES[d.type]
    if (type !== '') headers['content-type'] = type
    const json = mutate(route.body ?? {}, d.body.mutations)
    body = d.big ? new TextEncoder().encode(JSON.stringify({ ...(json as object), pad: 'p'.repeat(200_000) })) : damage(json, d.body)
    try { parsedBody = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body)) } catch {}
  }
  const authOk = facts.token == null || auth === 'ok'
  // Only a create may change state through a path without a VM id; every other changing route names no VM of the target.
  // A query is no refusal: parameters a route does not take are ignored (the API's contract).
  const wouldCreate = route.path('') === '/v1/vms' && route.method === 'POST' && method === 'POST' && authOk &&
    headers['content-type'] === 'application/json' && createVmSchema.safeParse(parsedBody).success
  return { c: { method, path: route.path(id) + query, headers, body }, harmless: !wouldCreate }
}

/** `count` hostile requests, the same for the same seed. */
export function httpCases (count: number, seed: number, facts: HttpFacts): HttpCase[] {
  const out: HttpCase[] = []
  let round = 0
  while (out.length < count) {
    for (const d of fc.sample(httpDraw, { seed: seed + round++, numRuns: count })) {
      const { c, harmless } = build(d, facts)
      if (harmless && out.length < count) out.push(c)
    }
  }
  return out
}

/** One request on a fresh connection; a stream (`text/event-stream`) is cut after its headers. */
export async function sendHttp (api: string, c: HttpCase, timeoutMs: number): Promise<HttpAnswer> {
  const { hostname, port } = new URL(api)
  const headers: Record<string, string | number> = { ...c.headers }
  if (c.body != null) headers['content-length'] = c.body.byteLength
  return await new Promise((resolve) => {
    let done = false
    const finish = (a: HttpAnswer): void => { if (!done) { done = true; resolve(a) } }
    try {
      const req = request({ host: hostname, port, method: c.method, path: c.path, headers, agent: false }, (res) => {
        if (String(res.headers['content-type'] ?? '').startsWith('text/event-stream')) {
          finish({ status: res.statusCode, text: '' })
          res.destroy()
          return
        }
        const chunks: Buffer[] = []
        res.on('data', (b: Buffer) => chunks.push(b))
        const end = (): void => { finish({ status: res.statusCode, text: Buffer.concat(chunks).toString('utf8') }) }
        res.on('end', end)
        res.on('error', end)
        res.on('aborted', end)
      })
      req.setTimeout(timeoutMs, () => { req.destroy(new Error('timeout')) })
      req.on('error', () => { finish({ text: '' }) })
      if (c.body == null) req.end()
      else req.end(c.body)
    } catch {
      // A request node:http itself refuses to write: nothing reached the target.
      finish({ text: '' })
    }
  })
}
