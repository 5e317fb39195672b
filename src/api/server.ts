/**
 * The HTTP API of every agent (DESIGN.md): JSON in and out, errors as
 * `{ error, message }`. Path parameters, query strings, the headers we read
 * and bodies are validated once here (input.ts); a bad request is answered
 * 4xx with what was expected, counted in
 * `discovery_invalid_messages_total{source="api"}` and logged, and changes
 * nothing. Handlers throw; one table (errors.ts) turns errors into statuses.
 */
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import { Gauge } from 'prom-client'
import type { Agent } from '../agent/index.ts'
import { createVmSchema, migrateVmSchema, setDemandSchema } from '../core/messages.ts'
import { adminRoutes } from './admin-routes.ts'
import { dashboardHtml } from './dashboard.ts'
import { clientErrorHandler, errorSender, fromFramework, MethodNotAllowedError, RouteNotFoundError, UnauthorizedError } from './errors.ts'
import { EventStreams } from './event-stream.ts'
import { cut, eventsQuery, eventTypes, lastEventId, noQuery, parseBody, parseJson, parseQuery, scopeQuery, tokenMatches, vmIdParam, waitQuery } from './input.ts'

export interface ApiInit {
  agent: Agent
  host: string
  port: number
  token?: string
  /** Largest request body, in bytes. Default 64 KiB: a VM request is a few hundred bytes. */
  bodyLimit?: number
  /** Between keep-alive comments on a quiet `GET /v1/events`. Default 15 s. */
  eventsKeepAliveMs?: number
}

/** Longest path segment the router takes (its default is 100): a VM id up to 200 characters gets the 400 that names the format, longer ones a 414. */
const MAX_PARAM_LENGTH = 200
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'] as const


/** Open streams, and the event log's listeners (one per stream among them): a leak shows as a gap between the two that grows. */
function streamGauges (agent: Agent, streams: EventStreams): void {
  const registry = agent.metrics.registry
  // One API per agent; a second would find the gauges there already.
  if (registry.getSingleMetric('discovery_api_event_streams') != null) return
  const events = agent.events
  new Gauge({ name: 'discovery_api_event_streams', help: 'Open GET /v1/events streams', registers: [registry], collect () { this.set(streams.size) } })
  new Gauge({ name: 'discovery_event_listeners', help: 'Listeners of the agent\'s event log, one per open GET /v1/events stream among them', registers: [registry], collect () { this.set(events.listenerCount) } })
}

