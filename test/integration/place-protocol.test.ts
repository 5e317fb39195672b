/**
 * `/discovery/place/1.x` between real libp2p hosts over TCP on loopback: the
 * framing (it-length-prefixed) of any size in any chunking, pipelined
 * requests on one long-lived stream answered in order, a 1.0.0 client still
 * served and a 1.0.0-only peer still reached, a bad or oversized request
 * answered, counted and never handed to the agent, an unreachable peer
 * reported as "not sent" (the placer relies on that to move on safely), and
 * the server's bounds: a request that never arrives whole, an idle stream, a
 * client with too many requests in flight.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Libp2p, Stream } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import * as lp from 'it-length-prefixed'
import { lpStream } from 'it-length-prefixed-stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LIMITS, placeRequestSchema, PROTOCOL_VERSION, type PlaceRequest, type PlaceResponse } from '../../src/core/messages.ts'
import { createHost } from '../../src/net/host.ts'
import { PlaceClient } from '../../src/net/place-client.ts'
import { MAX_QUEUED_ANSWERS, PlaceServer } from '../../src/net/place-server.ts'
import { PLACE_PROTOCOL, PLACE_PROTOCOL_PIPELINED } from '../../src/net/protocols.ts'
import { RpcServer } from '../../src/net/rpc.ts'
import { drainFrames, waitFor } from './helpers.ts'

const enc = new TextEncoder()
const dec = new TextDecoder()

async function host (): Promise<Libp2p> {
  return await createHost({ privateKey: await generateKeyPair('Ed25519') as any, listen: '/ip4/127.0.0.1/tcp/0' }) as unknown as Libp2p
}

const release = (n: number): PlaceRequest => ({ v: PROTOCOL_VERSION, op: 'release', leaseId: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}` })
const ok: PlaceResponse = { v: PROTOCOL_VERSION, ok: true }

function pipelinedStreams (from: Libp2p, to?: Libp2p): Stream[] {
  return from.getConnections(to?.peerId).flatMap(c => c.streams).filter(s => s.protocol === PLACE_PROTOCOL_PIPELINED)
}

describe('framing through it-length-prefixed', () => {
  it('reads back frames of any size, whatever the chunks they arrive in, and refuses one over the limit', async () => {
    const sizes = [0, 1, 127, 128, 300, 16_383, 16_384, 70_000]
    // The largest frame allowed, in chunks that are not tiny (a million one-byte chunks prove nothing more).
    const cases = [1, 2, 7, 4096].map(chunk => ({ chunk, sizes })).concat([{ chunk: 4093, sizes: [...sizes, LIMITS.maxMessageBytes] }])
    for (const { chunk, sizes } of cases) {
      const payloads = sizes.map(n => Uint8Array.from({ length: n }, (_, i) => i % 251))
      const wire = Buffer.concat(payloads.map(p => lp.encode.single(p).subarray()))
      const chunks = Array.from({ length: Math.ceil(wire.length / chunk) }, (_, i) => wire.subarray(i * chunk, (i + 1) * chunk))
      const out: string[] = []
      for await (const f of lp.decode(chunks, { maxDataLength: LIMITS.maxMessageBytes })) out.push(Buffer.from(f.subarray()).toString('hex'))
      expect(out, `chunks of ${chunk} bytes`).toEqual(payloads.map(p => Buffer.from(p).toString('hex')))
    }
    const tooLarge = lp.encode.single(new Uint8Array(LIMITS.maxMessageBytes + 1)).subarray(0, 4)
    await expect(async () => { for await (const _ of lp.decode([tooLarge], { maxDataLength: LIMITS.maxMessageBytes })) { /* nothing */ } }).rejects.toMatchObject({ name: 'InvalidDataLengthError' })
  })
})

