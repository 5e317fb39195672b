/**
 * The yamux window-update patch (src/net/patches/yamux-window.ts) on two real
 * yamux muxers joined in memory: a stream carrying 200 small messages gets
 * its window back once half of it is consumed, not after every message (the
 * library's own behaviour: 200 updates), every byte arrives in order, and a
 * transfer ten times the window still completes. If an upgrade of
 * @chainsafe/libp2p-yamux changes what the patch reaches into, it throws
 * UnexpectedYamuxError and this fails.
 */
import { yamux } from '@chainsafe/libp2p-yamux'
import { defaultLogger } from '@libp2p/logger'
import type { Stream, StreamMuxer } from '@libp2p/interface'
import { pushable } from 'it-pushable'
import { Uint8ArrayList } from 'uint8arraylist'
import { describe, expect, it } from 'vitest'
import { installYamuxWindowUpdates } from '../../src/net/patches/index.ts'

/** Yamux frame types (the spec): 0 data, 1 window update. */
const WINDOW_UPDATE = 1

/** Reads yamux frames off the bytes one muxer writes to the other, counting window updates. */
function frameCounter (): { feed: (chunk: { subarray: () => Uint8Array }) => void, windowUpdates: () => number } {
  const buf = new Uint8ArrayList()
  let updates = 0
  return {
    feed: chunk => {
      buf.append(chunk.subarray())
      while (buf.byteLength >= 12) {
        const type = buf.get(1)
        const length = buf.getUint32(8)
        const size = 12 + (type === 0 ? length : 0)
        if (buf.byteLength < size) break
        if (type === WINDOW_UPDATE) updates++
        buf.consume(size)
      }
    },
    windowUpdates: () => updates
  }
}

/** Two muxers joined in memory; what `server` writes to `client` is counted. */
function pair (onStream: (s: Stream) => void): { client: StreamMuxer, counted: ReturnType<typeof frameCounter> } {
  const components = { logger: defaultLogger() }
  const client = yamux()(components).createStreamMuxer({ direction: 'outbound' })
  const server = yamux()(components).createStreamMuxer({ direction: 'inbound', onIncomingStream: onStream })
  const counted = frameCounter()
  // Chunks as yamux's own uint8arraylist makes them (its version may differ from ours): passed on untouched.
  const toServer = pushable<any>({ objectMode: true })
  const toClient = pushable<any>({ objectMode: true })
  void server.sink(toServer)
  void client.sink(toClient)
  void (async () => { for await (const c of client.source) toServer.push(c) })()
  void (async () => { for await (const c of server.source) { counted.feed(c); toClient.push(c) } })()
  return { client, counted }
}

async function transfer (messages: number, size: number): Promise<{ received: Uint8Array, windowUpdates: number }> {
  let done!: (b: Uint8Array) => void
  const got = new Promise<Uint8Array>(resolve => { done = resolve })
  const { client, counted } = pair(stream => {
    void (async () => {
      const all = new Uint8ArrayList()
      for await (const chunk of stream.source) all.append(chunk.subarray())
      done(all.subarray())
    })()
  })
  const stream = await client.newStream()
  const sent = new Uint8ArrayList()
  await stream.sink((async function * () {
    for (let i = 0; i < messages; i++) {
      const m = new Uint8Array(size).fill(i % 251)
      sent.append(m)
      yield m
      // One message per turn, as the detector writes them: each its own data frame.
      await new Promise(resolve => setImmediate(resolve))
    }
  })())
  const received = await got
  expect(Buffer.from(received).equals(Buffer.from(sent.subarray()))).toBe(true)
  return { received, windowUpdates: counted.windowUpdates() }
}

describe('yamux window updates', () => {
  it('without the patch, one window update per small message (what the patch is for)', async () => {
    const { windowUpdates } = await transfer(200, 100)
    expect(windowUpdates).toBeGreaterThanOrEqual(200)
  })

  it('with it, at most the stream\'s ACK for 200 small messages; a transfer of ten windows completes, in order', async () => {
    installYamuxWindowUpdates()
    installYamuxWindowUpdates()
    const small = await transfer(200, 100)
    expect(small.windowUpdates).toBeLessThanOrEqual(1)
    const bulk = await transfer(40, 64 * 1024)
    expect(bulk.received.byteLength).toBe(40 * 64 * 1024)
    expect(bulk.windowUpdates).toBeGreaterThanOrEqual(2)
  })
})
