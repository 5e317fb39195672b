/**
 * `discovery events`: follows an agent's `GET /v1/events` (server-sent
 * events, src/api/event-stream.ts), one line per event, or one JSON object
 * per line with `--json` (the event as the agent sent it: `{ id, type, atMs,
 * data }`). When the stream drops it reconnects with `Last-Event-ID`, so it
 * shows no event twice and, while the agent's buffer still holds them, none
 * is lost; after `MAX_TRIES` failed tries it exits 1. Ctrl-C exits 0.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { DEFAULT_API } from './client.ts'
import { OperationError, UsageError } from './errors.ts'
import { shortId } from './table.ts'

export interface EventsFlags {
  types?: string
  api?: string
  apiToken?: string
  json?: boolean
}

/** Reconnection tries after the stream drops: 0.25 s, then doubling up to 8 s, about 16 s in all (an agent restarts in a few). */
export const MAX_TRIES = 6
const FIRST_DELAY_MS = 250
const MAX_DELAY_MS = 8_000
/** Silence after which the connection is taken for dead: three of the agent's 15 s keep-alive comments. */
const IDLE_MS = 45_000

/** One server-sent event, as the agent frames it. */
export interface StreamEvent {
  id?: number
  type: string
  atMs: number
  data: Record<string, unknown>
}

export async function followEvents (flags: EventsFlags): Promise<void> {
  const api = (flags.api ?? process.env.DISCOVERY_API ?? DEFAULT_API).replace(/\/+$/, '')
  let url: URL
  try {
    url = new URL(`${api}/v1/events`)
  } catch {
    throw new UsageError(`Expected --api to be a URL like http://127.0.0.1:7100, got \`${api}\``)
  }
  if (flags.types != null) url.searchParams.set('types', flags.types)
  const token = flags.apiToken ?? process.env.DISCOVERY_API_TOKEN
  const stop = new AbortController()
  const quit = (): void => {
    stop.abort()
    process.exit(0)
  }
  process.once('SIGINT', quit)
  process.once('SIGTERM', quit)

  let lastId: string | undefined
  let connected = false
  let tries = 0
  while (true) {
    let cause: string
    try {
      await follow(url, api, token, lastId, stop.signal, {
        onOpen: () => {
          if (connected && tries > 0) process.stderr.write(`discovery: reconnected to ${api}\n`)
          connected = true
          tries = 0
        },
        onEvent: (id, event) => {
          if (id != null) lastId = id
          process.stdout.write((flags.json === true ? JSON.stringify(event) : eventLine(event)) + '\n')
        }
      })
      cause = 'the agent closed the stream'
    } catch (err: any) {
      if (err instanceof UsageError || err instanceof OperationError) throw err
      // Before the first answer, an agent that is not there is an error at once, like any other command.
      if (!connected) throw new OperationError(`cannot reach the agent at ${api} (${reason(err)}): start one with \`npm start\`, or pass --api URL`)
      cause = reason(err)
    }
    if (++tries > MAX_TRIES) throw new OperationError(`lost the event stream of ${api} and could not reconnect in ${MAX_TRIES} tries (${cause}): is the agent still running?`)
    const delay = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** (tries - 1))
    process.stderr.write(`discovery: ${cause}; reconnecting to ${api} in ${delay / 1000} s (try ${tries} of ${MAX_TRIES})\n`)
    await sleep(delay)
  }
}

function reason (err: any): string {
  return String(err?.cause?.code ?? err?.cause?.message ?? err?.message ?? err)
}

interface FollowHandlers {
  onOpen: () => void
  onEvent: (id: string | undefined, event: StreamEvent) => void
}

