/**
 * The HTTP API of every agent (DESIGN.md): JSON in and out, errors as
 * `{ error, message }`. Bodies are validated once here against the schemas of
 * core/messages.ts; a bad body is answered 400 with the field and what was
 * expected, counted in `discovery_invalid_messages_total{source="api"}` and
 * logged, and changes nothing.
 */
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify'
import { timingSafeEqual } from 'node:crypto'
import { z } from 'zod'
import { type Agent, MAX_VM_WAIT_MS } from '../agent/index.ts'
import { createVmSchema, describeIssues } from '../core/messages.ts'
import { dashboardHtml } from './dashboard.ts'

export interface ApiInit {
  agent: Agent
  host: string
  port: number
  token?: string
  /** Largest request body, in bytes. Default 64 KiB: a VM request is a few hundred bytes. */
  bodyLimit?: number
}

const scopeSchema = z.object({ scope: z.enum(['local', 'cluster']).optional() })
const idSchema = z.object({ id: z.string().min(1).max(64) })
/** `?wait=DURATION` of GET /v1/vms/:id: `500ms`, `5s`, or a bare number of seconds; at most a minute. */
const waitSchema = z.object({
  wait: z.string().regex(/^\d+(\.\d+)?(ms|s)?$/, 'a duration like 500ms or 5s')
    .transform(s => s.endsWith('ms') ? Number(s.slice(0, -2)) : Number(s.replace(/s$/, '')) * 1000)
    .refine(ms => ms <= MAX_VM_WAIT_MS, `at most ${MAX_VM_WAIT_MS / 1000}s`)
    .optional()
})

function fail (reply: FastifyReply, status: number, error: string, message: string): FastifyReply {
  return reply.code(status).send({ error, message })
}

function tokenMatches (header: string | undefined, token: string): boolean {
  const given = Buffer.from(header?.startsWith('Bearer ') === true ? header.slice(7) : '')
  const want = Buffer.from(token)
  return given.length === want.length && timingSafeEqual(given, want)
}

