/**
 * The owner's side of `/discovery/place/1.0.0` and `/1.1.0`: length-prefixed
 * (unsigned varint, it-length-prefixed) JSON requests, each answered by one
 * response. 1.0.0 carries one request per stream, 1.1.0 any number, pipelined:
 * both are served by the same loop, which takes requests in the order they
 * arrive (so a commit sent right behind its reserve follows it) and answers
 * them in that order.
 *
 * What a peer may cost is bounded: a frame of at most `LIMITS.maxMessageBytes`,
 * a request that must arrive whole within `timeoutMs` of its first byte, an
 * idle stream closed after `idleTimeoutMs`, and a client that does not read
 * its answers cut off after MAX_QUEUED_ANSWERS answers or MAX_UNREAD_BYTES.
 * A request that does not parse is answered `{ ok: false, reason }`,
 * reported through `onInvalid`, never handed to the agent, and ends the
 * stream: what follows it cannot be trusted to be framed right.
 */
import type { Libp2p, PeerId, Stream } from '@libp2p/interface'
import * as lp from 'it-length-prefixed'
import { pushableV, type PushableV } from 'it-pushable'
import { raceSignal } from 'race-signal'
import { LIMITS, placeRequestSchema, PROTOCOL_VERSION, type PlaceRequest, type PlaceResponse } from '../core/messages.ts'
import { expectNumber } from '../core/options.ts'
import { decode, encode, MessageTooLargeError } from './codec.ts'
import { withDeadline } from './deadline.ts'
import { joined, PlaceTimeoutError, type Frame } from './place-wire.ts'
import { PLACE_PROTOCOL, PLACE_PROTOCOL_PIPELINED } from './protocols.ts'

export interface PlaceServerInit {
  libp2p: Pick<Libp2p, 'handle' | 'unhandle'>
  /** The agent's answer to a valid request from peer `from`. */
  handle: (req: PlaceRequest, from: string) => Promise<PlaceResponse>
  /** A peer sent something that is not a valid request (counted and logged by the agent). */
  onInvalid: (from: string, reason: string) => void
  /** Longest wait for a request's bytes once its first byte came, and for the answers to be written at the end. */
  timeoutMs: number
  /** How long a stream may stay without any byte of a request before the server closes it. Default 5 min: a client closes its own unused stream after 30 s. */
  idleTimeoutMs?: number
}

export const DEFAULT_IDLE_TIMEOUT_MS = 300_000
/** Requests in progress or answers unread on one stream before the server gives up on it: a client that never reads is cut off. */
export const MAX_QUEUED_ANSWERS = 1024
export const MAX_UNREAD_BYTES = 4 * 1024 * 1024
/** Streams of both versions a peer may have open at once. */
const MAX_INBOUND_STREAMS = 1024

/** Errors of it-length-prefixed's decoder: the peer's bytes are not frames we accept. */
const TOO_LARGE = new Set(['InvalidDataLengthError', 'InvalidDataLengthLengthError'])
const MALFORMED = new Set(['InvalidMessageLengthError', 'UnexpectedEOFError'])

export class PlaceServer {
  readonly #init: PlaceServerInit
  readonly #timeoutMs: number
  readonly #idleMs: number
  #started = false

  constructor (init: PlaceServerInit) {
    this.#init = init
    this.#timeoutMs = expectNumber('timeoutMs', init.timeoutMs, { above: 0 })
    this.#idleMs = expectNumber('idleTimeoutMs', init.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS, { above: 0 })
  }