/** One connection: resolves when the agent ends the stream, throws when it breaks or stays silent too long. */
async function follow (url: URL, api: string, token: string | undefined, lastId: string | undefined, stop: AbortSignal, on: FollowHandlers): Promise<void> {
  const conn = new AbortController()
  const signal = AbortSignal.any([stop, conn.signal])
  const headers: Record<string, string> = { accept: 'text/event-stream' }
  if (token != null) headers.authorization = `Bearer ${token}`
  if (lastId != null) headers['last-event-id'] = lastId
  const res = await fetch(url, { headers, signal })
  if (res.status !== 200 || res.body == null) {
    const text = await res.text().catch(() => '')
    let message = `HTTP ${res.status}`
    try { message = JSON.parse(text).message ?? message } catch {}
    if (res.status === 400) throw new UsageError(`${message} (HTTP 400 from ${api})`)
    if (res.status < 500) throw new OperationError(`${message} (HTTP ${res.status} from ${api})`)
    throw new Error(`${message} (HTTP ${res.status})`)
  }
  on.onOpen()
  let idle = setTimeout(() => { conn.abort(new Error(`no data for ${IDLE_MS / 1000} s`)) }, IDLE_MS)
  const parser = new SseParser((id, type, data) => {
    let event: StreamEvent
    try {
      event = JSON.parse(data)
    } catch {
      event = { type, atMs: Date.now(), data: { raw: data } }
    }
    on.onEvent(id, event)
  })
  const decoder = new TextDecoder()
  try {
    for await (const chunk of res.body) {
      clearTimeout(idle)
      idle = setTimeout(() => { conn.abort(new Error(`no data for ${IDLE_MS / 1000} s`)) }, IDLE_MS)
      parser.push(decoder.decode(chunk, { stream: true }))
    }
  } catch (err) {
    throw conn.signal.aborted ? conn.signal.reason : err
  } finally {
    clearTimeout(idle)
  }
}

/**
 * The server-sent events format (WHATWG HTML, "Server-sent events"): lines
 * `field: value`, a blank line ends an event, `:` starts a comment.
 */
export class SseParser {
  readonly #onEvent: (id: string | undefined, type: string, data: string) => void
  #buffer = ''
  #type = ''
  #data: string[] = []
  #id: string | undefined

  constructor (onEvent: (id: string | undefined, type: string, data: string) => void) {
    this.#onEvent = onEvent
  }

  push (text: string): void {
    this.#buffer += text
    let nl: number
    while ((nl = this.#buffer.indexOf('\n')) >= 0) {
      const line = this.#buffer.slice(0, nl).replace(/\r$/, '')
      this.#buffer = this.#buffer.slice(nl + 1)
      this.#line(line)
    }
  }

  #line (line: string): void {
    if (line === '') {
      if (this.#data.length > 0) this.#onEvent(this.#id, this.#type === '' ? 'message' : this.#type, this.#data.join('\n'))
      this.#type = ''
      this.#data = []
      this.#id = undefined
      return
    }
    if (line.startsWith(':')) return
    const colon = line.indexOf(':')
    const field = colon < 0 ? line : line.slice(0, colon)
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '')
    if (field === 'event') this.#type = value
    else if (field === 'data') this.#data.push(value)
    else if (field === 'id' && !value.includes('\0')) this.#id = value
  }
}

const PEER_FIELDS = new Set(['node', 'peerId', 'from', 'to', 'initiator'])

/** `12:04:31.207Z  vm.placed            id=vm-1a2b3c4d5e6f node=…Ab3dE5fG7h cpu=2 memMiB=512` */
export function eventLine (e: StreamEvent): string {
  const time = Number.isFinite(e.atMs) ? new Date(e.atMs).toISOString().slice(11) : '?'
  const fields = Object.entries(e.data ?? {}).map(([k, v]) => {
    if (typeof v === 'string') return `${k}=${PEER_FIELDS.has(k) ? shortId(v) : v}`
    if (v != null && typeof v === 'object') return `${k}=${Object.values(v).join('/')}`
    return `${k}=${String(v)}`
  })
  return `${time}  ${String(e.type).padEnd(20)} ${fields.join(' ')}`.trimEnd()
}