export async function startApi (init: ApiInit): Promise<{ server: FastifyInstance, url: string }> {
  const { agent } = init
  const server = Fastify({ bodyLimit: init.bodyLimit ?? 64 * 1024, logger: false })

  server.setErrorHandler((err: any, _req, reply) => {
    const status = typeof err.statusCode === 'number' ? err.statusCode : 500
    if (status === 413) {
      agent.invalidApiInput('body too large')
      return fail(reply, 413, 'payload_too_large', `the request body is larger than ${init.bodyLimit ?? 64 * 1024} bytes`)
    }
    if (status === 415) {
      agent.invalidApiInput('unsupported media type')
      return fail(reply, 415, 'unsupported_media_type', 'send the body as application/json')
    }
    if (status >= 400 && status < 500) {
      agent.invalidApiInput(err.message)
      return fail(reply, 400, 'bad_request', `the request body is not valid JSON: ${err.message}`)
    }
    agent.log.error({ component: 'discovery:api', err: err.message }, 'request failed')
    return fail(reply, 500, 'internal', err.message)
  })
  server.setNotFoundHandler((req, reply) => fail(reply, 404, 'not_found', `no route ${req.method} ${req.url}`))

  if (init.token != null) {
    const token = init.token
    server.addHook('onRequest', async (req, reply) => {
      if (req.url === '/' || req.url === '/v1/health') return
      if (!tokenMatches(req.headers.authorization, token)) {
        return await fail(reply, 401, 'unauthorized', 'send the API token as "Authorization: Bearer TOKEN"')
      }
    })
  }

  server.get('/v1/health', async () => ({ status: 'ok', peerId: agent.peerId, version: agent.version, uptimeS: agent.uptimeS() }))

  server.get('/v1/nodes', async () => agent.nodes())

  server.get('/v1/vms', async (req, reply) => {
    const q = scopeSchema.safeParse(req.query)
    if (!q.success) return fail(reply, 400, 'bad_request', `scope: expected "local" or "cluster"`)
    return q.data.scope === 'cluster' ? agent.clusterVms() : agent.localVms()
  })

  server.post('/v1/vms', async (req, reply) => {
    const body = createVmSchema.safeParse(req.body)
    if (!body.success) {
      const message = describeIssues(body.error)
      agent.invalidApiInput(message)
      return fail(reply, 400, 'bad_request', message)
    }
    try {
      const placed = await agent.createVm(body.data)
      return reply.code(201).send(placed)
    } catch (err: any) {
      if (err.name === 'NoCapacityError') return fail(reply, 503, 'no_capacity', err.message)
      if (err.name === 'PlacementUncertainError') return fail(reply, 504, 'placement_uncertain', err.message)
      throw err
    }
  })

  server.get('/v1/vms/:id', async (req, reply) => {
    const { id } = idSchema.parse(req.params)
    const q = waitSchema.safeParse(req.query)
    if (!q.success) {
      const message = `wait: expected a duration like 500ms or 5s, at most ${MAX_VM_WAIT_MS / 1000}s`
      agent.invalidApiInput(message)
      return fail(reply, 400, 'bad_request', message)
    }
    try {
      return q.data.wait != null ? await agent.waitForVm(id, q.data.wait) : agent.getVm(id)
    } catch (err: any) {
      if (err.name === 'VmNotFoundError') return fail(reply, 404, 'not_found', err.message)
      throw err
    }
  })

  server.delete('/v1/vms/:id', async (req, reply) => {
    const { id } = idSchema.parse(req.params)
    try {
      await agent.deleteVm(id)
      return { id, state: 'deleted' }
    } catch (err: any) {
      if (err.name === 'VmNotFoundError') return fail(reply, 404, 'not_found', err.message)
      if (err.name === 'PeerUnreachableError') return fail(reply, 503, 'peer_unreachable', err.message)
      throw err
    }
  })

  const migrateSchema = z.object({ to: z.string().min(10).max(128).regex(/^[1-9A-HJ-NP-Za-km-z]+$/, 'a base58 peer id').optional() }).strict()
  server.post('/v1/vms/:id/migrate', async (req, reply) => {
    const { id } = idSchema.parse(req.params)
    const body = migrateSchema.safeParse(req.body ?? {})
    if (!body.success) {
      const message = describeIssues(body.error)
      agent.invalidApiInput(message)
      return fail(reply, 400, 'bad_request', message)
    }
    try {
      const migration = await agent.migrateVm(id, body.data.to)
      if (migration.phase === 'committed') return { migration }
      return await reply.code(409).send({ error: 'migration_aborted', message: migration.reason ?? 'the migration was aborted', migration })
    } catch (err: any) {
      if (err.name === 'VmNotFoundError') return fail(reply, 404, 'not_found', err.message)
      if (err.name === 'NoCapacityError') return fail(reply, 503, 'no_capacity', err.message)
      if (err.name === 'PeerUnreachableError') return fail(reply, 503, 'peer_unreachable', err.message)
      if (err.name === 'MigrationRefusedError' || err.name === 'MigrationBusyError') return fail(reply, 409, 'migration_refused', err.message)
      throw err
    }
  })

  server.get('/v1/migrations', async () => agent.migrations())

  server.get('/v1/rebalance', async () => agent.rebalanceEvents())

  const demandSchema = z.object({ demand: z.number().min(0).max(1) }).strict()
  server.put('/v1/vms/:id/demand', async (req, reply) => {
    const { id } = idSchema.parse(req.params)
    const body = demandSchema.safeParse(req.body)
    if (!body.success) {
      const message = describeIssues(body.error)
      agent.invalidApiInput(message)
      return fail(reply, 400, 'bad_request', `${message} (demand is a fraction of the VM's vCPUs, 0 to 1)`)
    }
    try {
      agent.setDemand(id, body.data.demand)
      return { id, demand: body.data.demand }
    } catch (err: any) {
      if (err.name === 'VmNotFoundError') return fail(reply, 404, 'not_found', err.message)
      throw err
    }
  })

  server.get('/metrics', async (_req, reply) => {
    const text = await agent.metrics.registry.metrics()
    return reply.type(agent.metrics.registry.contentType).send(text)
  })

  server.get('/', async (_req, reply) => reply.type('text/html; charset=utf-8').send(dashboardHtml))

  await server.listen({ host: init.host, port: init.port })
  const addr = server.server.address()
  const port = typeof addr === 'object' && addr != null ? addr.port : init.port
  const host = init.host.includes(':') ? `[${init.host}]` : init.host
  return { server, url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}` }
}
