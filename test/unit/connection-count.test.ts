/**
 * `discovery_connections_opened_total{direction}` (src/agent/metrics.ts
 * `countConnections`): each connection libp2p opens is counted once, by who
 * dialled; both series read 0 before any; nothing is counted once stopped.
 */
import { describe, expect, it } from 'vitest'
import { countConnections, createMetrics, zeroCounters } from '../../src/agent/metrics.ts'

async function opened (m: ReturnType<typeof createMetrics>): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  for (const v of (await m.connectionsOpened.get()).values) out[String(v.labels.direction)] = v.value
  return out
}

describe('countConnections', () => {
  it('counts connections opened by direction, from zero, until stopped', async () => {
    const m = createMetrics()
    zeroCounters(m)
    expect(await opened(m)).toEqual({ inbound: 0, outbound: 0 })
    const libp2p = new EventTarget()
    const off = countConnections(m, libp2p as any)
    const open = (direction: string): void => { libp2p.dispatchEvent(new CustomEvent('connection:open', { detail: { direction } })) }
    open('inbound')
    open('outbound')
    open('outbound')
    expect(await opened(m)).toEqual({ inbound: 1, outbound: 2 })
    off()
    open('inbound')
    expect(await opened(m)).toEqual({ inbound: 1, outbound: 2 })
  })
})
