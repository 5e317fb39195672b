/**
 * `/discovery/place/1.0.0` and `/discovery/place/1.1.0`: length-prefixed
 * (unsigned varint) JSON requests, each answered by one response. Reserve
 * capacity with a lease, commit it with the VM's spec, or release it;
 * `delete` asks the owner to remove a VM. Both sides bound the message size,
 * time out, and validate what they receive.
 *
 * 1.0.0 carries one request and its response per stream. 1.1.0 carries any
 * number of them on one long-lived stream per pair of peers: requests may be
 * pipelined, the server takes them in the order they arrive and answers in
 * that order. A stream costs a yamux open and close and a multistream-select
 * round trip, several small frames each way: once per peer instead of once
 * per request. The server speaks both; the client asks for 1.1.0 and falls
 * back to 1.0.0 when the peer does not offer it.
 */
import type { Libp2p, PeerId, Stream } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { Uint8ArrayList } from 'uint8arraylist'
import { LIMITS, placeRequestSchema, placeResponseSchema, PROTOCOL_VERSION, type PlaceRequest, type PlaceResponse } from '../core/messages.ts'
import { decode, encode, MessageTooLargeError } from './codec.ts'
import { rpcExchange, rpcRequest } from './rpc.ts'

export const PLACE_PROTOCOL = '/discovery/place/1.0.0'
/** The same messages, many requests per stream, answered in order. */
export const PLACE_PROTOCOL_PIPELINED = '/discovery/place/1.1.0'

export interface PlaceServerInit {
  libp2p: Libp2p
  handle: (req: PlaceRequest, from: string) => Promise<PlaceResponse>
  onInvalid: (from: string, reason: string) => void
  /** Longest wait for a request's bytes once they started, and for its answer to be written. */
  timeoutMs: number
  /** How long a pipelined stream may stay without any request before the server closes it. Default 5 min. */
  idleTimeoutMs?: number
}

export class PlaceTimeoutError extends Error {
  static name = 'PlaceTimeoutError'
  constructor (message = 'the peer did not answer in time') {
    super(message)
    this.name = PlaceTimeoutError.name
  }
}

export class PlaceStreamClosedError extends Error {
  static name = 'PlaceStreamClosedError'
  constructor (message = 'the stream to the peer closed before it answered') {
    super(message)
    this.name = PlaceStreamClosedError.name
  }
}

/**
 * The request never left this node (the stream to the peer could not be
 * opened, or was already closed): the peer cannot have acted on it. Any
 * other failure may come after the peer took the request.
 */
export class PlaceUnsentError extends Error {
  static name = 'PlaceUnsentError'
  constructor (cause?: Error) {
    super(cause != null ? `not sent: ${cause.name}: ${cause.message}` : 'not sent: the stream to the peer is closed', { cause })
    this.name = PlaceUnsentError.name
  }
}

/** Requests in progress or answers unread on one pipelined stream before the server gives up on it: a client that never reads is cut off. */
const MAX_QUEUED_ANSWERS = 1024
const MAX_UNREAD_BYTES = 4 * 1024 * 1024

// ---------------------------------------------------------------------------
// Framing: an unsigned varint length, then that many bytes.

export function frame (payload: Uint8Array): Uint8Array {
  let n = payload.byteLength
  let len = 1
  while (n >= 0x80) { n = Math.floor(n / 128); len++ }
  const out = new Uint8Array(len + payload.byteLength)
  n = payload.byteLength
  let i = 0
  while (n >= 0x80) {
    out[i++] = (n & 0x7f) | 0x80
    n = Math.floor(n / 128)
  }
  out[i++] = n
  out.set(payload, i)
  return out
}

/** Splits a byte stream into frames; a frame larger than `maxBytes` is an error (MessageTooLargeError). */
export class FrameReader {
  readonly #buf = new Uint8ArrayList()
  readonly #maxBytes: number

  constructor (maxBytes: number) {
    this.#maxBytes = maxBytes
  }

  /** Bytes held that are not a whole frame yet. */
  get buffered (): number {
    return this.#buf.byteLength
  }

  push (chunk: Uint8Array | Iterable<Uint8Array>): void {
    if (chunk instanceof Uint8Array) this.#buf.append(chunk)
    else for (const b of chunk) this.#buf.append(b)
  }

