/**
 * A campaign of hostile requests against every route of one real agent
 * (started with an API token): bad ids, bodies, content types, charsets,
 * query strings, headers, methods and tokens. None may get a 5xx, every
 * refusal is `{ error, message }` in our words (no framework `FST_` code),
 * the agent stays healthy, no state changes, and each refusal is counted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type AgentProcess, ApiClient, metricValue, startAgent, tempDir, waitFor } from './helpers.ts'
import { httpRequest, rawRequest, type RawAnswer } from './http-raw.ts'

const TOKEN = 'hostile-campaign-token'
const AUTH = { authorization: `Bearer ${TOKEN}` }
const JSON_CT = { ...AUTH, 'content-type': 'application/json' }

let agent: AgentProcess
let api: ApiClient
let vmId: string

beforeAll(async () => {
  agent = await startAgent(['--data-dir', tempDir('hostile'), '--api', '127.0.0.1:0', '--listen', '/ip4/127.0.0.1/tcp/0', '--api-token', TOKEN, '--cpu', '4', '--mem', '8GiB'])
  api = new ApiClient(agent.api.url, TOKEN)
  vmId = (await api.call('POST', '/v1/vms', { cpu: 1, memMiB: 256, name: 'target' })).id
  await waitFor('the VM to boot', async () => (await api.call('GET', `/v1/vms/${vmId}`)).state === 'running' ? true : undefined)
})
afterAll(() => { agent?.proc.kill('SIGKILL') })

interface Case {
  label: string
  send: () => Promise<RawAnswer>
  /** The status it must get; by default any 4xx. */
  status?: number
  /** What the message must say. */
  message?: RegExp
}

/** Refusals that are bad input (not a well-formed lookup of an unknown VM): each is counted. */
const COUNTED = new Set([400, 401, 405, 413, 414, 415, 431])

function req (method: string, path: string, headers: Record<string, string | number> = AUTH, body?: string | Buffer): () => Promise<RawAnswer> {
  return async () => await httpRequest(agent.api.url, method, path, headers, body)
}

function raw (text: string | Buffer): () => Promise<RawAnswer> {
  return async () => await rawRequest(agent.api.url, text)
}

