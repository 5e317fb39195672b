/**
 * The stream activity of a bounded fan-out (src/net/stream-activity.ts): every
 * stream opened through the host, either way, marks its peer with the time.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { describe, expect, it } from 'vitest'
import { StreamActivity } from '../../src/net/stream-activity.ts'

const P1 = '12D3KooWLMXHK5qGXmr2vGfEMmpbNVmFtRmMbWfJWgt5kBDZNgLD'
const P2 = '12D3KooWRm9tVDpqn7ShkMjMf1bbSWwUyZk4Jn5DBk6qWzFMxYmN'

describe('StreamActivity', () => {
  it('marks the peer of each stream we open (by peer id or address) and of each a peer opens to a handler registered after it', async () => {
    let now = 1_000
    const handlers = new Map<string, (data: any) => void>()
    const host = {
      dialProtocol: async (_peer: unknown, protocol: string) => ({ protocol }),
      handle: async (protocol: string, handler: (data: any) => void) => { handlers.set(protocol, handler) }
    }
    const activity = StreamActivity.installed(host as any, () => now)
    expect(activity.lastMs(P1)).toBeUndefined()
    expect(await host.dialProtocol(peerIdFromString(P1), '/a/1')).toEqual({ protocol: '/a/1' })
    expect(activity.lastMs(P1)).toBe(1_000)
    now = 2_000
    await host.dialProtocol([multiaddr(`/ip4/127.0.0.1/tcp/1/p2p/${P2}`)], '/a/1')
    expect(activity.lastMs(P2)).toBe(2_000)
    let served = 0
    await host.handle('/b/1', () => { served++ })
    now = 3_000
    handlers.get('/b/1')!({ stream: {}, connection: { remotePeer: peerIdFromString(P1) } })
    expect(served).toBe(1)
    expect(activity.lastMs(P1)).toBe(3_000)
    expect(activity.lastMs(P2)).toBe(2_000)
  })

  it('a dial that fails marks nobody', async () => {
    const host = { dialProtocol: async (_peer: unknown, _protocol: string): Promise<unknown> => { throw new Error('refused') }, handle: async () => {} }
    const activity = StreamActivity.installed(host as any, () => 5)
    await expect(host.dialProtocol(peerIdFromString(P1), '/a/1')).rejects.toThrow('refused')
    expect(activity.lastMs(P1)).toBeUndefined()
  })
})
