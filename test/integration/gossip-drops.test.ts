/**
 * What gossipsub drops before the state topic's edge is counted too
 * (src/net/host.ts `countDroppedGossip`): a peer that writes a gossipsub
 * frame longer than its 4 MiB bound ends its own stream unread, and the
 * agent counts it in `discovery_invalid_messages_total{source="gossip"}`; a
 * state message over the topic's own 1 MiB bound, under gossipsub's, reaches
 * the edge and is counted there. The agent keeps answering.
 */
import { multiaddr } from '@multiformats/multiaddr'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createHost, STATE_TOPIC } from '../../src/net/index.ts'
import { type AgentProcess, metricValue, startAgent, tempDir, waitFor } from './helpers.ts'

let agent: AgentProcess
let rogue: Awaited<ReturnType<typeof createHost>>

async function invalidGossip (): Promise<number> {
  return metricValue(await (await fetch(`${agent.api.url}/metrics`)).text(), 'discovery_invalid_messages_total', { source: 'gossip' })
}

function varint (n: number): Uint8Array {
  const out: number[] = []
  while (n >= 0x80) { out.push((n & 0x7f) | 0x80); n = Math.floor(n / 128) }
  out.push(n)
  return Uint8Array.from(out)
}

beforeAll(async () => {
  agent = await startAgent(['--data-dir', tempDir('gossip-drops'), '--api', '127.0.0.1:0', '--listen', '/ip4/127.0.0.1/tcp/0'], 60_000)
  rogue = await createHost({ privateKey: await generateKeyPair('Ed25519') as unknown as PrivateKey, listen: '/ip4/127.0.0.1/tcp/0' })
}, 90_000)

afterAll(async () => {
  await rogue?.stop()
  agent?.proc.kill('SIGTERM')
  await agent?.exited
})

describe('gossip dropped by gossipsub before the edge', () => {
  it('counts a state message over 1 MiB at the edge, and a frame over 4 MiB that ends the stream', async () => {
    const addr = multiaddr(agent.addrs[0])
    await rogue.dial(addr)
    const pubsub = (rogue as any).services.pubsub
    pubsub.subscribe(STATE_TOPIC)
    await waitFor('the agent to know the rogue subscribed', () => pubsub.getSubscribers(STATE_TOPIC).some((p: any) => p.toString() === agent.peerId) ? true : undefined, 20_000, 100)
    const before = await invalidGossip()
    // 1.5 MiB of JSON: over the topic's bound, under gossipsub's.
    await pubsub.publish(STATE_TOPIC, new TextEncoder().encode(JSON.stringify({ pad: 'p'.repeat(1_500_000) })))
    await waitFor('the oversized state message counted at the edge', async () => (await invalidGossip()) >= before + 1 ? true : undefined, 20_000, 100)
    // A raw gossipsub frame announcing 5 MiB: gossipsub refuses to read it and ends the stream.
    const stream = await rogue.dialProtocol(addr, '/meshsub/1.2.0')
    const writer = stream.sink((async function * () { yield varint(5 * 1024 * 1024); yield new Uint8Array(64) })())
    await waitFor('the over-long frame counted', async () => (await invalidGossip()) >= before + 2 ? true : undefined, 20_000, 100)
    await writer.catch(() => {})
    expect((await agent.api.call<{ peerId: string }>('GET', '/v1/health')).peerId).toBe(agent.peerId)
  })
})
