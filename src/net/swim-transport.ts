/**
 * `/discovery/swim/1.0.0`: the failure detector's datagrams over libp2p. Each
 * agent writes its messages to a peer on one long-lived outbound stream
 * (opened on first use, opened again after it breaks), length-prefixed JSON;
 * the peer's messages come in on the stream the peer opened. A message costs
 * a few hundred bytes and no stream negotiation — what an open and a
 * multistream-select round trip per probe would (libp2p's ping: measured in
 * docs/failure-detection.md).
 *
 * Datagram semantics: a message written may be lost with its connection;
 * only a message that never left (no connection could be made, or too many
 * already wait for a peer that does not read) is reported through
 * `onSendFailed`, which the detector takes as "no answer" at once. Every
 * message received is validated against its schema before the agent sees it;
 * a bad one is reported through `onInvalid` and ends that stream.
 *
 * A stream we have not written on for a while is closed (`closeIdle`): with
 * a bounded fan-out, a connection with a swim stream is never idle, so the
 * streams to peers we no longer probe (a helper asked once, a subject that
 * changed with the rings) would keep their connections open for good.
 */
import type { Libp2p, PeerId, Stream } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import * as lp from 'it-length-prefixed'
import { pushableV, type PushableV } from 'it-pushable'
import { expectNumber } from '../core/options.ts'
import { SWIM_LIMITS, type SwimMessage, swimMessageSchema } from '../core/swim-messages.ts'
import { decode, encode } from './codec.ts'
import { withDeadline } from './deadline.ts'
import { type Frame, joined } from './place-wire.ts'
import { SWIM_PROTOCOL } from './protocols.ts'

export interface SwimTransportInit {
  libp2p: Pick<Libp2p, 'handle' | 'unhandle' | 'dialProtocol'>
  /** Where to dial a peer: its id when connected, else its gossiped addresses. */
  dialTarget: (peer: string) => PeerId | Multiaddr[]
  onMessage: (from: string, msg: SwimMessage) => void
  onSendFailed: (to: string, msg: SwimMessage) => void
  onInvalid: (from: string, reason: string) => void
  /** How long opening a stream may take (dial, noise, multistream-select) before what waits for it fails. */
  dialTimeoutMs: number
  /** The time, for `closeIdle`. */
  now: () => number
}

/** Messages that may wait for one peer (its stream opening, or not read): more fail at once. */
export const MAX_QUEUED = 64
/** it-length-prefixed's errors for bytes that are not frames we accept: over the limit, a bad length, or cut short by the end of the stream. */
const FRAMING_ERRORS = new Set(['InvalidDataLengthError', 'InvalidDataLengthLengthError', 'InvalidMessageLengthError', 'UnexpectedEOFError'])
/** Streams a peer may open to us at once: one, and one more while it replaces a broken one. */
const MAX_INBOUND_STREAMS = 4

interface Outbound {
  out: PushableV<Frame>
  /** Messages given before the stream was open. */
  waiting: SwimMessage[]
  stream?: Stream
  closed: boolean
  lastSendMs: number
}

export class SwimTransport {
  readonly #init: SwimTransportInit
  readonly #dialTimeoutMs: number
  readonly #channels = new Map<string, Outbound>()
  readonly #inbound = new Set<Stream>()
  #started = false

  constructor (init: SwimTransportInit) {
    this.#init = init
    this.#dialTimeoutMs = expectNumber('dialTimeoutMs', init.dialTimeoutMs, { above: 0 })
  }

