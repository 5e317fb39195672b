/**
 * `GET /v1/events`: the agent's event log as server-sent events. One frame
 * per event:
 *
 *     id: 42
 *     event: vm.placed
 *     data: {"id":42,"type":"vm.placed","atMs":1767225600000,"data":{"id":"vm-…","node":"12D3…","cpu":2,"memMiB":512}}
 *
 * `data` is the whole event (id, type, time and the type's fields), so a
 * client that reads only the data lines misses nothing. A client resuming
 * (`Last-Event-ID`, or `?lastEventId=`) first gets the buffered events after
 * that id; when some were already dropped from the bounded buffer, an
 * `events.missed` frame comes first, without an `id:` (it must not move the
 * client's position): `data: {"type":"events.missed","atMs":…,"data":{"missed":N}}`,
 * with `"restarted":true` in its data when the asked id is ahead of this
 * agent's (it restarted, and its ids with it: the buffer is replayed from the
 * start). A comment line every 15 s keeps proxies from closing a quiet stream.
 */
import type { FastifyReply } from 'fastify'
import type { AgentEvent, AgentEventType } from '../agent/events.ts'
import type { EventLog } from '../agent/event-log.ts'

export interface EventStreamsInit {
  events: EventLog
  /** This agent's peer id, named in the stream's opening comment. */
  self: string
  /** Between comment lines on a quiet stream. Default 15 s: under the 30–60 s idle timeouts of common proxies. */
  keepAliveMs?: number
  /** Bytes a slow client may leave unread before its stream is closed (it resumes with Last-Event-ID). Default 1 MiB. */
  maxBufferedBytes?: number
  /** Reconnection delay suggested to EventSource clients (`retry:`). Default 2 s. */
  retryMs?: number
}

export interface StreamRequest {
  /** Resume after this id; undefined: only events from now on. */
  afterId?: number
  /** Only these types; undefined: all. */
  types?: ReadonlySet<AgentEventType>
}

export class EventStreams {
  readonly #init: Required<EventStreamsInit>
  /** How each open stream is closed: on the server's close, all of them. */
  readonly #open = new Set<() => void>()

  constructor (init: EventStreamsInit) {
    this.#init = {
      events: init.events,
      self: init.self,
      keepAliveMs: init.keepAliveMs ?? 15_000,
      maxBufferedBytes: init.maxBufferedBytes ?? 1024 * 1024,
      retryMs: init.retryMs ?? 2_000
    }
    for (const key of ['keepAliveMs', 'maxBufferedBytes', 'retryMs'] as const) {
      const v = this.#init[key]
      if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`Expected \`${key}\` to be a whole number >= 1, got \`${String(v)}\` (${typeof v})`)
    }
  }

  /** Streams now open. */
  get size (): number {
    return this.#open.size
  }

  /** Takes over the reply and streams until the client goes or the server closes. */
  serve (reply: FastifyReply, req: StreamRequest): void {
    const { events, keepAliveMs, maxBufferedBytes } = this.#init
    const raw = reply.raw
    reply.hijack()
    raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      // nginx buffers responses unless told not to.
      'x-accel-buffering': 'no'
    })
    let closed = false
    const close = (): void => {
      if (closed) return
      closed = true
      unsubscribe()
      clearInterval(keepAlive)
      this.#open.delete(close)
      if (!raw.writableEnded) raw.end()
    }
    const write = (text: string): void => {
      if (closed) return
      raw.write(text)
      // A client that reads slower than we emit would make us buffer without end: let it go and resume.
      if (raw.writableLength > maxBufferedBytes) close()
    }
    const wanted = (e: AgentEvent): boolean => req.types == null || req.types.has(e.type)

    // Replay and subscription in one synchronous step: no event can fall between them.
    const replay = req.afterId == null ? undefined : resume(events, req.afterId, req.types)
    const unsubscribe = events.onAny((e) => { if (wanted(e)) write(frame(e)) })
    const keepAlive = setInterval(() => { write(': keep-alive\n\n') }, keepAliveMs)
    keepAlive.unref()
    this.#open.add(close)
    raw.once('close', close)

    let head = `retry: ${this.#init.retryMs}\n: discovery events of ${this.#init.self}\n\n`
    if (replay != null) {
      if (replay.missed > 0 || replay.restarted) {
        const data = replay.restarted ? { missed: replay.missed, restarted: true } : { missed: replay.missed }
        head += `event: events.missed\ndata: ${JSON.stringify({ type: 'events.missed', atMs: Date.now(), data })}\n\n`
      }
      for (const e of replay.events) head += frame(e)
    }
    write(head)
  }

  /** Ends every open stream: the server is closing and would otherwise wait for them. */
  closeAll (): void {
    for (const close of [...this.#open]) close()
  }
}

function frame (e: AgentEvent): string {
  return `id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify({ id: e.id, type: e.type, atMs: e.atMs, data: e.data })}\n\n`
}

/** The buffered events after `afterId`; an id ahead of the log's is from a previous run of the agent. */
function resume (events: EventLog, afterId: number, types?: ReadonlySet<string>): { events: AgentEvent[], missed: number, restarted: boolean } {
  if (afterId > events.lastId) return { ...events.since(0, types), restarted: true }
  return { ...events.since(afterId, types), restarted: false }
}