  /** The next whole frame, or undefined until more bytes arrive. */
  next (): Uint8Array | undefined {
    const buf = this.#buf
    const have = buf.byteLength
    let len = 0
    let mul = 1
    let i = 0
    while (true) {
      if (i >= have) return undefined
      if (i >= 4) throw new MessageTooLargeError()
      const b = buf.get(i++)
      len += (b & 0x7f) * mul
      if ((b & 0x80) === 0) break
      mul *= 128
    }
    if (len > this.#maxBytes) throw new MessageTooLargeError()
    if (have - i < len) return undefined
    const payload = buf.subarray(i, i + len)
    buf.consume(i + len)
    return payload
  }
}

/** An async iterable queue to feed a stream's sink: what is queued together goes out as one chunk. */
export class Outbox implements AsyncIterable<Uint8Array> {
  #items: Uint8Array[] = []
  #bytes = 0
  #wake?: () => void
  #ended = false

  /** Bytes queued and not yet taken by the sink. */
  get bytes (): number {
    return this.#bytes
  }

  push (bytes: Uint8Array): void {
    if (this.#ended) return
    this.#items.push(bytes)
    this.#bytes += bytes.byteLength
    this.#wake?.()
  }

  end (): void {
    this.#ended = true
    this.#wake?.()
  }

  async * [Symbol.asyncIterator] (): AsyncGenerator<Uint8Array> {
    while (true) {
      if (this.#items.length > 0) {
        const items = this.#items
        const bytes = this.#bytes
        this.#items = []
        this.#bytes = 0
        if (items.length === 1) {
          yield items[0]
        } else {
          const joined = new Uint8Array(bytes)
          let at = 0
          for (const b of items) {
            joined.set(b, at)
            at += b.byteLength
          }
          yield joined
        }
        continue
      }
      if (this.#ended) return
      await new Promise<void>(resolve => { this.#wake = resolve })
      this.#wake = undefined
    }
  }
}

// ---------------------------------------------------------------------------
// Server

export class PlaceServer {
  readonly #init: PlaceServerInit
  #started = false

  constructor (init: PlaceServerInit) {
    this.#init = init
  }

  async start (): Promise<void> {
    if (this.#started) return
    this.#started = true
    const handler = ({ stream, connection }: { stream: Stream, connection: { remotePeer: PeerId } }): void => {
      void this.#serve(stream, connection.remotePeer.toString())
    }
    await this.#init.libp2p.handle([PLACE_PROTOCOL_PIPELINED, PLACE_PROTOCOL], handler, { maxInboundStreams: 1024, runOnLimitedConnection: false })
  }

  async stop (): Promise<void> {
    if (!this.#started) return
    this.#started = false
    await this.#init.libp2p.unhandle([PLACE_PROTOCOL_PIPELINED, PLACE_PROTOCOL])
  }

  /**
   * Reads requests until the client closes its side. Each request is handed
   * to the agent the moment it is decoded, in arrival order (so a pipelined
   * commit follows its reserve), and answered in that same order.
   */
  async #serve (stream: Stream, from: string): Promise<void> {
    const { timeoutMs } = this.#init
    const idleMs = this.#init.idleTimeoutMs ?? 300_000
    const out = new Outbox()
    const reader = new FrameReader(LIMITS.maxMessageBytes)
    let queued = 0
    let answered: Promise<void> = Promise.resolve()
    let failed = false
    const fail = (err: Error): void => {
      if (failed) return
      failed = true
      out.end()
      stream.abort(err)
    }
    const sunk = stream.sink(out).catch((err: Error) => { fail(err) })
    // Whole frames wait at most `timeoutMs` for their last byte; between requests the stream may idle for `idleMs`.
    let timer: NodeJS.Timeout | undefined
    const arm = (): void => {
      if (timer != null) clearTimeout(timer)
      const partial = reader.buffered > 0
      timer = setTimeout(() => { fail(new PlaceTimeoutError(partial ? 'a request did not arrive whole in time' : 'the stream stayed idle too long')) }, partial ? timeoutMs : idleMs)
      timer.unref()
    }
    const answer = (res: PlaceResponse | Promise<PlaceResponse>): void => {
      // Taken care of in its turn below; until then a rejection must not count as unhandled.
      if (res instanceof Promise) res.catch(noop)
      queued++
      answered = answered.then(async () => {
        const r = await res
        queued--
        out.push(frame(encode(r)))
      })
      answered.catch((err: Error) => { fail(err) })
    }
    try {
      arm()
      reading: for await (const chunk of stream.source) {
        reader.push(chunk)
        while (true) {
          let bytes: Uint8Array | undefined
          let req: PlaceRequest
          try {
            bytes = reader.next()
            if (bytes == null) break
            req = decode(placeRequestSchema, bytes)
          } catch (err: any) {
            // A bad request is answered, counted and ends the stream: what follows it cannot be trusted to be framed right.
            this.#init.onInvalid(from, err.message)
            answer({ v: PROTOCOL_VERSION, ok: false, reason: `invalid request: ${String(err.message).slice(0, 300)}` })
            break reading
          }
          answer(this.#init.handle(req, from))
          if (queued > MAX_QUEUED_ANSWERS || out.bytes > MAX_UNREAD_BYTES) {
            fail(new Error('too many answers unread'))
            return
          }
        }
        arm()
      }
      if (timer != null) clearTimeout(timer)
      await answered
      out.end()
      await raceTimeout(sunk, timeoutMs)
      if (!failed) await stream.close({ signal: AbortSignal.timeout(timeoutMs) })
    } catch (err: any) {
      fail(err)
    } finally {
      if (timer != null) clearTimeout(timer)
    }
  }
}

function noop (): void {}

async function raceTimeout (p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  try {
    await Promise.race([p, new Promise((_resolve, reject) => { timer = setTimeout(() => { reject(new PlaceTimeoutError()) }, ms) })])
  } finally {
    clearTimeout(timer)
  }
}

// ---------------------------------------------------------------------------
// Client

interface Pending {
  resolve: (res: PlaceResponse) => void
  reject: (err: Error) => void
  timer: NodeJS.Timeout
}

/** How long an unused pipelined stream stays open on the client; under the server's idle timeout. */
const CLIENT_IDLE_MS = 30_000

/** One long-lived pipelined stream to one peer. */
class Channel {
  readonly #onClosed: () => void
  readonly #out = new Outbox()
  /** Requests written before the stream was open. */
  #early: Uint8Array[] | undefined = []
  readonly #pending: Pending[] = []
  #stream?: Stream
  #closed = false
  #idle?: NodeJS.Timeout

  constructor (onClosed: () => void) {
    this.#onClosed = onClosed
  }

  get closed (): boolean {
    return this.#closed
  }

  /** Opens the stream; resolves to false when the peer only speaks 1.0.0 (the stream is then handed back for one request). */
  async open (libp2p: Libp2p, peer: PeerId | Multiaddr[], timeoutMs: number): Promise<Stream | undefined> {
    let stream: Stream
    try {
      stream = await libp2p.dialProtocol(peer, [PLACE_PROTOCOL_PIPELINED, PLACE_PROTOCOL], { signal: AbortSignal.timeout(timeoutMs) })
    } catch (err: any) {
      this.close(new PlaceUnsentError(err))
      throw err
    }
    if (this.#closed) {
      stream.abort(new PlaceStreamClosedError('closed while opening'))
      return undefined
    }
    if (stream.protocol !== PLACE_PROTOCOL_PIPELINED) return stream
    this.#stream = stream
    for (const bytes of this.#early ?? []) this.#out.push(bytes)
    this.#early = undefined
    stream.sink(this.#out).catch((err: Error) => { this.close(err) })
    void this.#read(stream)
    return undefined
  }

  request (req: PlaceRequest, timeoutMs: number): Promise<PlaceResponse> {
    if (this.#closed) return Promise.reject(new PlaceUnsentError())
    if (this.#idle != null) {
      clearTimeout(this.#idle)
      this.#idle = undefined
    }
    const bytes = frame(encode(req))
    return new Promise<PlaceResponse>((resolve, reject) => {
      const timer = setTimeout(() => {
        // Answers come in order: one that is late holds back every later one, so the stream goes.
        this.close(new PlaceTimeoutError(`no answer from the peer within ${timeoutMs} ms`))
      }, timeoutMs)
      timer.unref()
      this.#pending.push({ resolve, reject, timer })
      if (this.#early != null) this.#early.push(bytes)
      else this.#out.push(bytes)
    })
  }

  close (err?: Error): void {
    if (this.#closed) return
    this.#closed = true
    if (this.#idle != null) clearTimeout(this.#idle)
    this.#onClosed()
    const reason = err ?? new PlaceStreamClosedError()
    for (const p of this.#pending.splice(0)) {
      clearTimeout(p.timer)
      p.reject(reason)
    }
    this.#out.end()
    if (this.#stream != null) {
      if (err != null) this.#stream.abort(err)
      else void this.#stream.close().catch(() => {})
    }
  }

  async #read (stream: Stream): Promise<void> {
    const reader = new FrameReader(LIMITS.maxMessageBytes)
    try {
      for await (const chunk of stream.source) {
        reader.push(chunk)
        let bytes: Uint8Array | undefined
        while ((bytes = reader.next()) != null) {
          const p = this.#pending.shift()
          if (p == null) throw new PlaceStreamClosedError('the peer answered a request it was not asked')
          clearTimeout(p.timer)
          try {
            p.resolve(decode(placeResponseSchema, bytes))
          } catch (err: any) {
            p.reject(err)
          }
        }
        if (this.#pending.length === 0 && !this.#closed) this.#armIdle()
      }
      this.close()
    } catch (err: any) {
      this.close(err)
    }
  }

  #armIdle (): void {
    if (this.#idle != null) clearTimeout(this.#idle)
    this.#idle = setTimeout(() => { if (this.#pending.length === 0) this.close() }, CLIENT_IDLE_MS)
    this.#idle.unref()
  }
}

/** Per libp2p node: the pipelined stream to each peer, and the peers that only speak 1.0.0. */
interface ClientState {
  channels: Map<string, Channel>
  legacy: Set<string>
}

const clients = new WeakMap<Libp2p, ClientState>()

function peerKey (peer: PeerId | Multiaddr[]): string | undefined {
  if (!Array.isArray(peer)) return peer.toString()
  for (const ma of peer) {
    const id = ma.getPeerId()
    if (id != null) return id
  }
  return undefined
}

/**
 * Sends one request and waits for its answer. Requests to one peer share one
 * pipelined stream and are written in the order of the calls: a commit sent
 * right after its reserve, without waiting, reaches the owner after it.
 */
export async function placeRequest (libp2p: Libp2p, peer: PeerId | Multiaddr[], req: PlaceRequest, timeoutMs: number): Promise<PlaceResponse> {
  const key = peerKey(peer)
  if (key == null) return await placeRequestOnce(libp2p, peer, req, timeoutMs)
  let state = clients.get(libp2p)
  if (state == null) {
    state = { channels: new Map(), legacy: new Set() }
    clients.set(libp2p, state)
  }
  if (state.legacy.has(key)) return await placeRequestOnce(libp2p, peer, req, timeoutMs)
  let channel = state.channels.get(key)
  if (channel == null || channel.closed) {
    const ch: Channel = new Channel(() => { if (state.channels.get(key) === ch) state.channels.delete(key) })
    state.channels.set(key, ch)
    channel = ch
    const answer = ch.request(req, timeoutMs)
    answer.catch(noop)
    let legacyStream: Stream | undefined
    try {
      legacyStream = await ch.open(libp2p, peer, timeoutMs)
    } catch {
      // The request fails with the channel; its rejection says why.
    }
    if (legacyStream != null) {
      // The peer speaks 1.0.0 only: one request per stream, from now on.
      state.legacy.add(key)
      ch.close(new PlaceStreamClosedError('the peer speaks /discovery/place/1.0.0 only'))
      return await rpcExchange(legacyStream, req, placeResponseSchema, timeoutMs)
    }
    return await answer
  }
  return await channel.request(req, timeoutMs)
}

/** 1.0.0: one request on a stream of its own. A failed call aborts the stream and rethrows. */
export async function placeRequestOnce (libp2p: Libp2p, peer: PeerId | Multiaddr[], req: PlaceRequest, timeoutMs: number): Promise<PlaceResponse> {
  return await rpcRequest(libp2p, peer, PLACE_PROTOCOL, req, placeResponseSchema, timeoutMs)
}
