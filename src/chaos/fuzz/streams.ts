/**
 * The rogue peer's side of the stream protocols: raw bytes on a negotiated
 * stream (so that frames may be cut short or over the limit), the write side
 * closed after them, and the length-prefixed answers read back until the
 * target closes the stream or the deadline passes. A reset or a silence is
 * a drop; each answer is parsed as JSON and returned.
 */
import type { Libp2p, Stream } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import * as lp from 'it-length-prefixed'

export interface StreamOutcome {
  /** The answers read, parsed (undefined for an answer that is not JSON). */
  answers: unknown[]
  /** The stream could not even be opened (the target is gone, or refused the protocol). */
  unopened: boolean
}

const decoder = new TextDecoder()

/** Opens `protocol` on the target, writes `bytes` (frames, whole or not), closes the write side and reads answers. */
export async function sendRaw (host: Libp2p, target: Multiaddr, protocol: string, bytes: Uint8Array[], timeoutMs: number, expectAnswers = true): Promise<StreamOutcome> {
  const signal = AbortSignal.timeout(timeoutMs)
  let stream: Stream
  try {
    stream = await host.dialProtocol(target, protocol, { signal })
  } catch {
    return { answers: [], unopened: true }
  }
  const answers: unknown[] = []
  const sink = stream.sink((async function * () { yield * bytes })()).catch(() => {})
  if (!expectAnswers) {
    // A datagram protocol (swim): nothing comes back on this stream; close it once the bytes are out.
    await Promise.race([sink, new Promise(resolve => setTimeout(resolve, timeoutMs).unref())])
    await stream.close({ signal }).catch(() => { stream.abort(new Error('done')) })
    return { answers, unopened: false }
  }
  try {
    const source = lp.decode(stream.source, { maxDataLength: 2 * 1024 * 1024 })
    const it = source[Symbol.asyncIterator]()
    while (true) {
      const next = await Promise.race([it.next(), new Promise<never>((_resolve, reject) => {
        if (signal.aborted) reject(new Error('timeout'))
        signal.addEventListener('abort', () => { reject(new Error('timeout')) }, { once: true })
      })])
      if (next.done === true) break
      try {
        answers.push(JSON.parse(decoder.decode(next.value.subarray())))
      } catch {
        answers.push(undefined)
      }
    }
  } catch {
    // Reset or silent: what was read counts, the rest is dropped.
  } finally {
    stream.abort(new Error('done'))
    await sink
  }
  return { answers, unopened: false }
}
