/**
 * `/discovery/place/1.0.0`: one length-prefixed JSON request, one response,
 * per stream. Reserve capacity with a lease, commit it with the VM's spec,
 * or release it; `delete` asks the owner to remove a VM. Both sides bound the
 * message size, time out, and validate what they receive.
 */
import type { Libp2p, PeerId, Stream } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { lpStream } from 'it-length-prefixed-stream'
import { LIMITS, placeRequestSchema, placeResponseSchema, PROTOCOL_VERSION, type PlaceRequest, type PlaceResponse } from '../core/messages.ts'
import { decode, encode } from './codec.ts'

export const PLACE_PROTOCOL = '/discovery/place/1.0.0'

export interface PlaceServerInit {
  libp2p: Libp2p
  handle: (req: PlaceRequest, from: string) => Promise<PlaceResponse>
  onInvalid: (from: string, reason: string) => void
  timeoutMs: number
}

export class PlaceTimeoutError extends Error {
  static name = 'PlaceTimeoutError'
  constructor (message = 'the peer did not answer in time') {
    super(message)
    this.name = PlaceTimeoutError.name
  }
}

export class PlaceServer {
  readonly #init: PlaceServerInit
  #started = false

  constructor (init: PlaceServerInit) {
    this.#init = init
  }

  async start (): Promise<void> {
    if (this.#started) return
    this.#started = true
    await this.#init.libp2p.handle(PLACE_PROTOCOL, ({ stream, connection }) => {
      void this.#serve(stream, connection.remotePeer.toString())
    }, { maxInboundStreams: 1024, runOnLimitedConnection: false })
  }

  async stop (): Promise<void> {
    if (!this.#started) return
    this.#started = false
    await this.#init.libp2p.unhandle(PLACE_PROTOCOL)
  }

  async #serve (stream: Stream, from: string): Promise<void> {
    const signal = AbortSignal.timeout(this.#init.timeoutMs)
    const lp = lpStream(stream, { maxDataLength: LIMITS.maxMessageBytes })
    try {
      let req: PlaceRequest
      try {
        req = decode(placeRequestSchema, (await lp.read({ signal })).subarray())
      } catch (err: any) {
        this.#init.onInvalid(from, err.message)
        await lp.write(encode({ v: PROTOCOL_VERSION, ok: false, reason: `invalid request: ${String(err.message).slice(0, 300)}` }), { signal })
        await stream.close({ signal })
        return
      }
      const res = await this.#init.handle(req, from)
      await lp.write(encode(res), { signal })
      await stream.close({ signal })
    } catch (err: any) {
      stream.abort(err)
    }
  }
}

/** Sends one request and waits for its answer; a failed call aborts the stream and rethrows. */
export async function placeRequest (libp2p: Libp2p, peer: PeerId | Multiaddr[], req: PlaceRequest, timeoutMs: number): Promise<PlaceResponse> {
  const signal = AbortSignal.timeout(timeoutMs)
  let stream: Stream | undefined
  try {
    stream = await libp2p.dialProtocol(peer, PLACE_PROTOCOL, { signal })
    const lp = lpStream(stream, { maxDataLength: LIMITS.maxMessageBytes })
    await lp.write(encode(req), { signal })
    const res = decode(placeResponseSchema, (await lp.read({ signal })).subarray())
    await stream.close({ signal })
    return res
  } catch (err: any) {
    stream?.abort(err)
    if (signal.aborted) throw new PlaceTimeoutError(`no answer from the peer within ${timeoutMs} ms`)
    throw err
  }
}
