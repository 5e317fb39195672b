/**
 * One length-prefixed JSON request and one response per stream, for the
 * stream protocols (`/discovery/migrate/1.0.0`, `/discovery/rebalance/1.0.0`,
 * and the client side of `/discovery/place/1.0.0`):
 * a maximum message size, a timeout on both sides, and validation of what is
 * received against its schema. A bad request is answered with an error,
 * reported, and never reaches the handler; so is one cut short. A stream
 * that ends, is reset or stays silent before its first byte is dropped
 * without a report: no input arrived, the peer went away (two agents closing
 * the connection between them at once each say bye, net/farewell.ts, and
 * each close cuts the other's bye short) or is too slow.
 */
import { DiscoveryError } from '../core/errors.ts'
import type { Libp2p, PeerId, Stream } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { lpStream } from 'it-length-prefixed-stream'
import type { z } from 'zod'
import { LIMITS, PROTOCOL_VERSION } from '../core/messages.ts'
import { decode, encode } from './codec.ts'
import { deadline, withDeadline } from './deadline.ts'

export class RpcTimeoutError extends DiscoveryError {
  static name = 'RpcTimeoutError'
  static defaultMessage = 'the peer did not answer in time'
}

export interface RpcServerInit<Req extends z.ZodType> {
  libp2p: Libp2p
  protocol: string
  schema: Req
  handle: (req: z.infer<Req>, from: string) => Promise<unknown>
  onInvalid: (from: string, reason: string) => void
  timeoutMs: number
}

export class RpcServer<Req extends z.ZodType> {
  readonly #init: RpcServerInit<Req>
  #started = false

  constructor (init: RpcServerInit<Req>) {
    this.#init = init
  }

  async start (): Promise<void> {
    if (this.#started) return
    this.#started = true
    await this.#init.libp2p.handle(this.#init.protocol, ({ stream, connection }) => {
      void this.#serve(stream, connection.remotePeer.toString())
    }, { maxInboundStreams: 1024 })
  }

  async stop (): Promise<void> {
    if (!this.#started) return
    this.#started = false
    await this.#init.libp2p.unhandle(this.#init.protocol)
  }

  async #serve (stream: Stream, from: string): Promise<void> {
    const { signal, clear } = deadline(this.#init.timeoutMs)
    let received = 0
    const source = (async function * () {
      for await (const chunk of stream.source) {
        received += chunk.byteLength
        yield chunk
      }
    })()
    const lp = lpStream({ source, sink: stream.sink } as unknown as Stream, { maxDataLength: LIMITS.maxMessageBytes })
    try {
      const got = await this.#read(lp, signal, () => received)
      if (got == null) {
        stream.abort(new Error('the stream ended before its first byte'))
        return
      }
      if ('invalid' in got) {
        this.#init.onInvalid(from, got.invalid)
        await lp.write(encode({ v: PROTOCOL_VERSION, ok: false, reason: `invalid request: ${got.invalid.slice(0, 300)}` }), { signal })
        await stream.close({ signal })
        return
      }
      const res = await this.#init.handle(got.req, from)
      await lp.write(encode(res), { signal })
      await stream.close({ signal })
    } catch (err: any) {
      stream.abort(err)
    } finally {
      clear()
    }
  }

  /** The request; `invalid` and why for bad input; undefined when the stream ended, was reset or stayed silent before its first byte. */
  async #read (lp: ReturnType<typeof lpStream>, signal: AbortSignal, received: () => number): Promise<{ req: z.infer<Req> } | { invalid: string } | undefined> {
    let bytes: Uint8Array
    try {
      bytes = (await lp.read({ signal })).subarray()
    } catch (err: any) {
      // Any byte makes it input: a frame cut short, or one whose length is over the limit.
      return received() > 0 ? { invalid: String(err.message) } : undefined
    }
    try {
      return { req: decode(this.#init.schema, bytes) }
    } catch (err: any) {
      return { invalid: String(err.message) }
    }
  }
}

/** Sends one request and waits for its answer; a failed call aborts the stream and rethrows. */
export async function rpcRequest<Res extends z.ZodType> (libp2p: Libp2p, peer: PeerId | Multiaddr[], protocol: string, req: unknown, schema: Res, timeoutMs: number): Promise<z.infer<Res>> {
  return await withDeadline(timeoutMs, async (signal) => {
    let stream: Stream
    try {
      stream = await libp2p.dialProtocol(peer, protocol, { signal })
    } catch (err: any) {
      if (signal.aborted) throw new RpcTimeoutError(`no answer from the peer within ${timeoutMs} ms`)
      throw err
    }
    return await exchange(stream, req, schema, signal, timeoutMs)
  })
}

/** One request and its answer on a stream already open (and negotiated); a failed call aborts the stream and rethrows. */
export async function rpcExchange<Res extends z.ZodType> (stream: Stream, req: unknown, schema: Res, timeoutMs: number): Promise<z.infer<Res>> {
  return await withDeadline(timeoutMs, async (signal) => await exchange(stream, req, schema, signal, timeoutMs))
}

async function exchange<Res extends z.ZodType> (stream: Stream, req: unknown, schema: Res, signal: AbortSignal, timeoutMs: number): Promise<z.infer<Res>> {
  try {
    const lp = lpStream(stream, { maxDataLength: LIMITS.maxMessageBytes })
    await lp.write(encode(req), { signal })
    const res = decode(schema, (await lp.read({ signal })).subarray())
    await stream.close({ signal })
    return res
  } catch (err: any) {
    stream.abort(err)
    if (signal.aborted) throw new RpcTimeoutError(`no answer from the peer within ${timeoutMs} ms`)
    throw err
  }
}