/** The corpus, built once the agent (and its VM) exist. */
function corpus (): Case[] {
  const cases: Case[] = []
  const add = (c: Case): void => { cases.push(c) }
  const ID_ROUTES: Array<[string, (id: string) => string, string | undefined]> = [
    ['GET', id => `/v1/vms/${id}`, undefined],
    ['DELETE', id => `/v1/vms/${id}`, undefined],
    ['POST', id => `/v1/vms/${id}/migrate`, '{}'],
    ['PUT', id => `/v1/vms/${id}/demand`, '{"demand":0.5}']
  ]
  const ROUTES: Array<[string, string]> = [
    ['GET', '/v1/health'], ['GET', '/v1/nodes'], ['GET', '/v1/vms'], ['POST', '/v1/vms'], ['GET', `/v1/vms/${vmId}`],
    ['DELETE', `/v1/vms/${vmId}`], ['POST', `/v1/vms/${vmId}/migrate`], ['GET', '/v1/migrations'], ['GET', '/v1/rebalance'],
    ['PUT', `/v1/vms/${vmId}/demand`], ['GET', '/v1/events'], ['GET', '/metrics'], ['GET', '/']
  ]

  // Path parameters: what a VM id is not.
  const malformed = ['', 'a'.repeat(65), 'a'.repeat(80), 'b'.repeat(100), 'vm-' + 'c'.repeat(97), 'vm-abc', 'vm-UPPER12345', 'VM-12345678', '%E2%98%83', '%F0%9F%92%A9%F0%9F%92%A9',
    'vm-%C3%A9t%C3%A9123', 'vm-123456%2F..%2F..', '..%2F..%2Fetc%2Fpasswd', '%00', 'vm-1234567%00', '%3Cscript%3E', 'vm-12345678%20', '%20', "'%20OR%201=1", '%25', 'vm-12345678;rm']
  for (const [method, path, body] of ID_ROUTES) {
    for (const id of malformed) {
      add({ label: `${method} ${path(id).slice(0, 60)}`, send: req(method, path(id), body != null ? JSON_CT : AUTH, body), status: 400, message: /VM id.*vm-1a2b3c4d5e6f/ })
    }
    add({ label: `${method} over-long id segment`, send: req(method, path('vm-' + 'd'.repeat(300)), body != null ? JSON_CT : AUTH, body), status: 414, message: /vm-1a2b3c4d5e6f/ })
    add({ label: `${method} bad percent-encoding`, send: req(method, path('vm-%E0%A4%A'), body != null ? JSON_CT : AUTH, body), status: 400 })
    add({ label: `${method} lone %`, send: req(method, path('vm-12345678%'), body != null ? JSON_CT : AUTH, body), status: 400 })
    // Well-formed but unknown: the agent's 404, not a 400.
    add({ label: `${method} unknown well-formed id`, send: req(method, path('vm-doesnotexist'), body != null ? JSON_CT : AUTH, body), status: 404, message: /vm-doesnotexist/ })
  }
  add({ label: 'raw UTF-8 bytes in the path', send: raw(Buffer.concat([Buffer.from('GET /v1/vms/vm-'), Buffer.from('été12345', 'utf8'), Buffer.from(` HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nConnection: close\r\n\r\n`)])) })

  // Tokens: none, wrong, wrong scheme, empty, near misses; on every route but the open two.
  for (const [method, path] of ROUTES.filter(([, p]) => p !== '/' && p !== '/v1/health')) {
    for (const authorization of [undefined, 'Bearer wrong-token-0000', `Basic ${Buffer.from(`u:${TOKEN}`).toString('base64')}`, 'Bearer', 'Bearer ', `Bearer ${TOKEN}x`, `${TOKEN}`, `Bearer${TOKEN}`, `Token ${TOKEN}`]) {
      const headers: Record<string, string> = { 'content-type': 'application/json' }
      if (authorization != null) headers.authorization = authorization
      add({ label: `${method} ${path} with authorization ${String(authorization).slice(0, 20)}`, send: req(method, path, headers, method === 'POST' || method === 'PUT' ? '{}' : undefined), status: 401, message: /Bearer/ })
    }
  }
  add({ label: 'non-ASCII token bytes', send: raw(Buffer.concat([Buffer.from('GET /v1/vms HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer '), Buffer.from('tökén-hostile-campaign', 'utf8'), Buffer.from('\r\nConnection: close\r\n\r\n')])), status: 401 })

  // Bodies: not JSON, not an object, wrong fields, poisoned keys, deep nesting, bad bytes. None may be valid.
  const badBodies = ['{"cpu": 1, "memMiB": ', 'null', '[]', '"str"', '123', 'true', '{}', '{"cpu":1}', '{"cpu":"1","memMiB":64}', '{"cpu":1e400,"memMiB":64}', '{"cpu":-1,"memMiB":64}',
    '{"cpu":1,"memMiB":64,"extra":1}', '{"__proto__":{"cpu":1,"memMiB":64}}', '{"cpu":1,"memMiB":64,"constructor":{"prototype":{"polluted":1}}}', '{"cpu":1,"memMiB":64,"labels":{"__proto__":"x"}}',
    '\uFEFF[]', '{"cpu":1,"memMiB":64}garbage', '{"cpu":1,"memMiB":64,}', "{'cpu':1}", 'NaN', '{"cpu":1,"memMiB":64,"name":"' + '\u0000'.repeat(10) + '"}',
    '['.repeat(5_000) + ']'.repeat(5_000), '{"a":'.repeat(3_000) + '1' + '}'.repeat(3_000), '{"cpu":1,"memMiB":64,"name":"' + 'n'.repeat(100) + '"}']
  const bodyRoutes: Array<[string, string]> = [['POST', '/v1/vms'], ['POST', `/v1/vms/${vmId}/migrate`], ['PUT', `/v1/vms/${vmId}/demand`]]
  for (const [method, path] of bodyRoutes) {
    for (const body of badBodies) {
      // An empty object is a valid migrate body (`to` is optional): left out there, tested on its own below.
      if (path.endsWith('/migrate') && body === '{}') continue
      add({ label: `${method} ${path} body ${body.slice(0, 30)}`, send: req(method, path, JSON_CT, body), status: 400 })
    }
    add({ label: `${method} ${path} invalid UTF-8`, send: req(method, path, JSON_CT, Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d])), status: 400, message: /UTF-8/ })
    // No body is a valid migrate (tested on its own below).
    if (!path.endsWith('/migrate')) add({ label: `${method} ${path} missing body`, send: req(method, path, JSON_CT), status: 400 })
  }

  // Content types and charsets: JSON in UTF-8 only.
  const valid = '{"cpu":1,"memMiB":64}'
  const types: Array<[string, string | Buffer, number]> = [
    ['text/plain', valid, 415], ['text/plain; charset=utf-8', valid, 415], ['application/x-www-form-urlencoded', 'cpu=1&memMiB=64', 415], ['multipart/form-data; boundary=x', `--x\r\n\r\n${valid}\r\n--x--`, 415],
    ['application/xml', '<vm/>', 415], ['application/jsonp', valid, 415], ['application/json-patch+json', valid, 415], ['application/octet-stream', valid, 415], ['garbage', valid, 415], ['/', valid, 415],
    ['application/json; charset=utf-16', Buffer.from(valid, 'utf16le'), 415], ['application/json; charset=utf-16be', Buffer.from(valid, 'utf16le').swap16(), 415], ['application/json;charset="UTF-32"', valid, 415],
    ['application/json; charset=latin1', valid, 415], ['application/json; charset=iso-8859-1', valid, 415], ['application/json; charset=', valid, 415]
  ]
  for (const [method, path] of bodyRoutes) {
    for (const [type, body, status] of types) {
      add({ label: `${method} ${path} as ${type}`, send: req(method, path, { ...AUTH, 'content-type': type }, body), status, message: status === 415 && type.includes('charset') ? /UTF-8/ : undefined })
    }
    add({ label: `${method} ${path} body without a content type`, send: req(method, path, AUTH, valid), status: 415 })
  }
  add({ label: 'DELETE with a text body', send: req('DELETE', `/v1/vms/${vmId}`, { ...AUTH, 'content-type': 'text/plain' }, 'please'), status: 415 })
  add({ label: 'DELETE with a bad JSON body', send: req('DELETE', `/v1/vms/${vmId}`, JSON_CT, '{'), status: 400 })

  // Sizes: over the 64 KiB limit, announced or streamed; a length that lies.
  const huge = JSON.stringify({ cpu: 1, memMiB: 1, name: 'x'.repeat(200_000) })
  for (const [method, path] of bodyRoutes) {
    add({ label: `${method} ${path} 200 KB body`, send: req(method, path, { ...JSON_CT, 'content-length': Buffer.byteLength(huge) }, huge), status: 413, message: /65536 bytes/ })
    add({ label: `${method} ${path} 200 KB chunked body`, send: req(method, path, { ...JSON_CT, 'transfer-encoding': 'chunked' }, huge), status: 413 })
  }
  add({ label: 'a Content-Length of 1 GB, no body', send: raw(`POST /v1/vms HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\nConnection: close\r\n\r\n`), status: 413 })
  add({ label: 'Content-Length and Transfer-Encoding both', send: raw(`POST /v1/vms HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n`), status: 400 })

  // Headers: over Node's 16 KiB, in a header or in the URL.
  add({ label: 'a 20 KB header', send: req('GET', '/v1/vms', { ...AUTH, 'x-filler': 'f'.repeat(20_000) }), status: 431 })
  add({ label: 'a 20 KB URL', send: req('GET', `/v1/vms/${'u'.repeat(20_000)}`), status: 431 })
  add({ label: 'a 20 KB query string', send: req('GET', `/v1/vms?scope=${'q'.repeat(20_000)}`), status: 431 })
  add({ label: 'a malformed Last-Event-ID', send: req('GET', '/v1/events', { ...AUTH, 'last-event-id': 'abc' }), status: 400, message: /Last-Event-ID/ })
  add({ label: 'a negative Last-Event-ID', send: req('GET', '/v1/events', { ...AUTH, 'last-event-id': '-5' }), status: 400 })
  add({ label: 'a huge Last-Event-ID', send: req('GET', '/v1/events', { ...AUTH, 'last-event-id': '9'.repeat(40) }), status: 400 })

  // Query strings: bad values on the routes that take some (parameters a route does not take are ignored, as they always were).
  for (const q of ['scope=everything', 'scope=cluster&scope=local', 'scope=', 'scope=%ZZ', 'scope=CLUSTER']) {
    add({ label: `GET /v1/vms?${q}`, send: req('GET', `/v1/vms?${q}`), status: 400 })
  }
  for (const q of ['wait=-1', 'wait=abc', 'wait=61s', 'wait=1e9', 'wait=99999999999999999999', 'wait=5s&wait=6s', 'wait=', 'wait=5%00s', 'wait=1h']) {
    add({ label: `GET /v1/vms/:id?${q}`, send: req('GET', `/v1/vms/${vmId}?${q}`), status: 400 })
  }
  for (const q of ['types=', 'types=nope', 'types=vm.placed,nope', 'types=vm.placed&types=vm.created', 'lastEventId=-1', 'lastEventId=abc', 'lastEventId=1e3', `lastEventId=${'9'.repeat(30)}`, 'types=%E2%98%83']) {
    add({ label: `GET /v1/events?${q}`, send: req('GET', `/v1/events?${q}`), status: 400 })
  }
  add({ label: 'an unknown type is refused with the list of known ones', send: req('GET', '/v1/events?types=vm.exploded'), status: 400, message: /vm\.placed.*migration\.committed/ })

  // Methods: each path with methods it does not take, a made-up one, and not HTTP at all.
  const wrong: Array<[string, string]> = [['PATCH', '/v1/vms'], ['DELETE', '/v1/vms'], ['PUT', '/v1/vms'], ['PUT', '/v1/health'], ['POST', '/v1/health'], ['POST', '/v1/nodes'], ['DELETE', '/v1/nodes'],
    ['POST', `/v1/vms/${vmId}`], ['PATCH', `/v1/vms/${vmId}`], ['GET', `/v1/vms/${vmId}/migrate`], ['DELETE', `/v1/vms/${vmId}/migrate`], ['GET', `/v1/vms/${vmId}/demand`], ['POST', `/v1/vms/${vmId}/demand`],
    ['POST', '/v1/migrations'], ['DELETE', '/v1/rebalance'], ['POST', '/v1/events'], ['POST', '/metrics'], ['DELETE', '/'], ['OPTIONS', '/v1/vms'], ['PROPFIND', '/v1/vms'], ['TRACE', '/v1/vms']]
  for (const [method, path] of wrong) add({ label: `${method} ${path}`, send: req(method, path), status: 405 })
  for (const path of ['/v1', '/v1/', '/v1/vm', '/v2/vms', `/v1/vms/${vmId}/`, `/v1/vms/${vmId}/migrate/now`, '/metrics/', '/../../etc/passwd', '/%2e%2e/%2e%2e/etc/passwd', '//v1//vms', '/v1/vms/%2F', '/v1/nodes/x']) {
    add({ label: `GET ${path}`, send: req('GET', path) })
  }
  add({ label: 'a made-up method', send: raw(`FROBNICATE /v1/vms HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`), status: 400 })
  add({ label: 'not HTTP', send: raw('\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 hello, TLS?\r\n\r\n'), status: 400 })
  add({ label: 'an unknown HTTP version', send: raw(`GET /v1/vms HTTP/9.9\r\nHost: x\r\nConnection: close\r\n\r\n`) })
  add({ label: 'a header without a colon', send: raw(`GET /v1/vms HTTP/1.1\r\nHost: x\r\nno colon here\r\nConnection: close\r\n\r\n`), status: 400 })
  return cases
}