  async start (): Promise<void> {
    if (this.#started) return
    this.#started = true
    await this.#init.libp2p.handle(SWIM_PROTOCOL, ({ stream, connection }: { stream: Stream, connection: { remotePeer: PeerId } }) => {
      void this.#read(stream, connection.remotePeer.toString())
    }, { maxInboundStreams: MAX_INBOUND_STREAMS, maxOutboundStreams: MAX_INBOUND_STREAMS, runOnLimitedConnection: false })
  }

  async stop (): Promise<void> {
    if (!this.#started) return
    this.#started = false
    await this.#init.libp2p.unhandle(SWIM_PROTOCOL)
    for (const [peer, ch] of this.#channels) this.#close(peer, ch)
    for (const s of this.#inbound) s.abort(new Error('the agent stopped'))
    this.#inbound.clear()
  }

  send (to: string, msg: SwimMessage): void {
    if (!this.#started) return
    let ch = this.#channels.get(to)
    if (ch == null || ch.closed) {
      ch = { out: pushableV(), waiting: [], closed: false, lastSendMs: 0 }
      this.#channels.set(to, ch)
      void this.#open(to, ch)
    }
    ch.lastSendMs = this.#init.now()
    if (ch.stream == null) {
      if (ch.waiting.length >= MAX_QUEUED) return this.#init.onSendFailed(to, msg)
      ch.waiting.push(msg)
      return
    }
    // A peer that does not read (paused) lets its window fill; beyond a few periods' worth, failing is the truth.
    if (ch.out.readableLength >= MAX_QUEUED) return this.#init.onSendFailed(to, msg)
    ch.out.push(lp.encode.single(encode(msg)))
  }

  /** Closes the streams we have not written on for `idleMs` (the peer closes its own to us likewise). */
  closeIdle (idleMs: number): void {
    const now = this.#init.now()
    for (const [peer, ch] of this.#channels) if (ch.stream != null && now - ch.lastSendMs >= idleMs) this.#close(peer, ch)
  }

  async #open (peer: string, ch: Outbound): Promise<void> {
    let stream: Stream
    try {
      stream = await withDeadline(this.#dialTimeoutMs, async signal => await this.#init.libp2p.dialProtocol(this.#init.dialTarget(peer), SWIM_PROTOCOL, { signal }))
    } catch {
      this.#close(peer, ch)
      for (const m of ch.waiting.splice(0)) this.#init.onSendFailed(peer, m)
      return
    }
    if (ch.closed || !this.#started) {
      stream.abort(new Error('closed while opening'))
      return
    }
    ch.stream = stream
    for (const m of ch.waiting.splice(0)) ch.out.push(lp.encode.single(encode(m)))
    stream.sink(joined(ch.out)).catch(() => { this.#close(peer, ch) })
    // The peer never writes on our stream: its end means the stream is gone.
    void (async () => {
      try {
        for await (const _ of stream.source) { /* nothing is expected here */ }
      } catch {}
      this.#close(peer, ch)
    })()
  }

  #close (peer: string, ch: Outbound): void {
    if (ch.closed) return
    ch.closed = true
    if (this.#channels.get(peer) === ch) this.#channels.delete(peer)
    ch.out.end()
    ch.stream?.abort(new Error('closed'))
  }

  async #read (stream: Stream, from: string): Promise<void> {
    this.#inbound.add(stream)
    // Bytes received and bytes of whole frames: a difference at the end is a frame cut short.
    let received = 0
    let consumed = 0
    const counted = async function * (source: AsyncIterable<Frame>): AsyncGenerator<Frame> {
      for await (const chunk of source) {
        received += chunk.byteLength
        yield chunk
      }
    }
    try {
      for await (const bytes of lp.decode(counted(stream.source), { maxDataLength: SWIM_LIMITS.maxMessageBytes, onData: (d) => { consumed += varintLength(d.byteLength) + d.byteLength } })) {
        let msg: SwimMessage
        try {
          msg = decode(swimMessageSchema, bytes.subarray())
        } catch (err: any) {
          this.#init.onInvalid(from, err.message)
          stream.abort(err)
          return
        }
        this.#init.onMessage(from, msg)
      }
      // it-length-prefixed ends quietly when a frame's length came but none of its bytes.
      if (received > consumed) this.#init.onInvalid(from, `a frame cut short: the stream ended ${received - consumed} bytes into it`)
      // The peer closed its side; ours (never written) must close too, or the stream stays half open and holds one of the peer's few inbound slots for good.
      await stream.close().catch((err: Error) => { stream.abort(err) })
    } catch (err: any) {
      // A frame over the limit or cut short: what follows cannot be trusted to be framed right.
      if (FRAMING_ERRORS.has(err?.name)) this.#init.onInvalid(from, err.message)
      stream.abort(err)
    } finally {
      this.#inbound.delete(stream)
    }
  }
}

/** Bytes of the unsigned varint that it-length-prefixed reads for a length. */
function varintLength (n: number): number {
  let bytes = 1
  while (n >= 0x80) {
    n = Math.floor(n / 0x80)
    bytes++
  }
  return bytes
}