  async start (): Promise<void> {
    if (this.#started) return
    this.#started = true
    await this.#init.libp2p.handle([PLACE_PROTOCOL_PIPELINED, PLACE_PROTOCOL], ({ stream, connection }: { stream: Stream, connection: { remotePeer: PeerId } }) => {
      void this.#serve(stream, connection.remotePeer.toString())
    }, { maxInboundStreams: MAX_INBOUND_STREAMS, runOnLimitedConnection: false })
  }

  async stop (): Promise<void> {
    if (!this.#started) return
    this.#started = false
    await this.#init.libp2p.unhandle([PLACE_PROTOCOL_PIPELINED, PLACE_PROTOCOL])
  }

  /** Reads requests until the client closes its side, then writes the last answers and closes. */
  async #serve (stream: Stream, from: string): Promise<void> {
    const timeoutMs = this.#timeoutMs
    const out: PushableV<Frame> = pushableV()
    let failed = false
    let timer: NodeJS.Timeout | undefined
    const fail = (err: Error): void => {
      if (failed) return
      failed = true
      clearTimeout(timer)
      out.end()
      stream.abort(err)
    }
    const sunk = stream.sink(joined(out)).catch(fail)

    // Bytes received and bytes the decoder consumed: a difference is a request on its way.
    let received = 0
    let consumed = 0
    const arm = (): void => {
      clearTimeout(timer)
      const partial = received > consumed
      timer = setTimeout(() => {
        fail(new PlaceTimeoutError(partial ? `a request did not arrive whole within ${timeoutMs} ms` : 'the stream stayed idle too long'))
      }, partial ? timeoutMs : this.#idleMs)
      timer.unref()
    }
    const counted = async function * (source: AsyncIterable<Frame>): AsyncGenerator<Frame> {
      for await (const chunk of source) {
        const wasIdle = received === consumed
        received += chunk.byteLength
        // The deadline of a request runs from its first byte, whatever the bytes that trickle in after it.
        if (wasIdle) arm()
        yield chunk
      }
    }
    const frames = lp.decode(counted(stream.source), {
      maxDataLength: LIMITS.maxMessageBytes,
      onData: (data) => {
        consumed += varintLength(data.byteLength) + data.byteLength
        arm()
      }
    })

    let queued = 0
    let answered: Promise<void> = Promise.resolve()
    const answer = (res: Promise<PlaceResponse> | PlaceResponse): void => {
      // Taken care of in its turn below; until then a rejection must not count as unhandled.
      if (res instanceof Promise) res.catch(noop)
      queued++
      answered = answered.then(async () => {
        const r = await res
        queued--
        out.push(lp.encode.single(encode(r)))
      })
      answered.catch(fail)
    }
    let refused = false
    const refuse = (reason: string): void => {
      refused = true
      this.#init.onInvalid(from, reason)
      answer({ v: PROTOCOL_VERSION, ok: false, reason: `invalid request: ${reason.slice(0, 300)}` })
    }

    try {
      arm()
      try {
        for await (const bytes of frames) {
          let req: PlaceRequest
          try {
            req = decode(placeRequestSchema, bytes.subarray())
          } catch (err: any) {
            refuse(String(err.message))
            break
          }
          answer(this.#init.handle(req, from))
          if (queued > MAX_QUEUED_ANSWERS || out.readableLength > MAX_UNREAD_BYTES) {
            fail(new Error('too many answers unread'))
            return
          }
        }
        // it-length-prefixed ends quietly when a frame's length came but none of its bytes: a frame cut short all the same.
        if (!refused && received > consumed) refuse(`a frame cut short: the stream ended ${received - consumed} bytes into it`)
      } catch (err: any) {
        if (failed) return
        if (TOO_LARGE.has(err?.name)) refuse(new MessageTooLargeError().message)
        else if (MALFORMED.has(err?.name)) refuse(`${err.name}: ${err.message}`)
        else throw err
      }
      clearTimeout(timer)
      await answered
      out.end()
      await withDeadline(timeoutMs, async signal => {
        await raceSignal(sunk, signal)
        if (!failed) await stream.close({ signal })
      })
    } catch (err: any) {
      fail(err instanceof Error ? err : new Error(String(err)))
    } finally {
      clearTimeout(timer)
    }
  }
}

/** Bytes of the unsigned varint that it-length-prefixed writes (and consumes) for a length. */
function varintLength (n: number): number {
  let bytes = 1
  while (n >= 0x80) {
    n = Math.floor(n / 0x80)
    bytes++
  }
  return bytes
}

function noop (): void {}
