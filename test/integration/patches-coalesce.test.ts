/**
 * The write-coalescing wrapper on a real noise handshake between two libp2p
 * hosts over TCP: noise's `secureInbound` / `secureOutbound` must still
 * return `{ conn: { sink } }` for the wrapper to take over the sink, noise must
 * still route its encryption through the `crypto` option (our cached-key
 * crypto), and the frames yamux writes together must go out as fewer noise
 * messages — with every byte arriving in order. If an upgrade of
 * @chainsafe/libp2p-noise, libp2p or yamux changes that, these fail and say
 * what to re-check.
 */
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Libp2p } from '@libp2p/interface'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { coalescingEncrypter, NATIVE_FROM_BYTES, noiseCrypto } from '../../src/net/patches/index.ts'
import { changed } from '../patch-guard.ts'
import { waitFor } from './helpers.ts'

const ECHO = '/discovery-test/echo/1.0.0'
const RECHECK = 'src/net/patches/coalesce.ts (coalescingEncrypter) against noise\'s Noise.secureInbound/secureOutbound and how libp2p\'s upgrader uses the secured connection'

interface Seen { direction: 'inbound' | 'outbound', hadSink: boolean, sinkBefore?: unknown, secured?: { conn?: { sink?: unknown } } }

/** One host: noise with a crypto that counts what it encrypts, seen through the coalescing wrapper. */
async function host (seen: Seen[], encrypted: number[]): Promise<Libp2p> {
  const counting: typeof noiseCrypto = {
    ...noiseCrypto,
    chaCha20Poly1305Encrypt: (plaintext, nonce, ad, k) => {
      encrypted.push(plaintext.byteLength)
      return noiseCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, k)
    }
  }
  // Records what noise hands back, before the wrapper takes its sink.
  const inspected = (components: any): any => {
    const inner: any = noise({ crypto: counting })(components)
    const outer = Object.create(inner)
    for (const direction of ['inbound', 'outbound'] as const) {
      const method = direction === 'inbound' ? 'secureInbound' : 'secureOutbound'
      outer[method] = async (...args: any[]) => {
        const secured = await inner[method](...args)
        seen.push({ direction, hadSink: typeof secured?.conn?.sink === 'function', sinkBefore: secured?.conn?.sink, secured })
        return secured
      }
    }
    return outer
  }
  const node = await createLibp2p({
    privateKey: await generateKeyPair('Ed25519') as any,
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [coalescingEncrypter(inspected)],
    streamMuxers: [yamux()]
  })
  await node.handle(ECHO, ({ stream }) => { void stream.sink(stream.source).catch(() => {}) })
  return node as unknown as Libp2p
}

describe('coalescing under a real noise handshake', () => {
  const seenA: Seen[] = []
  const seenB: Seen[] = []
  const encryptedA: number[] = []
  const encryptedB: number[] = []
  let a: Libp2p
  let b: Libp2p

  beforeAll(async () => {
    a = await host(seenA, encryptedA)
    b = await host(seenB, encryptedB)
    await a.dial(b.getMultiaddrs()[0])
    // The dialler's side is done first; the listener finishes its own upgrade a moment later.
    await waitFor('the listening host to have a connection to the dialler', () => b.getConnections(a.peerId).length > 0 ? true : undefined, 5_000, 10)
  })

  afterAll(async () => {
    await a?.stop()
    await b?.stop()
  })

  it('finds secureOutbound and secureInbound returning { conn: { sink } }, and takes the sink over', () => {
    const what = (side: string): string => changed('@chainsafe/libp2p-noise', `${side} did not return { conn: { sink } }`, RECHECK)
    expect(seenA.map(s => s.direction), changed('libp2p', 'the dialling host did not secure its connection through secureOutbound', RECHECK)).toEqual(['outbound'])
    expect(seenB.map(s => s.direction), changed('libp2p', 'the listening host did not secure its connection through secureInbound', RECHECK)).toEqual(['inbound'])
    expect(seenA[0].hadSink, what('secureOutbound')).toBe(true)
    expect(seenB[0].hadSink, what('secureInbound')).toBe(true)
    for (const s of [seenA[0], seenB[0]]) {
      expect(s.secured?.conn?.sink, changed('libp2p', 'the wrapper did not replace the secured connection\'s sink', RECHECK)).not.toBe(s.sinkBefore)
    }
  })

  it('carries every byte in order, as fewer noise messages than yamux frames, through our crypto', async () => {
    const chunks = Array.from({ length: 200 }, (_, i) => new Uint8Array(10).fill(i % 256))
    const big = Uint8Array.from({ length: 8 * NATIVE_FROM_BYTES }, (_, i) => i % 253)
    const stream = await a.dialProtocol(b.peerId, ECHO)
    const sentBefore = encryptedA.length
    const received: Uint8Array[] = []
    const reading = (async () => { for await (const c of stream.source) received.push(c.subarray()) })()
    // All 200 ready at once: yamux writes a frame each.
    await stream.sink([...chunks, big])
    await reading
    const expected = Buffer.concat([...chunks, big])
    expect(Buffer.concat(received).equals(expected), 'the echo came back different: coalescing lost or reordered bytes').toBe(true)
    const messages = encryptedA.length - sentBefore
    expect(messages, changed('@chainsafe/libp2p-yamux', `201 writes went out as ${messages} noise messages: coalescing did not take effect`, RECHECK)).toBeLessThan(50)
    expect(encryptedA.some(n => n >= NATIVE_FROM_BYTES), changed('@chainsafe/libp2p-noise', 'noise no longer encrypts through the `crypto` option it is given', 'src/net/patches/noise-crypto.ts and host.ts (noise({ crypto }))')).toBe(true)
  })
})