describe('the HTTP API under hostile requests', () => {
  it('answers every one with a 4xx in the documented shape, changes nothing, stays healthy and counts them', async () => {
    const before = await api.call<unknown[]>('GET', '/v1/vms?scope=cluster')
    const counted = metricValue(await api.call('GET', '/metrics'), 'discovery_invalid_messages_total', { source: 'api' })
    const cases = corpus()
    let refused = 0
    for (const c of cases) {
      const res = await c.send()
      // Only a connection Node's parser drops without a word (not HTTP at all) may go unanswered.
      if (res.status == null) {
        expect(c.label, 'only unparseable bytes may go unanswered').toMatch(/not HTTP|version/)
        continue
      }
      const where = `${c.label} → ${res.status} ${res.text.slice(0, 300)}`
      expect(res.status, where).toBeLessThan(500)
      if (c.status != null) expect(res.status, where).toBe(c.status)
      else expect(res.status, where).toBeGreaterThanOrEqual(400)
      expect(res.text, where).not.toMatch(/FST_/)
      let body: any
      expect(() => { body = JSON.parse(res.text) }, where).not.toThrow()
      expect(Object.keys(body).sort(), where).toEqual(['error', 'message'])
      expect(typeof body.error, where).toBe('string')
      expect(typeof body.message, where).toBe('string')
      expect(body.message.length, where).toBeGreaterThan(0)
      if (c.message != null) expect(body.message, where).toMatch(c.message)
      if (COUNTED.has(res.status)) refused++
    }
    expect(cases.length).toBeGreaterThan(400)
    expect(refused).toBeGreaterThan(300)

    expect((await api.call('GET', '/v1/health')).status).toBe('ok')
    expect(await api.call<unknown[]>('GET', '/v1/vms?scope=cluster')).toEqual(before)
    const after = metricValue(await api.call('GET', '/metrics'), 'discovery_invalid_messages_total', { source: 'api' })
    expect(after - counted).toBeGreaterThanOrEqual(refused)
    expect(agent.proc.exitCode).toBeNull()
  })

  it('takes the scheme of the token in any case, an empty migrate body as {}, and a UTF-8 charset', async () => {
    for (const scheme of ['bearer', 'BEARER', 'Bearer', 'bEaReR']) {
      const res = await httpRequest(agent.api.url, 'GET', '/v1/nodes', { authorization: `${scheme} ${TOKEN}` })
      expect(res.status, scheme).toBe(200)
    }
    // `to` is optional, so is the body: it reaches the agent (which finds no other node for the VM) instead of a 400.
    for (const headers of [JSON_CT, AUTH]) {
      const res = await httpRequest(agent.api.url, 'POST', `/v1/vms/${vmId}/migrate`, headers)
      expect(res.status, res.text).toBe(503)
      expect(JSON.parse(res.text)).toEqual({ error: 'no_capacity', message: expect.stringMatching(/no other node can host/) })
    }
    const unknown = await httpRequest(agent.api.url, 'POST', '/v1/vms/vm-doesnotexist/migrate', JSON_CT, '')
    expect(unknown.status).toBe(404)
    // A charset of UTF-8, in any spelling, is JSON as usual: the request is read (and refused for its content only).
    for (const type of ['application/json; charset=utf-8', 'application/json; charset=UTF-8', 'application/json;charset="utf8"']) {
      const res = await httpRequest(agent.api.url, 'PUT', `/v1/vms/${vmId}/demand`, { ...AUTH, 'content-type': type }, '{"demand":2}')
      expect(res.status, type).toBe(400)
      expect(JSON.parse(res.text).message).toMatch(/demand/)
    }
    // HEAD has no body to check: the stream has no HEAD (it would never end).
    const head = await httpRequest(agent.api.url, 'HEAD', '/v1/events', AUTH)
    expect(head.status).toBe(405)
    expect(head.headers.allow).toBe('GET')
    // A parameter a route does not take is ignored, as it always was (a cache buster keeps working).
    const busted = await httpRequest(agent.api.url, 'GET', '/v1/vms?scope=cluster&_=12345', AUTH)
    expect(busted.status).toBe(200)
    expect(JSON.parse(busted.text).some((v: { id: string }) => v.id === vmId)).toBe(true)
    // The dashboard and health stay open without a token.
    expect((await httpRequest(agent.api.url, 'GET', '/v1/health')).status).toBe(200)
    expect((await httpRequest(agent.api.url, 'GET', '/?from=browser')).status).toBe(200)
  })
})
