/**
 * The asking side of `/discovery/place`: one long-lived 1.1.0 stream per peer,
 * requests written in the order of the calls and answered in that order, so
 * that a commit sent right behind its reserve, without waiting, reaches the
 * owner after it. A stream costs a yamux open and close and a
 * multistream-select round trip: once per peer instead of once per request.
 * A peer that does not offer 1.1.0 gets 1.0.0, one request per stream.
 *
 * Every failure says whether the request may have reached the peer:
 * PlaceUnsentError only when it never left this node (the placer then moves
 * on safely); PlaceTimeoutError and PlaceStreamClosedError when it may have.
 */
import type { Libp2p, PeerId, Stream } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import * as lp from 'it-length-prefixed'
import { pushableV, type PushableV } from 'it-pushable'
import { LIMITS, placeResponseSchema, type PlaceRequest, type PlaceResponse } from '../core/messages.ts'
import { expectNumber } from '../core/options.ts'
import { decode, encode } from './codec.ts'
import { withDeadline } from './deadline.ts'
import { joined, PlaceStreamClosedError, PlaceTimeoutError, PlaceUnsentError, type Frame } from './place-wire.ts'
import { PLACE_PROTOCOL, PLACE_PROTOCOL_PIPELINED } from './protocols.ts'
import { rpcExchange } from './rpc.ts'

export interface PlaceClientInit {
  libp2p: Pick<Libp2p, 'dialProtocol'>
  /** Longest wait for an answer, from the call (dialling included). */
  timeoutMs: number
  /**
   * How long an unused pipelined stream stays open. Default 30 s: well under
   * the server's idle timeout (5 min), so that this side closes it — a request
   * written while the server closes would be lost, and its fate unknown.
   */
  idleMs?: number
}

export interface PlaceRequestOptions {
  /** Gives up on the request: PlaceUnsentError if it was not written yet, the signal's reason otherwise. */
  signal?: AbortSignal
}

export const DEFAULT_CLIENT_IDLE_MS = 30_000
/** Peers remembered as speaking 1.0.0 only; the set starts over beyond this. */
const MAX_LEGACY_PEERS = 10_000

export class PlaceClient {
  readonly #libp2p: Pick<Libp2p, 'dialProtocol'>
  readonly #timeoutMs: number
  readonly #idleMs: number
  readonly #channels = new Map<string, Channel>()
  readonly #legacy = new Set<string>()
  #stopped = false

  constructor (init: PlaceClientInit) {
    this.#libp2p = init.libp2p
    this.#timeoutMs = expectNumber('timeoutMs', init.timeoutMs, { above: 0 })
    this.#idleMs = expectNumber('idleMs', init.idleMs ?? DEFAULT_CLIENT_IDLE_MS, { above: 0 })
  }

