/**
 * The peer-store patch (src/net/patches/peer-protocols.ts) on two real libp2p
 * nodes over TCP on loopback: libp2p records each stream's protocol in the
 * peer store on every stream; with the patch, only while the peer's record
 * does not list it yet. Counted under the patch, at the store's own `merge`:
 * 20 streams make at most one such write (none if identify recorded the
 * protocol first), the record still lists the protocol, and once the record
 * loses it (patched by identify, or the peer deleted) the next stream records
 * it again.
 */
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import type { Libp2p, PeerId } from '@libp2p/interface'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { installProtocolMergeCache } from '../../src/net/patches/index.ts'

const PROTOCOL = '/discovery-test/echo/1.0.0'

async function node (): Promise<Libp2p> {
  return await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify() }
  })
}

describe('peer-protocols patch', () => {
  let a: Libp2p
  let b: Libp2p
  /** The store's own merges that only record protocols of b, as seen under the patch. */
  const writes: string[][] = []
  let spared: () => number

  beforeAll(async () => {
    [a, b] = await Promise.all([node(), node()])
    await b.handle(PROTOCOL, ({ stream }) => { void stream.close() })
    const store = a.peerStore as unknown as { merge: (id: PeerId, data: Record<string, unknown>, o?: unknown) => Promise<unknown> }
    const merge = store.merge.bind(store)
    store.merge = async (id, data, o) => {
      if (id.equals(b.peerId) && Object.keys(data).length === 1 && Array.isArray(data.protocols)) writes.push(data.protocols as string[])
      return await merge(id, data, o)
    }
    spared = installProtocolMergeCache(a)
    await a.dial(b.getMultiaddrs()[0])
  })

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()])
  })

  const streams = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) {
      const s = await a.dialProtocol(b.peerId, PROTOCOL)
      await s.close()
    }
  }

  it('records a protocol the record lists already no more than once', async () => {
    await streams(20)
    expect(writes.filter(p => p.includes(PROTOCOL)).length).toBeLessThanOrEqual(1)
    expect(spared()).toBeGreaterThanOrEqual(19)
    expect((await a.peerStore.get(b.peerId)).protocols).toContain(PROTOCOL)
  })

  it('records it again once the record lost it, by a patch or a delete', async () => {
    const before = writes.length
    await a.peerStore.patch(b.peerId, { protocols: [] })
    await streams(3)
    expect(writes.length).toBe(before + 1)
    expect((await a.peerStore.get(b.peerId)).protocols).toContain(PROTOCOL)
    await a.peerStore.delete(b.peerId)
    await streams(3)
    expect(writes.length).toBe(before + 2)
    expect((await a.peerStore.get(b.peerId)).protocols).toContain(PROTOCOL)
  })
})
