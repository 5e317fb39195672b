/**
 * The CPU of one probe with nothing else running: two agent hosts in this
 * process probe each other back to back, with libp2p's ping (a stream per
 * probe) and with `/discovery/swim/1.0.0` (a ping and an ack frame on
 * long-lived streams, through the agent's SwimTransport).
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromString } from '@libp2p/peer-id'
import { PROTOCOL_VERSION } from '../../src/core/messages.ts'
import { createHost } from '../../src/net/host.ts'
import { SwimTransport } from '../../src/net/swim-transport.ts'

export async function pairCost (probes: number): Promise<Array<{ mode: 'ping' | 'swim', cpuMs: number, wallMs: number }>> {
  const host = async (): Promise<any> => await createHost({ privateKey: await generateKeyPair('Ed25519') as any, listen: '/ip4/127.0.0.1/tcp/0', meshDegree: 3, pingIntervalMs: 30_000, pingTimeoutMs: 30_000 })
  const a = await host()
  const b = await host()
  let acked: (() => void) | undefined
  const common = { dialTarget: (p: string) => peerIdFromString(p), dialTimeoutMs: 5_000, now: () => performance.now(), onInvalid: () => {}, onSendFailed: () => {} }
  const ta = new SwimTransport({ ...common, libp2p: a, onMessage: (_f, m) => { if (m.type === 'ack') acked?.() } })
  const tb: SwimTransport = new SwimTransport({ ...common, libp2p: b, onMessage: (f, m) => { if (m.type === 'ping') tb.send(f, { v: PROTOCOL_VERSION, type: 'ack', seq: m.seq, run: 1, inc: 0, updates: [] }) } })
  try {
    await a.dial(b.getMultiaddrs()[0])
    await ta.start()
    await tb.start()
    const target = b.peerId.toString()
    const swim = async (n: number): Promise<void> => {
      for (let i = 0; i < n; i++) {
        const answered = new Promise<void>(resolve => { acked = resolve })
        ta.send(target, { v: PROTOCOL_VERSION, type: 'ping', seq: i, run: 1, inc: 0, updates: [] })
        await answered
      }
    }
    // A ping that fails (the machine too busy for its timeout) is tried again: the figure is the CPU of the ones that got through.
    const ping = async (n: number): Promise<void> => { for (let i = 0; i < n; i++) await a.services.ping.ping(b.peerId).catch(async () => await a.services.ping.ping(b.peerId)) }
    // Streams opened and code warmed up first.
    await swim(200)
    await ping(200)
    const out: Array<{ mode: 'ping' | 'swim', cpuMs: number, wallMs: number }> = []
    for (const [mode, run] of [['swim', swim], ['ping', ping]] as const) {
      const c0 = process.cpuUsage()
      const t0 = performance.now()
      await run(probes)
      const c = process.cpuUsage(c0)
      out.push({ mode, cpuMs: (c.user + c.system) / 1000 / probes, wallMs: (performance.now() - t0) / probes })
    }
    return out
  } finally {
    await ta.stop()
    await tb.stop()
    await a.stop()
    await b.stop()
  }
}
