/**
 * `/discovery/place/1.x` between two real libp2p hosts in one process: the
 * framing, pipelined requests on one long-lived stream answered in order, a
 * 1.0.0 client (one request per stream) still served, a bad request answered,
 * counted and never handed to the agent, and an unreachable peer reported as
 * "not sent" (the placer relies on that to move on safely).
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Libp2p } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { lpStream } from 'it-length-prefixed-stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LIMITS, placeRequestSchema, PROTOCOL_VERSION, type PlaceRequest, type PlaceResponse } from '../../src/core/messages.ts'
import { MessageTooLargeError } from '../../src/net/codec.ts'
import { createHost } from '../../src/net/host.ts'
import { FrameReader, Outbox, PLACE_PROTOCOL, PLACE_PROTOCOL_PIPELINED, PlaceServer, frame, placeRequest, placeRequestOnce } from '../../src/net/place-protocol.ts'
import { RpcServer } from '../../src/net/rpc.ts'

const enc = new TextEncoder()
const dec = new TextDecoder()

describe('framing', () => {
  it('reads back frames of any size, whatever the chunks they arrive in', () => {
    const payloads = [0, 1, 127, 128, 300, 16_383, 16_384, 70_000].map(n => Uint8Array.from({ length: n }, (_, i) => i % 251))
    const wire = Buffer.concat(payloads.map(frame))
    for (const chunk of [1, 2, 7, 4096, wire.length]) {
      const reader = new FrameReader(LIMITS.maxMessageBytes)
      const out: Uint8Array[] = []
      for (let i = 0; i < wire.length; i += chunk) {
        reader.push(wire.subarray(i, i + chunk))
        let f: Uint8Array | undefined
        while ((f = reader.next()) != null) out.push(f)
      }
      expect(out.map(f => Buffer.from(f).toString('hex'))).toEqual(payloads.map(p => Buffer.from(p).toString('hex')))
      expect(reader.buffered).toBe(0)
    }
  })

  it('refuses a frame larger than the limit before its bytes arrive', () => {
    const reader = new FrameReader(1000)
    reader.push(frame(new Uint8Array(1001)).subarray(0, 3))
    expect(() => reader.next()).toThrow(MessageTooLargeError)
    const endless = new FrameReader(LIMITS.maxMessageBytes)
    endless.push(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0x01]))
    expect(() => endless.next()).toThrow(MessageTooLargeError)
  })

  it('sends what was queued together as one chunk, and ends after the last', async () => {
    const out = new Outbox()
    out.push(Uint8Array.from([1]))
    out.push(Uint8Array.from([2, 3]))
    expect(out.bytes).toBe(3)
    const it = out[Symbol.asyncIterator]()
    expect([...(await it.next()).value]).toEqual([1, 2, 3])
    const later = it.next()
    out.push(Uint8Array.from([4]))
    out.end()
    expect([...(await later).value]).toEqual([4])
    expect((await it.next()).done).toBe(true)
  })
})

describe('place protocol between two hosts', () => {
  let server: Libp2p
  let client: Libp2p
  let serverAddr: ReturnType<typeof multiaddr>
  const handled: PlaceRequest[] = []
  const invalid: string[] = []
  /** Requests whose answer the test holds back, to show answers keep their order. */
  const slow = new Set<string>()

  beforeAll(async () => {
    server = await createHost({ privateKey: await generateKeyPair('Ed25519') as any, listen: '/ip4/127.0.0.1/tcp/0' }) as unknown as Libp2p
    client = await createHost({ privateKey: await generateKeyPair('Ed25519') as any, listen: '/ip4/127.0.0.1/tcp/0' }) as unknown as Libp2p
    const placeServer = new PlaceServer({
      libp2p: server,
      timeoutMs: 2_000,
      onInvalid: (_from, reason) => { invalid.push(reason) },
      handle: async (req): Promise<PlaceResponse> => {
        handled.push(req)
        if (req.op === 'release' && slow.has(req.leaseId)) await new Promise(resolve => setTimeout(resolve, 50))
        if (req.op === 'delete') return { v: PROTOCOL_VERSION, ok: false, reason: `no ${req.vmId}` }
        return { v: PROTOCOL_VERSION, ok: true }
      }
    })
    await placeServer.start()
    serverAddr = server.getMultiaddrs()[0]
  })

  afterAll(async () => {
    await client?.stop()
    await server?.stop()
  })

  const release = (n: number): PlaceRequest => ({ v: PROTOCOL_VERSION, op: 'release', leaseId: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}` })

  it('pipelines requests on one stream, takes them in order and answers each in turn', async () => {
    handled.length = 0
    slow.add((release(1) as { leaseId: string }).leaseId)
    const reqs = [release(1), release(2), { v: PROTOCOL_VERSION, op: 'delete', vmId: 'vm-abcdef12' } as PlaceRequest, release(3)]
    const answers = await Promise.all(reqs.map(async r => await placeRequest(client, [serverAddr], r, 2_000)))
    expect(answers.map(a => a.ok)).toEqual([true, true, false, true])
    expect((answers[2] as { reason: string }).reason).toBe('no vm-abcdef12')
    expect(handled).toEqual(reqs)
    const streams = client.getConnections().flatMap(c => c.streams).filter(s => s.protocol === PLACE_PROTOCOL_PIPELINED)
    expect(streams).toHaveLength(1)
    // Later requests reuse the stream.
    await placeRequest(client, server.peerId, release(4), 2_000)
    expect(client.getConnections().flatMap(c => c.streams).filter(s => s.protocol === PLACE_PROTOCOL_PIPELINED)).toHaveLength(1)
  })

  it('still serves a 1.0.0 client: one request, one answer, one stream', async () => {
    const res = await placeRequestOnce(client, server.peerId, release(5), 2_000)
    expect(res).toEqual({ v: PROTOCOL_VERSION, ok: true })
    const stream = await client.dialProtocol(server.peerId, PLACE_PROTOCOL)
    const lp = lpStream(stream)
    await lp.write(enc.encode(JSON.stringify(release(6))))
    expect(JSON.parse(dec.decode((await lp.read()).subarray()))).toEqual({ v: PROTOCOL_VERSION, ok: true })
    await stream.close()
  })

  it('falls back to 1.0.0 with a peer that offers only that, one stream per request', async () => {
    const old = await createHost({ privateKey: await generateKeyPair('Ed25519') as any, listen: '/ip4/127.0.0.1/tcp/0' }) as unknown as Libp2p
    const seen: PlaceRequest[] = []
    // An agent of an earlier version: /discovery/place/1.0.0 and nothing else.
    const legacy = new RpcServer({
      libp2p: old,
      protocol: PLACE_PROTOCOL,
      schema: placeRequestSchema,
      timeoutMs: 2_000,
      onInvalid: () => {},
      handle: async (req) => { seen.push(req); return { v: PROTOCOL_VERSION, ok: true } }
    })
    await legacy.start()
    try {
      const addr = old.getMultiaddrs()[0]
      expect(await placeRequest(client, [addr], release(20), 2_000)).toEqual({ v: PROTOCOL_VERSION, ok: true })
      expect(await placeRequest(client, old.peerId, release(21), 2_000)).toEqual({ v: PROTOCOL_VERSION, ok: true })
      expect(seen).toEqual([release(20), release(21)])
      const toOld = client.getConnections(old.peerId).flatMap(c => c.streams)
      expect(toOld.filter(s => s.protocol === PLACE_PROTOCOL_PIPELINED)).toEqual([])
    } finally {
      await old.stop()
    }
  })

  it('answers a bad request with the reason, counts it, and hands nothing to the agent', async () => {
    handled.length = 0
    const before = invalid.length
    const stream = await client.dialProtocol(server.peerId, PLACE_PROTOCOL_PIPELINED)
    const lp = lpStream(stream)
    await lp.write(enc.encode(JSON.stringify({ v: 1, op: 'reserve', leaseId: 'nope', resources: { cpu: -5, memMiB: 1 }, ttlMs: 1000 })))
    const answer = JSON.parse(dec.decode((await lp.read()).subarray()))
    expect(answer.ok).toBe(false)
    expect(answer.reason).toMatch(/invalid request/)
    expect(invalid.length).toBe(before + 1)
    expect(handled).toEqual([])
    // The server closes a stream after a bad request; the agent's own channel is unaffected.
    expect(await placeRequest(client, server.peerId, release(7), 2_000)).toEqual({ v: PROTOCOL_VERSION, ok: true })
  })

  it('reports a request to a peer it cannot reach as never sent', async () => {
    const gone = await createHost({ privateKey: await generateKeyPair('Ed25519') as any, listen: '/ip4/127.0.0.1/tcp/0' }) as unknown as Libp2p
    const addr = gone.getMultiaddrs()[0]
    await gone.stop()
    await expect(placeRequest(client, [addr], release(8), 2_000)).rejects.toMatchObject({ name: 'PlaceUnsentError' })
  })
})