  /** Sends one request and waits for its answer. */
  async request (peer: PeerId | Multiaddr[], req: PlaceRequest, options: PlaceRequestOptions = {}): Promise<PlaceResponse> {
    if (this.#stopped) throw new PlaceUnsentError(new PlaceStreamClosedError('the place client is stopped'))
    if (options.signal?.aborted === true) throw new PlaceUnsentError(options.signal.reason)
    const key = peerKey(peer)
    if (key == null || this.#legacy.has(key)) return await this.#once(peer, req, options.signal)
    let channel = this.#channels.get(key)
    if (channel == null || !channel.usable) {
      channel?.close()
      const ch: Channel = new Channel(this.#idleMs, () => { if (this.#channels.get(key) === ch) this.#channels.delete(key) })
      this.#channels.set(key, ch)
      channel = ch
      const answer = ch.request(req, this.#timeoutMs, options.signal)
      void this.#open(ch, key, peer)
      return await answer
    }
    return await channel.request(req, this.#timeoutMs, options.signal)
  }

  /** Closes every stream; requests waiting for an answer fail with PlaceStreamClosedError. Idempotent. */
  stop (): void {
    this.#stopped = true
    for (const ch of [...this.#channels.values()]) ch.close(new PlaceStreamClosedError('the place client stopped'))
    this.#channels.clear()
  }

  async #open (ch: Channel, key: string, peer: PeerId | Multiaddr[]): Promise<void> {
    const legacy = await ch.open(this.#libp2p, peer, this.#timeoutMs)
    if (legacy == null) return
    // The peer speaks 1.0.0 only: one request per stream, from now on; what was queued goes that way.
    if (this.#legacy.size >= MAX_LEGACY_PEERS) this.#legacy.clear()
    this.#legacy.add(key)
    const queued = ch.takeQueued()
    if (queued.length === 0) void legacy.close().catch(() => {})
    queued.forEach((p, i) => {
      // From here on each request has the timeout of its own 1.0.0 exchange.
      p.detach()
      const call = i === 0 ? this.#exchange(legacy, p.req) : this.#once(peer, p.req, p.signal)
      call.then(p.resolve, p.reject)
    })
  }

  /** 1.0.0: one request on a stream of its own. */
  async #once (peer: PeerId | Multiaddr[], req: PlaceRequest, signal?: AbortSignal): Promise<PlaceResponse> {
    let stream: Stream
    try {
      stream = await withDeadline(this.#timeoutMs, async timeout => await this.#libp2p.dialProtocol(peer, PLACE_PROTOCOL, { signal: signal == null ? timeout : AbortSignal.any([timeout, signal]) }))
    } catch (err) {
      throw new PlaceUnsentError(err)
    }
    return await this.#exchange(stream, req)
  }

  async #exchange (stream: Stream, req: PlaceRequest): Promise<PlaceResponse> {
    return await rpcExchange(stream, req, placeResponseSchema, this.#timeoutMs)
  }
}

interface Pending {
  req: PlaceRequest
  signal?: AbortSignal
  /** The framed request, until it is handed to the stream. */
  frame?: Frame
  /** The caller gave up after it was written: its answer is read and dropped. */
  dropped: boolean
  resolve: (res: PlaceResponse) => void
  reject: (err: Error) => void
  /** Stops watching the request's timeout and the caller's signal. */
  detach: () => void
}

/** One long-lived pipelined stream to one peer. */
class Channel {
  readonly #idleMs: number
  readonly #onClosed: () => void
  readonly #out: PushableV<Frame> = pushableV()
  /** In the order written: the n-th answer is the first one's. */
  readonly #pending: Pending[] = []
  /** Aborts the dial when the channel closes first. */
  readonly #closing = new AbortController()
  #stream?: Stream
  #closed = false
  #idle?: NodeJS.Timeout

  constructor (idleMs: number, onClosed: () => void) {
    this.#idleMs = idleMs
    this.#onClosed = onClosed
  }

  /** Not closed, and its stream (once open) still takes writes. */
  get usable (): boolean {
    const s = this.#stream
    return !this.#closed && (s == null || (s.status === 'open' && s.writeStatus === 'writing'))
  }

  /** Opens the stream; returns it instead when the peer speaks 1.0.0 only (the channel is then done). */
  async open (libp2p: Pick<Libp2p, 'dialProtocol'>, peer: PeerId | Multiaddr[], timeoutMs: number): Promise<Stream | undefined> {
    let stream: Stream
    try {
      stream = await withDeadline(timeoutMs, async timeout =>
        await libp2p.dialProtocol(peer, [PLACE_PROTOCOL_PIPELINED, PLACE_PROTOCOL], { signal: AbortSignal.any([timeout, this.#closing.signal]) }))
    } catch (err: any) {
      this.close(err)
      return undefined
    }
    if (this.#closed) {
      stream.abort(new PlaceStreamClosedError('closed while opening'))
      return undefined
    }
    if (stream.protocol !== PLACE_PROTOCOL_PIPELINED) return stream
    this.#stream = stream
    for (const p of this.#pending) this.#write(p)
    stream.sink(joined(this.#out)).catch((err: Error) => { this.close(err) })
    void this.#read(stream)
    return undefined
  }

  /** Requests not written yet, taken away from the channel, which closes. */
  takeQueued (): Pending[] {
    const queued = this.#pending.filter(p => p.frame != null)
    this.#pending.length = 0
    this.close()
    return queued
  }

  request (req: PlaceRequest, timeoutMs: number, signal?: AbortSignal): Promise<PlaceResponse> {
    if (this.#closed) return Promise.reject(new PlaceUnsentError())
    clearTimeout(this.#idle)
    return new Promise<PlaceResponse>((resolve, reject) => {
      // A timer cleared with the answer, not AbortSignal.timeout: that one fires later whatever happened, building a
      // DOMException with its stack each time (two per create, on a path taken thousands of times a second in a cluster).
      let timer: NodeJS.Timeout | undefined
      const detach = (): void => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
      }
      const p: Pending = {
        req,
        signal,
        frame: lp.encode.single(encode(req)),
        dropped: false,
        resolve: (res) => { detach(); resolve(res) },
        reject: (err) => { detach(); reject(err) },
        detach
      }
      // Answers come in order: one that is late holds back every later one, so the stream goes.
      const onTimeout = (): void => { this.close(new PlaceTimeoutError(`no answer from the peer within ${timeoutMs} ms`)) }
      const onAbort = (): void => { this.#drop(p, signal?.reason) }
      timer = setTimeout(onTimeout, timeoutMs)
      timer.unref()
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#pending.push(p)
      if (this.#stream != null) this.#write(p)
    })
  }

  /**
   * Fails every request waiting: those written with `err` (as a Place error),
   * those not written yet as not sent. Idempotent.
   */
  close (err?: Error): void {
    if (this.#closed) return
    this.#closed = true
    clearTimeout(this.#idle)
    this.#closing.abort()
    this.#onClosed()
    const reason = placeError(err)
    for (const p of this.#pending.splice(0)) {
      if (p.frame != null) p.reject(new PlaceUnsentError(err ?? reason))
      else if (!p.dropped) p.reject(reason)
    }
    this.#out.end()
    const s = this.#stream
    if (s == null) return
    if (err != null) s.abort(err)
    else void withDeadline(5_000, async signal => { await s.close({ signal }) }).catch((e: Error) => { s.abort(e) })
  }

  #write (p: Pending): void {
    if (p.frame == null) return
    this.#out.push(p.frame)
    p.frame = undefined
  }

  #drop (p: Pending, reason: unknown): void {
    const err = reason instanceof Error ? reason : new Error(String(reason))
    if (p.frame != null) {
      // Never written: it can leave the queue and the peer never sees it.
      const i = this.#pending.indexOf(p)
      if (i >= 0) this.#pending.splice(i, 1)
      p.reject(new PlaceUnsentError(err))
      return
    }
    p.dropped = true
    p.reject(err)
  }

  async #read (stream: Stream): Promise<void> {
    try {
      for await (const bytes of lp.decode(stream.source, { maxDataLength: LIMITS.maxMessageBytes })) {
        const p = this.#pending.shift()
        if (p == null) throw new PlaceStreamClosedError('the peer answered a request it was not asked')
        if (!p.dropped) {
          try {
            p.resolve(decode(placeResponseSchema, bytes.subarray()))
          } catch (err: any) {
            p.reject(err)
          }
        }
        if (this.#pending.length === 0 && !this.#closed) this.#armIdle()
      }
      this.close()
    } catch (err: any) {
      this.close(err instanceof Error ? err : new Error(String(err)))
    }
  }

  #armIdle (): void {
    clearTimeout(this.#idle)
    this.#idle = setTimeout(() => { if (this.#pending.length === 0) this.close() }, this.#idleMs)
    this.#idle.unref()
  }
}

/** What a written request fails with: a Place error as it is, anything else as the stream's closing. */
function placeError (err: Error | undefined): Error {
  if (err == null) return new PlaceStreamClosedError()
  if (err.name === PlaceTimeoutError.name || err.name === PlaceStreamClosedError.name) return err
  return new PlaceStreamClosedError(`the stream to the peer failed: ${err.name}: ${err.message}`, { cause: err })
}

function peerKey (peer: PeerId | Multiaddr[]): string | undefined {
  if (!Array.isArray(peer)) return peer.toString()
  for (const ma of peer) {
    const id = ma.getPeerId()
    if (id != null) return id
  }
  return undefined
}
