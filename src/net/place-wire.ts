/**
 * What both ends of `/discovery/place` share: how a request fails (callers
 * compare `err.name`) and the frames on the wire (it-length-prefixed: an
 * unsigned varint length, then that many bytes of JSON).
 */
import { DiscoveryError } from '../core/errors.ts'
import type * as lp from 'it-length-prefixed'

/** One framed message: its length prefix and its bytes, written as one chunk. */
export type Frame = ReturnType<typeof lp.encode.single>

/** What was queued together goes out as one chunk: one muxer frame, not one per message. */
export async function * joined (out: AsyncIterable<Frame[]>): AsyncGenerator<Frame> {
  for await (const batch of out) {
    if (batch.length === 0) continue
    const first = batch[0]
    for (let i = 1; i < batch.length; i++) first.append(batch[i])
    yield first
  }
}

export class PlaceTimeoutError extends DiscoveryError {
  static name = 'PlaceTimeoutError'
  static defaultMessage = 'the peer did not answer in time'
}

export class PlaceStreamClosedError extends DiscoveryError {
  static name = 'PlaceStreamClosedError'
  static defaultMessage = 'the stream to the peer closed before it answered'
}

/**
 * The request never left this node (the stream to the peer could not be
 * opened, was already closed, or the caller gave up before it was written):
 * the peer cannot have acted on it. Any other failure may come after the
 * peer took the request — the placer relies on the difference to move on
 * to another node safely.
 */
export class PlaceUnsentError extends DiscoveryError {
  static name = 'PlaceUnsentError'
  constructor (cause?: unknown) {
    const c = cause as { name?: string, message?: string } | undefined
    super(c != null ? `not sent: ${c.name ?? 'Error'}: ${c.message ?? String(cause)}` : 'not sent: the stream to the peer is closed', { cause })
  }
}
