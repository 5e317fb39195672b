/**
 * Write coalescing under the connection encrypter. Yamux writes one chunk per
 * frame (a window update, a stream's data, a FIN), and noise then encrypts
 * every chunk as its own message and the TCP socket sends each one with its
 * own system call. On one host, where every agent shares two cores, those
 * small writes were the largest single cost of the cluster (a write on
 * loopback also runs the receiver's TCP stack). Here, every chunk that is
 * ready in the same turn of the event loop goes out as one noise message and
 * one write; a lone chunk waits at most until `setImmediate`.
 */
import { DiscoveryError } from '../../core/errors.ts'
import { Uint8ArrayList } from 'uint8arraylist'

type Chunk = Uint8Array | Uint8ArrayList

const LATER = Symbol('later')

function nextTurn (): Promise<typeof LATER> {
  return new Promise(resolve => { setImmediate(resolve, LATER) })
}

function noop (): void {}

/**
 * Yields the chunks of `source`, those that are ready together joined into
 * one, each at most about `maxBytes` (noise splits larger ones anyway).
 */
export async function * coalesce (source: AsyncIterable<Chunk> | Iterable<Chunk>, maxBytes = 64 * 1024): AsyncGenerator<Uint8ArrayList> {
  const it: AsyncIterator<Chunk> | Iterator<Chunk> = Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source[Symbol.iterator]()
  let pending: Promise<IteratorResult<Chunk>> | undefined
  const pull = (): Promise<IteratorResult<Chunk>> => {
    const p = Promise.resolve(it.next())
    // Rejections are seen where the promise is awaited; this only keeps one that waits from being "unhandled".
    p.catch(noop)
    return p
  }
  let finished = false
  try {
    while (true) {
      const first = await (pending ?? pull())
      pending = undefined
      if (first.done === true) {
        finished = true
        return
      }
      const batch = new Uint8ArrayList(first.value)
      while (batch.byteLength < maxBytes) {
        pending = pull()
        const r = await Promise.race([pending, nextTurn()])
        if (r === LATER) break
        pending = undefined
        if (r.done === true) {
          finished = true
          yield batch
          return
        }
        batch.append(r.value)
      }
      yield batch
    }
  } finally {
    // Not awaited: an async generator's return() waits for a pending next(), which may never come.
    if (!finished) Promise.resolve(it.return?.()).catch(noop)
  }
}

interface Secured { conn: { sink: (source: AsyncIterable<any>) => Promise<void> } }

/** Thrown at the first connection when the encrypter no longer hands back `{ conn: { sink } }`. */
export class UnexpectedEncrypterError extends DiscoveryError {
  static name = 'UnexpectedEncrypterError'
  static defaultMessage = 'the connection encrypter did not return { conn: { sink } }: re-check src/net/patches/coalesce.ts against @chainsafe/libp2p-noise and libp2p'
}

/**
 * Wraps a connection encrypter factory (e.g. `noise()`) so that what the
 * muxer writes into the secured connection is coalesced before encryption.
 */
export function coalescingEncrypter<F extends (components: any) => any> (factory: F): F {
  return ((components: any) => {
    const inner = factory(components)
    const wrap = <T extends Secured>(secured: T): T => {
      const sink = secured?.conn?.sink
      // Loud rather than silently slow (or broken): the shape below is what noise 16 returns.
      if (typeof sink !== 'function') throw new UnexpectedEncrypterError()
      secured.conn.sink = async (source) => { await sink.call(secured.conn, coalesce(source)) }
      return secured
    }
    const outer = Object.create(inner)
    outer.secureInbound = async (...args: any[]) => wrap(await inner.secureInbound(...args))
    outer.secureOutbound = async (...args: any[]) => wrap(await inner.secureOutbound(...args))
    return outer
  }) as F
}
