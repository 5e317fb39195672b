/**
 * Every error the API answers, in one table: the error's name to its HTTP
 * status and its `error` code. Handlers throw; `sendError` answers
 * `{ error, message }` from the table. A refused request (bad input, no or a
 * wrong token, an unknown route) is counted in
 * `discovery_invalid_messages_total{source="api"}`; an error the table does
 * not know is a bug of ours: 500 `internal`, logged with its stack.
 */
import type { FastifyReply } from 'fastify'
import { createRequire } from 'node:module'
import { DiscoveryError } from '../core/errors.ts'

// Through require, not `import … from 'node:http'`: an ES import of node:http reads every export of the
// module, lazy ones included, and so loads Node's fetch implementation (undici): 70 ms of CPU and 11 MiB
// resident in every agent, for a table of status texts.
const { STATUS_CODES } = createRequire(import.meta.url)('node:http') as typeof import('node:http')

/** The request itself is wrong: path, query, headers or body. */
export class BadRequestError extends DiscoveryError {
  static name = 'BadRequestError'
  static defaultMessage = 'the request is malformed'
}

export class UnauthorizedError extends DiscoveryError {
  static name = 'UnauthorizedError'
  static defaultMessage = 'send the API token as "Authorization: Bearer TOKEN"'
}

export class RouteNotFoundError extends DiscoveryError {
  static name = 'RouteNotFoundError'
  static defaultMessage = 'no such route'
}

export class MethodNotAllowedError extends DiscoveryError {
  static name = 'MethodNotAllowedError'
  static defaultMessage = 'this route does not take this method'
  /** What the route takes, for the `Allow` header. */
  readonly allow: string[]

  constructor (message?: string, allow: string[] = []) {
    super(message)
    this.allow = allow
  }
}

export class PayloadTooLargeError extends DiscoveryError {
  static name = 'PayloadTooLargeError'
  static defaultMessage = 'the request body is too large'
}

export class UriTooLongError extends DiscoveryError {
  static name = 'UriTooLongError'
  static defaultMessage = 'a path segment is too long'
}

export class UnsupportedMediaTypeError extends DiscoveryError {
  static name = 'UnsupportedMediaTypeError'
  static defaultMessage = 'send the body as application/json (UTF-8)'
}

/** Node's HTTP parser gave up on the request's headers: answered before any route runs. */
export class HeadersTooLargeError extends DiscoveryError {
  static name = 'HeadersTooLargeError'
  static defaultMessage = 'the request line and headers are larger than the server accepts (16 KiB)'
}

/** The client did not send its whole request in time. */
export class RequestTimeoutError extends DiscoveryError {
  static name = 'RequestTimeoutError'
  static defaultMessage = 'the request was not received in time'
}

/** `[status, error code]` by error name: the only place an error becomes a status. */
export const ERROR_TABLE: Readonly<Record<string, readonly [number, string]>> = Object.freeze({
  // The API's own refusals: the request was wrong.
  BadRequestError: [400, 'bad_request'],
  UnauthorizedError: [401, 'unauthorized'],
  RouteNotFoundError: [404, 'not_found'],
  MethodNotAllowedError: [405, 'method_not_allowed'],
  RequestTimeoutError: [408, 'request_timeout'],
  PayloadTooLargeError: [413, 'payload_too_large'],
  UriTooLongError: [414, 'uri_too_long'],
  UnsupportedMediaTypeError: [415, 'unsupported_media_type'],
  HeadersTooLargeError: [431, 'headers_too_large'],
  // The agent's failures (src/agent): the request was fine, the operation was not.
  VmNotFoundError: [404, 'not_found'],
  AdminDisabledError: [404, 'not_found'],
  MigrationRefusedError: [409, 'migration_refused'],
  MigrationBusyError: [409, 'migration_refused'],
  DemandMeasuredError: [409, 'demand_measured'],
  NoCapacityError: [503, 'no_capacity'],
  PeerUnreachableError: [503, 'peer_unreachable'],
  PlacementUncertainError: [504, 'placement_uncertain'],
  DeleteUncertainError: [504, 'delete_uncertain']
})

/** The errors that mean the client sent bad input: counted as such. */
const INPUT_ERRORS: ReadonlySet<string> = new Set([
  BadRequestError.name, UnauthorizedError.name, RouteNotFoundError.name, MethodNotAllowedError.name,
  PayloadTooLargeError.name, UriTooLongError.name, UnsupportedMediaTypeError.name, HeadersTooLargeError.name,
  RequestTimeoutError.name
])

/**
 * Fastify's own errors (`FST_ERR_*`, raised before a handler runs) as ours,
 * so that no framework code reaches a client. Its other 4xx errors, and a
 * body that broke off (a stream error Fastify marks 400), are bad requests
 * too; anything else stays what it was.
 */
export function fromFramework (err: any, bodyLimit: number): unknown {
  if (typeof err?.name === 'string' && ERROR_TABLE[err.name] != null) return err
  switch (err?.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new PayloadTooLargeError(`the request body is larger than ${bodyLimit} bytes`)
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new UnsupportedMediaTypeError()
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new BadRequestError('the request body does not match its Content-Length')
    case 'FST_ERR_BAD_URL':
      return new BadRequestError('the URL is malformed (a bad percent-encoding?)')
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new UriTooLongError('a path segment is too long: a VM id looks like vm-1a2b3c4d5e6f')
  }
  const status = typeof err?.statusCode === 'number' ? err.statusCode : 500
  if (status >= 400 && status < 500) return new BadRequestError(`the request could not be read (${typeof err.code === 'string' && !err.code.startsWith('FST_') ? err.code : 'malformed'})`)
  return err
}

export interface ErrorSenderInit {
  /** Counts (and logs once) a refused request. */
  invalid: (reason: string) => void
  /** Logs an error the table does not know. */
  internal: (err: unknown) => void
}

/** `sendError(reply, err)`: the answer for any error a route throws. */
export function errorSender (init: ErrorSenderInit): (reply: FastifyReply, err: unknown) => FastifyReply {
  return (reply, err) => {
    const e = err as { name?: unknown, message?: unknown }
    const name = typeof e?.name === 'string' ? e.name : ''
    const entry = ERROR_TABLE[name]
    if (entry == null) {
      init.internal(err)
      return reply.code(500).send({ error: 'internal', message: `the agent failed to answer (${name !== '' ? name : 'error'}): see its log` })
    }
    const message = typeof e.message === 'string' && e.message !== '' ? e.message : entry[1]
    if (INPUT_ERRORS.has(name)) init.invalid(message)
    if (err instanceof MethodNotAllowedError && err.allow.length > 0) reply.header('allow', err.allow.join(', '))
    return reply.code(entry[0]).send({ error: entry[1], message })
  }
}

/**
 * What Node's HTTP parser could not read (headers over its limit, not HTTP
 * at all, too slow) never reaches a route: answered here, on the socket, in
 * the same shape, and counted like any bad input.
 */
export function clientErrorHandler (invalid: (reason: string) => void): (err: NodeJS.ErrnoException, socket: import('node:stream').Duplex) => void {
  return (err, socket) => {
    if (err.code === 'ECONNRESET' || socket.destroyed) return
    const e = err.code === 'HPE_HEADER_OVERFLOW'
      ? new HeadersTooLargeError()
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? new RequestTimeoutError()
        : new BadRequestError(`the request is not valid HTTP (${err.code ?? 'parse error'})`)
    invalid(e.message)
    const [status, error] = ERROR_TABLE[e.name]
    const body = JSON.stringify({ error, message: e.message })
    if (socket.writable) socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? error}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`)
    socket.destroy()
  }
}
