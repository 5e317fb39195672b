/**
 * What a request may carry, checked once at the edge: path parameters,
 * query strings, the headers we read and JSON bodies. Each check throws a
 * `BadRequestError` (or 415) that says what was expected and what came;
 * nothing unchecked reaches the agent.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import { z } from 'zod'
import { MAX_VM_WAIT_MS } from '../agent/index.ts'
import { EVENT_TYPES, type AgentEventType } from '../agent/events.ts'
import { describeIssues, vmIdSchema } from '../core/messages.ts'
import { BadRequestError, UnsupportedMediaTypeError } from './errors.ts'

/** A string cut short, so that a hostile one cannot fill the answer. */
export function cut (s: string, max = 40): string {
  return s.length > max ? `${s.slice(0, max)}…` : s
}

/** A value as an error message shows what came: quoted, cut short, with its type. */
export function shown (value: unknown): string {
  return `\`${cut(typeof value === 'string' ? value : JSON.stringify(value) ?? String(value))}\` (${typeof value})`
}

/** The `:id` of a VM route: malformed is 400 here; well-formed but unknown is the agent's 404. */
export function vmIdParam (params: unknown): string {
  const id = (params as { id?: unknown } | undefined)?.id
  const ok = vmIdSchema.safeParse(id)
  if (!ok.success) throw new BadRequestError(`Expected the VM id to look like vm-1a2b3c4d5e6f (vm- then 6 to 40 lowercase letters or digits), got ${shown(id)}`)
  return ok.data
}

/** Parses a body against its schema; `what` says what the body is, for the message. */
export function parseBody<S extends z.ZodType> (schema: S, body: unknown, hint = ''): z.infer<S> {
  const ok = schema.safeParse(body)
  if (!ok.success) throw new BadRequestError(describeIssues(ok.error) + hint)
  return ok.data
}

/**
 * A route's query string: the parameters it takes, each at most once and
 * well formed. Parameters it does not take are ignored, as they always were:
 * a client that adds one (a cache buster, a tracking tag) keeps working.
 */
export function parseQuery<S extends z.ZodType> (schema: S, query: unknown, takes: string): z.infer<S> {
  const ok = schema.safeParse(query ?? {})
  if (ok.success) return ok.data
  const what = ok.error.issues.slice(0, 3).map(i => {
    if (i.code === 'unrecognized_keys') return `unknown parameter ${i.keys.map(k => shown(k)).join(', ')}`
    const path = i.path.length > 0 ? i.path.join('.') : 'query'
    return i.code === 'invalid_type' && i.expected === 'string' ? `${path}: given more than once` : `${path}: ${i.message}`
  }).join('; ')
  throw new BadRequestError(`bad query string: ${what} (this route takes ${takes})`)
}

export const noQuery = z.object({})

export const scopeQuery = z.object({ scope: z.enum(['local', 'cluster']).optional() })

/** `?wait=DURATION` of GET /v1/vms/:id: `500ms`, `5s`, or a bare number of seconds; at most a minute. */
export const waitQuery = z.object({
  wait: z.string().regex(/^\d{1,9}(\.\d{1,6})?(ms|s)?$/, `expected a duration like 500ms or 5s, at most ${MAX_VM_WAIT_MS / 1000}s`)
    .transform(s => s.endsWith('ms') ? Number(s.slice(0, -2)) : Number(s.replace(/s$/, '')) * 1000)
    .refine(ms => ms <= MAX_VM_WAIT_MS, `expected a duration like 500ms or 5s, at most ${MAX_VM_WAIT_MS / 1000}s`)
    .optional()
})

const eventId = z.string().regex(/^\d{1,15}$/, 'a whole number (an event id)').transform(Number)

export const eventsQuery = z.object({
  types: z.string().optional(),
  lastEventId: eventId.optional()
})

/** `?types=a,b` into a set of known types; an unknown one is refused, listing the known ones. */
export function eventTypes (list: string | undefined): Set<AgentEventType> | undefined {
  if (list == null) return undefined
  const types = list.split(',').map(t => t.trim()).filter(t => t !== '')
  const known = new Set<string>(EVENT_TYPES)
  const unknown = types.filter(t => !known.has(t))
  if (types.length === 0 || unknown.length > 0) {
    throw new BadRequestError(`Expected types to be a comma-separated list of ${EVENT_TYPES.join(', ')}; got ${unknown.length > 0 ? unknown.slice(0, 3).map(t => shown(t)).join(', ') : 'none'}`)
  }
  return new Set(types as AgentEventType[])
}

/** Where a stream resumes: the `Last-Event-ID` header (what EventSource sends on a reconnect) over `?lastEventId=`. */
export function lastEventId (header: string | string[] | undefined, query: number | undefined): number | undefined {
  if (header == null) return query
  const ok = eventId.safeParse(header)
  if (!ok.success) throw new BadRequestError(`Expected the Last-Event-ID header to be a whole number (an event id this agent sent), got ${shown(header)}`)
  return ok.data
}

/**
 * `Authorization: Bearer TOKEN`, the scheme in any case (RFC 7235: auth
 * schemes are case-insensitive), compared in constant time: the SHA-256 of
 * what came against the SHA-256 of the token, so that neither the bytes nor
 * the length of the token shows in how long a refusal takes (comparing the
 * raw bytes would need equal lengths first, and return early on a length).
 */
export function tokenMatches (header: string | undefined, token: string): boolean {
  const m = /^bearer[ \t]+(.+?)[ \t]*$/i.exec(header ?? '')
  const given = createHash('sha256').update(m?.[1] ?? '').digest()
  const want = createHash('sha256').update(token).digest()
  return timingSafeEqual(given, want) && m != null
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * The only body parser: JSON in UTF-8 (RFC 8259 allows no other charset on
 * the wire). Another charset is 415, not read as UTF-8; bytes that are not
 * UTF-8, or not JSON, are 400; an empty body is no body (`undefined`), which
 * a route with an optional body reads as `{}`.
 */
export function parseJson (req: FastifyRequest, body: Buffer): unknown {
  const charset = /;\s*charset\s*=\s*"?([^";\s]*)"?/i.exec(req.headers['content-type'] ?? '')?.[1]
  if (charset != null && !/^utf-?8$/i.test(charset)) {
    throw new UnsupportedMediaTypeError(`the body must be JSON in UTF-8: send Content-Type: application/json (or application/json; charset=utf-8), not charset=${shown(charset)}`)
  }
  let text: string
  try {
    text = utf8.decode(body)
  } catch {
    throw new BadRequestError('the request body is not valid UTF-8')
  }
  if (text.trim() === '') return undefined
  try {
    return JSON.parse(text, (key, value) => {
      if (key === '__proto__') throw new SyntaxError('the key "__proto__" is not allowed')
      return value
    })
  } catch (err: any) {
    throw new BadRequestError(`the request body is not valid JSON: ${String(err.message).slice(0, 200)}`)
  }
}