export async function startApi (init: ApiInit): Promise<{ server: FastifyInstance, url: string }> {
  const { agent } = init
  const bodyLimit = init.bodyLimit ?? 64 * 1024
  const invalid = (reason: string): void => { agent.invalidApiInput(reason) }
  const sendError = errorSender({
    invalid,
    internal: (err: any) => { agent.log.error({ component: 'discovery:api', err: err?.message, stack: err?.stack }, 'request failed') }
  })
  const server = Fastify({
    bodyLimit,
    logger: false,
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    // Bad percent-encodings and over-long path segments: the router's own errors, answered in our shape.
    frameworkErrors: (err, _req, reply) => sendError(reply, fromFramework(err, bodyLimit)),
    // What Node's parser refuses (headers over 16 KiB, not HTTP): answered on the socket, in our shape.
    clientErrorHandler: clientErrorHandler(invalid)
  })
  const streams = new EventStreams({ events: agent.events, self: agent.peerId, keepAliveMs: init.eventsKeepAliveMs })

  server.setErrorHandler((err, _req, reply) => sendError(reply, fromFramework(err, bodyLimit)))
  server.setNotFoundHandler((req, reply) => {
    const path = req.raw.url?.split('?')[0] ?? '/'
    const allow = METHODS.filter(m => m !== req.method && server.findRoute({ method: m, url: path }) != null)
    if (allow.length > 0) return sendError(reply, new MethodNotAllowedError(`${req.method} is not allowed on ${cut(path, 80)}: use ${allow.join(' or ')}`, allow))
    return sendError(reply, new RouteNotFoundError(`no route ${req.method} ${cut(path, 80)}: see the HTTP API in the README`))
  })
  // The only body parser: JSON in UTF-8. Any other type is 415 (text/plain included).
  server.removeAllContentTypeParsers()
  server.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req: FastifyRequest, body: Buffer, done) => {
    try {
      done(null, parseJson(req, body))
    } catch (err: any) {
      done(err, undefined)
    }
  })
  server.addHook('preClose', (done) => { streams.closeAll(); done() })
  streamGauges(agent, streams)

  // The agent refuses --admin without a token; the API does not rely on it alone.
  if (agent.admin && init.token == null) throw new Error('the admin routes need an API token')
  if (init.token != null) {
    const token = init.token
    server.addHook('onRequest', async (req) => {
      const route = req.routeOptions.url
      if (route === '/' || route === '/v1/health') return
      if (!tokenMatches(req.headers.authorization, token)) throw new UnauthorizedError()
    })
  }

  server.get('/v1/health', async (req) => {
    parseQuery(noQuery, req.query, 'no parameters')
    return { status: 'ok', peerId: agent.peerId, version: agent.version, uptimeS: agent.uptimeS(), joined: agent.joined() }
  })

  server.get('/v1/nodes', async (req) => {
    parseQuery(noQuery, req.query, 'no parameters')
    return agent.nodes()
  })

  server.get('/v1/vms', async (req) => {
    const q = parseQuery(scopeQuery, req.query, '?scope=local or ?scope=cluster')
    return q.scope === 'cluster' ? agent.clusterVms() : await agent.localVmsWithStats()
  })

  server.post('/v1/vms', async (req, reply) => {
    parseQuery(noQuery, req.query, 'no parameters')
    const body = parseBody(createVmSchema, req.body)
    return await reply.code(201).send(await agent.createVm(body))
  })

  server.get('/v1/vms/:id', async (req) => {
    const id = vmIdParam(req.params)
    const q = parseQuery(waitQuery, req.query, '?wait=DURATION')
    return await agent.withStats(q.wait != null ? await agent.waitForVm(id, q.wait) : agent.getVm(id))
  })

  server.delete('/v1/vms/:id', async (req) => {
    const id = vmIdParam(req.params)
    parseQuery(noQuery, req.query, 'no parameters')
    await agent.deleteVm(id)
    return { id, state: 'deleted' }
  })

  server.post('/v1/vms/:id/migrate', async (req, reply) => {
    const id = vmIdParam(req.params)
    parseQuery(noQuery, req.query, 'no parameters')
    // `to` is optional, so is the body: no body (or an empty one) is `{}`; a JSON `null` is not.
    const body = parseBody(migrateVmSchema, req.body === undefined ? {} : req.body)
    const migration = await agent.migrateVm(id, body.to)
    if (migration.phase === 'committed') return { migration }
    return await reply.code(409).send({ error: 'migration_aborted', message: migration.reason ?? 'the migration was aborted', migration })
  })

  server.get('/v1/migrations', async (req) => {
    parseQuery(noQuery, req.query, 'no parameters')
    return agent.migrations()
  })

  server.get('/v1/rebalance', async (req) => {
    parseQuery(noQuery, req.query, 'no parameters')
    return agent.rebalanceEvents()
  })

  server.put('/v1/vms/:id/demand', async (req) => {
    const id = vmIdParam(req.params)
    parseQuery(noQuery, req.query, 'no parameters')
    const body = parseBody(setDemandSchema, req.body, ' (demand is a fraction of the VM\'s vCPUs, 0 to 1)')
    agent.setDemand(id, body.demand)
    return { id, demand: body.demand }
  })

  // No HEAD twin: it would run the stream's handler and never end.
  server.get('/v1/events', { exposeHeadRoute: false }, async (req, reply) => {
    const q = parseQuery(eventsQuery, req.query, '?types=TYPE,... and ?lastEventId=N')
    const types = eventTypes(q.types)
    const afterId = lastEventId(req.headers['last-event-id'], q.lastEventId)
    streams.serve(reply, { afterId, types })
  })

  server.get('/metrics', async (req, reply) => {
    parseQuery(noQuery, req.query, 'no parameters')
    const text = await agent.metrics.registry.metrics()
    return await reply.type(agent.metrics.registry.contentType).send(text)
  })

  // Only with --admin (and so a token): otherwise these routes do not exist.
  if (agent.admin) adminRoutes(server, agent)

  // The dashboard takes whatever query a browser adds.
  server.get('/', async (_req, reply) => await reply.type('text/html; charset=utf-8').send(dashboardHtml))

  await server.listen({ host: init.host, port: init.port })
  const addr = server.server.address()
  const port = typeof addr === 'object' && addr != null ? addr.port : init.port
  const host = init.host.includes(':') ? `[${init.host}]` : init.host
  return { server, url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}` }
}

