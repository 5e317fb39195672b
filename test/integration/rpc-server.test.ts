/**
 * The one-request stream protocols' server (net/rpc.ts) between two real
 * libp2p hosts: bad input — a request that does not parse or match its
 * schema, a frame over the size limit, a frame cut short — is answered
 * with the reason, reported and never handled; a stream that ends, is reset
 * or stays silent before its first byte is dropped without a report (the
 * peer went away: no input arrived), and the server goes on serving.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Libp2p } from '@libp2p/interface'
import * as lp from 'it-length-prefixed'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { LIMITS, PROTOCOL_VERSION } from '../../src/core/messages.ts'
import { createHost } from '../../src/net/host.ts'
import { RpcServer, rpcRequest } from '../../src/net/rpc.ts'
import { drainFrames, waitFor } from './helpers.ts'

const PROTOCOL = '/discovery/test-rpc/1.0.0'
const requestSchema = z.object({ v: z.literal(PROTOCOL_VERSION), n: z.number().int() })
const answerSchema = z.object({ v: z.literal(PROTOCOL_VERSION), ok: z.boolean(), n: z.number().optional(), reason: z.string().optional() })
const enc = new TextEncoder()
const TIMEOUT_MS = 1_000

async function host (): Promise<Libp2p> {
  return await createHost({ privateKey: await generateKeyPair('Ed25519') as any, listen: '/ip4/127.0.0.1/tcp/0' }) as unknown as Libp2p
}

describe('RpcServer', () => {
  let server: Libp2p
  let client: Libp2p
  const handled: number[] = []
  const invalid: string[] = []

  beforeAll(async () => {
    server = await host()
    client = await host()
    await new RpcServer({
      libp2p: server,
      protocol: PROTOCOL,
      schema: requestSchema,
      timeoutMs: TIMEOUT_MS,
      onInvalid: (_from, reason) => { invalid.push(reason) },
      handle: async (req) => { handled.push(req.n); return { v: PROTOCOL_VERSION, ok: true, n: req.n * 2 } }
    }).start()
    await client.dial(server.getMultiaddrs()[0])
  })

  afterAll(async () => {
    await client?.stop()
    await server?.stop()
  })

  const call = async (n: number): Promise<unknown> => await rpcRequest(client, server.peerId, PROTOCOL, { v: PROTOCOL_VERSION, n }, answerSchema, 5_000)

  it('answers a request', async () => {
    expect(await call(21)).toEqual({ v: PROTOCOL_VERSION, ok: true, n: 42 })
    expect(handled).toContain(21)
  })

  it('answers, reports and does not handle a request that does not match its schema, or is not JSON', async () => {
    const before = invalid.length
    const count = handled.length
    for (const bytes of [enc.encode(JSON.stringify({ v: PROTOCOL_VERSION, n: 'seven' })), enc.encode('{not json')]) {
      const stream = await client.dialProtocol(server.peerId, PROTOCOL)
      const answer = drainFrames(stream)
      await stream.sink([lp.encode.single(bytes)])
      const { frames } = await answer
      expect(frames).toEqual([{ v: PROTOCOL_VERSION, ok: false, reason: expect.stringMatching(/^invalid request: /) }])
    }
    expect(invalid.length).toBe(before + 2)
    expect(handled.length).toBe(count)
  })

  it('refuses and reports a frame over the size limit without waiting for its body', async () => {
    const before = invalid.length
    const stream = await client.dialProtocol(server.peerId, PROTOCOL)
    const answer = drainFrames(stream)
    await stream.sink([lp.encode.single(new Uint8Array(LIMITS.maxMessageBytes + 1)).subarray(0, 3)])
    const { frames } = await answer
    expect(frames).toEqual([{ v: PROTOCOL_VERSION, ok: false, reason: expect.stringMatching(/^invalid request: /) }])
    expect(invalid.length).toBe(before + 1)
  })

  it('reports a frame cut short', async () => {
    const before = invalid.length
    const count = handled.length
    // A length prefix for 100 bytes, then 10 of them, and the end of the stream.
    const cut = await client.dialProtocol(server.peerId, PROTOCOL)
    const answer = drainFrames(cut)
    await cut.sink([lp.encode.single(new Uint8Array(100)).subarray(0, 11)])
    await answer
    await waitFor('the cut frame reported', () => invalid.length > before ? true : undefined, 5_000)
    expect(invalid.length).toBe(before + 1)
    expect(handled.length).toBe(count)
  })

  it('drops without a report a stream closed before its first byte, one reset, one silent', async () => {
    const before = invalid.length
    const count = handled.length
    // Closed at once: a bye cut short by the other side's close.
    const empty = await client.dialProtocol(server.peerId, PROTOCOL)
    const emptyEnd = drainFrames(empty)
    await empty.sink([])
    expect((await emptyEnd).frames).toEqual([])
    // Reset by the client.
    const reset = await client.dialProtocol(server.peerId, PROTOCOL)
    reset.abort(new Error('gone'))
    // Silent: the server gives up after its timeout and ends the stream.
    const silent = await client.dialProtocol(server.peerId, PROTOCOL)
    const t0 = Date.now()
    const silentEnd = await drainFrames(silent)
    expect(silentEnd.frames).toEqual([])
    expect(Date.now() - t0).toBeGreaterThanOrEqual(TIMEOUT_MS - 100)
    await waitFor('the server to end every stream', () => server.getConnections(client.peerId).flatMap(c => c.streams).some(s => s.protocol === PROTOCOL) ? undefined : true, 5_000)
    expect(invalid.slice(before)).toEqual([])
    expect(handled.length).toBe(count)
    // And it goes on serving.
    expect(await call(5)).toEqual({ v: PROTOCOL_VERSION, ok: true, n: 10 })
  })
})
