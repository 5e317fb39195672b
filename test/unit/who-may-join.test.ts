/**
 * Who may join, the pure parts: the swarm key's format (made and read, every
 * way a file can be wrong named in the error with the format expected), the
 * API token compared in constant time, and the partition gater's decisions.
 */
import * as crypto from 'node:crypto'
import { peerIdFromString } from '@libp2p/peer-id'
import { describe, expect, it, vi } from 'vitest'
import { tokenMatches } from '../../src/api/input.ts'
import { ManualClock } from '../../src/core/clock.ts'
import { PartitionGater } from '../../src/net/partition-gater.ts'
import { formatSwarmKey, parseSwarmKey, SWARM_KEY_HEADER } from '../../src/net/swarm-key.ts'

vi.mock('node:crypto', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:crypto')>()
  return { ...real, timingSafeEqual: vi.fn(real.timingSafeEqual) }
})

describe('the swarm key file', () => {
  it('is written in the pnet format and read back to the same 32 bytes', () => {
    const key = Uint8Array.from({ length: 32 }, (_, i) => i * 7)
    const text = formatSwarmKey(key)
    expect(text).toBe(`/key/swarm/psk/1.0.0/\n/base16/\n${Buffer.from(key).toString('hex')}\n`)
    expect(parseSwarmKey(text)).toEqual(key)
    // Two fresh keys differ.
    expect(formatSwarmKey()).not.toBe(formatSwarmKey())
  })

  it('accepts CRLF, upper-case hex, no final newline and trailing blank lines', () => {
    const hex = 'AB'.repeat(32)
    for (const text of [`${SWARM_KEY_HEADER}\r\n/base16/\r\n${hex}\r\n`, `${SWARM_KEY_HEADER}\n/base16/\n${hex}`, `${SWARM_KEY_HEADER}\n/base16/\n${hex}\n\n\n`]) {
      expect(parseSwarmKey(text)).toEqual(new Uint8Array(32).fill(0xab))
    }
  })

  it.each([
    ['empty', '', /0 lines instead of 3/],
    ['only the hex', 'ab'.repeat(32), /1 line instead of 3/],
    ['another header', `/key/swarm/psk/2.0.0/\n/base16/\n${'ab'.repeat(32)}`, /the first line is `\/key\/swarm\/psk\/2\.0\.0\/`/],
    ['base64', `${SWARM_KEY_HEADER}\n/base64/\n${'ab'.repeat(32)}`, /only base16 is read/],
    ['a short key', `${SWARM_KEY_HEADER}\n/base16/\n${'ab'.repeat(31)}`, /not 64 hexadecimal digits \(62 characters\)/],
    ['not hex', `${SWARM_KEY_HEADER}\n/base16/\n${'zz'.repeat(32)}`, /not 64 hexadecimal digits/],
    ['a fourth line', `${SWARM_KEY_HEADER}\n/base16/\n${'ab'.repeat(32)}\nmore`, /4 lines instead of 3/]
  ])('refuses %s, naming the file and the format expected', (_name, text, what) => {
    expect(() => parseSwarmKey(text, '/etc/discovery/swarm.key')).toThrow(what)
    try {
      parseSwarmKey(text, '/etc/discovery/swarm.key')
    } catch (err: any) {
      expect(err.name).toBe('SwarmKeyError')
      expect(err.message).toMatch(/^\/etc\/discovery\/swarm\.key: /)
      expect(err.message).toContain('expected three lines: `/key/swarm/psk/1.0.0/`, `/base16/`, then 64 hexadecimal digits')
      expect(err.message).toContain('discovery keygen')
    }
  })
})

describe('the API token', () => {
  const token = 'a-token-of-24-characters'
  it.each([
    [`Bearer ${token}`, true],
    [`bearer ${token}`, true],
    [`BEARER  ${token} `, true],
    [`Bearer ${token}x`, false],
    [`Bearer ${token.slice(0, -1)}`, false],
    ['Bearer x', false],
    [`Basic ${token}`, false],
    [token, false],
    [undefined, false],
    ['', false]
  ])('%s → %s', (header, ok) => {
    expect(tokenMatches(header, token)).toBe(ok)
  })

  it('is compared in constant time whatever came: fixed-length digests through timingSafeEqual, no early return on a length', () => {
    const spy = vi.mocked(crypto.timingSafeEqual)
    for (const header of ['Bearer x', `Bearer ${'y'.repeat(5000)}`, `Bearer ${token}`, undefined, 'Basic abc']) {
      spy.mockClear()
      tokenMatches(header, token)
      expect(spy).toHaveBeenCalledTimes(1)
      const [a, b] = spy.mock.calls[0] as [Buffer, Buffer]
      expect([a.length, b.length]).toEqual([32, 32])
    }
  })
})

describe('the partition gater', () => {
  const B = peerIdFromString('12D3KooWLTP43edgyPizPQELMfM8R1cvuMH9CTDevp445FqGAVmj')
  const C = peerIdFromString('12D3KooWQK7br6UGyNAraEtvTZU81BUSNw76T3Dpw6gLNU57RfRC')

  it('refuses nothing until told; both ways refuses dials and connections either way; heal lifts it', async () => {
    const clock = new ManualClock(1_000)
    const refused: string[] = []
    const gater = new PartitionGater({ clock, onRefused: (what, peer) => { refused.push(`${what}:${peer.slice(-4)}`) } })
    const g = gater.connectionGater
    expect([await g.denyDialPeer(B), await g.denyInboundEncryptedConnection(B), await g.denyOutboundEncryptedConnection(B)]).toEqual([false, false, false])
    expect(await gater.block([B.toString()], { direction: 'both' })).toEqual([{ peerId: B.toString(), direction: 'both', sinceMs: 1_000 }])
    expect([await g.denyDialPeer(B), await g.denyInboundEncryptedConnection(B), await g.denyOutboundEncryptedConnection(B)]).toEqual([true, true, true])
    expect([await g.denyDialPeer(C), await g.denyInboundEncryptedConnection(C)]).toEqual([false, false])
    expect(refused).toEqual(['dial:AVmj', 'inbound-connection:AVmj', 'outbound-connection:AVmj'])
    expect(gater.heal()).toEqual([B.toString()])
    expect(gater.blocked()).toEqual([])
    expect(await g.denyDialPeer(B)).toBe(false)
  })

  it('one way refuses only what they start: their connections, not our dials', async () => {
    const clock = new ManualClock(5)
    const gater = new PartitionGater({ clock })
    await gater.block([B.toString(), C.toString()], { direction: 'inbound' })
    const g = gater.connectionGater
    expect(await g.denyInboundEncryptedConnection(B)).toBe(true)
    expect(await g.denyDialPeer(B)).toBe(false)
    expect(await g.denyOutboundEncryptedConnection(B)).toBe(false)
    // A block set again with the same direction keeps its start; a new direction starts anew.
    clock.set(9)
    await gater.block([B.toString()], { direction: 'inbound' })
    await gater.block([C.toString()], { direction: 'both' })
    expect(gater.get(B.toString())).toEqual({ peerId: B.toString(), direction: 'inbound', sinceMs: 5 })
    expect(gater.get(C.toString())).toEqual({ peerId: C.toString(), direction: 'both', sinceMs: 9 })
    expect(gater.heal([C.toString(), 'unknown'])).toEqual([C.toString()])
    expect(gater.blocked().map(b => b.peerId)).toEqual([B.toString()])
  })
})