describe('place protocol between two hosts', () => {
  let server: Libp2p
  let client: Libp2p
  let serverAddr: Multiaddr
  let places: PlaceClient
  const handled: PlaceRequest[] = []
  const invalid: string[] = []
  /** Lease ids whose answer the test holds back until it releases them. */
  const held = new Map<string, () => void>()
  const hold = (n: number): void => { held.set((release(n) as { leaseId: string }).leaseId, () => {}) }
  const letGo = (n: number): void => {
    const id = (release(n) as { leaseId: string }).leaseId
    held.get(id)?.()
    held.delete(id)
  }

  beforeAll(async () => {
    server = await host()
    client = await host()
    await new PlaceServer({
      libp2p: server,
      timeoutMs: 2_000,
      onInvalid: (_from, reason) => { invalid.push(reason) },
      handle: async (req): Promise<PlaceResponse> => {
        handled.push(req)
        if (req.op === 'release' && held.has(req.leaseId)) await new Promise<void>(resolve => { held.set(req.leaseId, resolve) })
        if (req.op === 'delete') return { v: PROTOCOL_VERSION, ok: false, reason: `no ${req.vmId}` }
        return ok
      }
    }).start()
    serverAddr = server.getMultiaddrs()[0]
    places = new PlaceClient({ libp2p: client, timeoutMs: 2_000 })
  })

  afterAll(async () => {
    places?.stop()
    await client?.stop()
    await server?.stop()
  })

  it('pipelines requests on one stream, takes them in order and answers each in turn', async () => {
    handled.length = 0
    hold(1)
    const reqs = [release(1), release(2), { v: PROTOCOL_VERSION, op: 'delete', vmId: 'vm-abcdef12' } as PlaceRequest, release(3)]
    const answers = Promise.all(reqs.map(async r => await places.request([serverAddr], r)))
    // The first is held: the others are already taken, in order, and wait for it.
    await waitFor('the server to take all four requests', () => handled.length === 4 ? true : undefined, 5_000, 10)
    letGo(1)
    const got = await answers
    expect(got.map(a => a.ok)).toEqual([true, true, false, true])
    expect((got[2] as { reason: string }).reason).toBe('no vm-abcdef12')
    expect(handled).toEqual(reqs)
    expect(pipelinedStreams(client, server)).toHaveLength(1)
    // Later requests reuse the stream, by peer id as by address.
    expect(await places.request(server.peerId, release(4))).toEqual(ok)
    expect(pipelinedStreams(client, server)).toHaveLength(1)
  })

  it('takes requests whatever the chunks they arrive in', async () => {
    handled.length = 0
    const stream = await client.dialProtocol(server.peerId, PLACE_PROTOCOL_PIPELINED)
    const reqs = [release(30), release(31), release(32)]
    const wire = Buffer.concat(reqs.map(r => lp.encode.single(enc.encode(JSON.stringify(r))).subarray()))
    const answers = drainFrames(stream)
    // One byte per chunk: every length prefix and every body split across writes.
    await stream.sink((function * () { for (let i = 0; i < wire.length; i++) yield wire.subarray(i, i + 1) })())
    expect(await answers).toEqual({ frames: [ok, ok, ok] })
    expect(handled).toEqual(reqs)
  })

  it('still serves a 1.0.0 client: one request, one answer, one stream', async () => {
    const stream = await client.dialProtocol(server.peerId, PLACE_PROTOCOL)
    const lps = lpStream(stream)
    await lps.write(enc.encode(JSON.stringify(release(6))))
    expect(JSON.parse(dec.decode((await lps.read()).subarray()))).toEqual(ok)
    await stream.close()
  })

  it('falls back to 1.0.0 with a peer that offers only that, one stream per request', async () => {
    const old = await host()
    const seen: PlaceRequest[] = []
    // An agent of an earlier version: /discovery/place/1.0.0 and nothing else.
    await new RpcServer({
      libp2p: old,
      protocol: PLACE_PROTOCOL,
      schema: placeRequestSchema,
      timeoutMs: 2_000,
      onInvalid: () => {},
      handle: async (req) => { seen.push(req); return ok }
    }).start()
    try {
      const addr = old.getMultiaddrs()[0]
      // Three at once: the first learns the peer's version, the two queued behind it go through 1.0.0 too.
      expect(await Promise.all([20, 21, 22].map(async n => await places.request([addr], release(n))))).toEqual([ok, ok, ok])
      expect(await places.request(old.peerId, release(23))).toEqual(ok)
      expect(seen.map(r => (r as { leaseId: string }).leaseId).sort()).toEqual([20, 21, 22, 23].map(n => (release(n) as { leaseId: string }).leaseId))
      expect(pipelinedStreams(client, old)).toEqual([])
    } finally {
      await old.stop()
    }
  })

  it('answers a bad request with the reason, counts it, hands nothing to the agent, and ends the stream', async () => {
    handled.length = 0
    const before = invalid.length
    const stream = await client.dialProtocol(server.peerId, PLACE_PROTOCOL_PIPELINED)
    const answers = drainFrames(stream)
    const bad = { v: 1, op: 'reserve', leaseId: 'nope', resources: { cpu: -5, memMiB: 1 }, ttlMs: 1000 }
    // What follows a bad request is not read: the stream ends with the one answer.
    await stream.sink([lp.encode.single(enc.encode(JSON.stringify(bad))), lp.encode.single(enc.encode(JSON.stringify(release(9))))])
    const { frames } = await answers
    expect(frames).toHaveLength(1)
    expect(frames[0]).toMatchObject({ ok: false, reason: expect.stringMatching(/invalid request/) })
    expect(invalid.length).toBe(before + 1)
    expect(handled).toEqual([])
    // The agent's own channel is unaffected.
    expect(await places.request(server.peerId, release(7))).toEqual(ok)
  })

  it('refuses a frame over the size limit before reading it, and counts it', async () => {
    handled.length = 0
    const before = invalid.length
    const stream = await client.dialProtocol(server.peerId, PLACE_PROTOCOL_PIPELINED)
    const answers = drainFrames(stream)
    // Only the length prefix of a frame one byte over the limit: the server must not wait for the body.
    await stream.sink([lp.encode.single(new Uint8Array(LIMITS.maxMessageBytes + 1)).subarray(0, 3)])
    const { frames } = await answers
    expect(frames).toEqual([{ v: PROTOCOL_VERSION, ok: false, reason: expect.stringMatching(/invalid request: the message is larger than/) }])
    expect(invalid.length).toBe(before + 1)
    expect(handled).toEqual([])
  })

  it('reports a request to a peer it cannot reach as never sent', async () => {
    const gone = await host()
    const addr = gone.getMultiaddrs()[0]
    await gone.stop()
    await expect(places.request([addr], release(8))).rejects.toMatchObject({ name: 'PlaceUnsentError' })
  })

  it('drops the answer of a request the caller gave up on, and keeps the others in order', async () => {
    hold(40)
    const gaveUp = new AbortController()
    const first = places.request(server.peerId, release(40), { signal: gaveUp.signal })
    const second = places.request(server.peerId, release(41))
    await waitFor('the server to take the held request', () => held.get((release(40) as { leaseId: string }).leaseId) != null && handled.some(r => (r as { leaseId?: string }).leaseId === (release(41) as { leaseId: string }).leaseId) ? true : undefined, 5_000, 10)
    gaveUp.abort()
    await expect(first).rejects.toMatchObject({ name: 'AbortError' })
    letGo(40)
    expect(await second).toEqual(ok)
    // An abort before the request is written: it never leaves.
    await expect(places.request(server.peerId, release(42), { signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'PlaceUnsentError' })
  })

  it('times out an answer that does not come, and closes that stream', async () => {
    const impatient = new PlaceClient({ libp2p: client, timeoutMs: 300 })
    try {
      expect(await impatient.request(server.peerId, release(50))).toEqual(ok)
      hold(51)
      await expect(impatient.request(server.peerId, release(51))).rejects.toMatchObject({ name: 'PlaceTimeoutError' })
      letGo(51)
      // A new stream for the next request.
      expect(await impatient.request(server.peerId, release(52))).toEqual(ok)
    } finally {
      impatient.stop()
    }
  })

  it('closes its streams when stopped; a request after that is not sent', async () => {
    const own = new PlaceClient({ libp2p: client, timeoutMs: 2_000 })
    const before = new Set(pipelinedStreams(client, server).map(s => s.id))
    expect(await own.request(server.peerId, release(60))).toEqual(ok)
    const mine = pipelinedStreams(client, server).filter(s => !before.has(s.id))
    expect(mine).toHaveLength(1)
    own.stop()
    await waitFor('the stopped client\'s stream to close', () => mine[0].status !== 'open' ? true : undefined, 5_000, 10)
    await expect(own.request(server.peerId, release(61))).rejects.toMatchObject({ name: 'PlaceUnsentError' })
  })
})

describe('the server\'s bounds', () => {
  let server: Libp2p
  let client: Libp2p
  const handled: PlaceRequest[] = []
  const invalid: string[] = []
  const waiting: Array<() => void> = []

  beforeAll(async () => {
    server = await host()
    client = await host()
    await new PlaceServer({
      libp2p: server,
      timeoutMs: 300,
      idleTimeoutMs: 600,
      onInvalid: (_from, reason) => { invalid.push(reason) },
      // Holds every answer until the test lets them go.
      handle: async (req) => {
        handled.push(req)
        await new Promise<void>(resolve => { waiting.push(resolve) })
        return ok
      }
    }).start()
    await client.dial(server.getMultiaddrs()[0])
  })

  afterAll(async () => {
    for (const go of waiting.splice(0)) go()
    await client?.stop()
    await server?.stop()
  })

  it('cuts off a request that does not arrive whole in time', async () => {
    const stream = await client.dialProtocol(server.peerId, PLACE_PROTOCOL_PIPELINED)
    const ended = drainFrames(stream)
    const frame = lp.encode.single(enc.encode(JSON.stringify(release(1)))).subarray()
    void stream.sink((async function * () {
      yield frame.subarray(0, 10)
      // The rest never comes; the stream is reset long before this ends.
      await new Promise(resolve => setTimeout(resolve, 5_000).unref())
    })()).catch(() => {})
    const started = performance.now()
    expect(await ended).toMatchObject({ frames: [], error: expect.any(String) })
    expect(performance.now() - started).toBeLessThan(3_000)
    expect(handled).toEqual([])
  })

  it('closes a stream that stays idle', async () => {
    const stream = await client.dialProtocol(server.peerId, PLACE_PROTOCOL_PIPELINED)
    void stream.sink((async function * () { await new Promise(resolve => setTimeout(resolve, 5_000).unref()) })()).catch(() => {})
    const started = performance.now()
    expect(await drainFrames(stream)).toMatchObject({ frames: [], error: expect.any(String) })
    expect(performance.now() - started).toBeGreaterThanOrEqual(500)
  })

  it('cuts off a client with more requests in flight than it may have', async () => {
    handled.length = 0
    const places = new PlaceClient({ libp2p: client, timeoutMs: 10_000 })
    try {
      const answers = Array.from({ length: MAX_QUEUED_ANSWERS + 2 }, async (_, i) => await places.request(server.peerId, release(i)).then(() => 'answered', (err: Error) => err.name))
      const outcomes = await Promise.all(answers)
      expect(new Set(outcomes)).toEqual(new Set(['PlaceStreamClosedError']))
      expect(handled.length).toBe(MAX_QUEUED_ANSWERS + 1)
    } finally {
      places.stop()
      for (const go of waiting.splice(0)) go()
    }
  })
})
