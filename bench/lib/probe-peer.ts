/**
 * One process of `npm run bench -- probe-cost`: an agent's libp2p host
 * (src/net/host.ts, the local profile's settings) that, told to on stdin,
 * connects to the others and probes them round-robin — with libp2p's ping
 * (a new stream per probe) or with `/discovery/swim/1.0.0` (a ping and an ack
 * on long-lived streams, through the agent's SwimTransport) — and reports on
 * stdout the CPU it spent and the probes it made. Commands and reports are
 * one JSON object per line.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { createInterface } from 'node:readline'
import { PROTOCOL_VERSION } from '../../src/core/messages.ts'
import type { SwimMessage } from '../../src/core/swim-messages.ts'
import { createHost } from '../../src/net/host.ts'
import { SwimTransport } from '../../src/net/swim-transport.ts'

type Command =
  | { cmd: 'connect', addrs: string[] }
  | { cmd: 'phase', mode: 'idle' | 'ping' | 'swim', intervalMs: number, durationMs: number }
  | { cmd: 'exit' }

const say = (o: unknown): void => { process.stdout.write(JSON.stringify(o) + '\n') }

const node = await createHost({ privateKey: await generateKeyPair('Ed25519') as any, listen: '/ip4/127.0.0.1/tcp/0', meshDegree: 3, pingIntervalMs: 30_000, pingTimeoutMs: 30_000 })
const self = node.peerId.toString()
const peers: PeerId[] = []
const sentAt = new Map<number, number>()
const rtts: number[] = []
let answered = 0
const transport = new SwimTransport({
  libp2p: node as any,
  dialTarget: peer => peerIdFromString(peer),
  dialTimeoutMs: 10_000,
  now: () => performance.now(),
  onInvalid: () => {},
  onSendFailed: () => {},
  onMessage: (from, msg) => {
    if (msg.type === 'ping') {
      answered++
      transport.send(from, { v: PROTOCOL_VERSION, type: 'ack', seq: msg.seq, run: 1, inc: 0, updates: [] })
    } else if (msg.type === 'ack') {
      const t = sentAt.get(msg.seq)
      if (t != null) rtts.push(performance.now() - t)
      sentAt.delete(msg.seq)
    }
  }
})
await transport.start()
say({ ready: true, id: self, addr: `${node.getMultiaddrs()[0].toString()}` })

async function phase (mode: 'idle' | 'ping' | 'swim', intervalMs: number, durationMs: number): Promise<void> {
  rtts.length = 0
  answered = 0
  let probes = 0
  let failed = 0
  let seq = 0
  let i = Math.floor(Math.random() * Math.max(1, peers.length))
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  await new Promise<void>(resolve => {
    const timer = setInterval(() => {
      if (performance.now() - t0 >= durationMs) {
        clearInterval(timer)
        resolve()
        return
      }
      if (mode === 'idle' || peers.length === 0) return
      const peer = peers[i++ % peers.length]
      probes++
      if (mode === 'ping') {
        (node.services.ping as any).ping(peer, { signal: AbortSignal.timeout(5_000) }).then((ms: number) => { rtts.push(ms) }, () => { failed++ })
      } else {
        const s = ++seq
        sentAt.set(s, performance.now())
        const msg: SwimMessage = { v: PROTOCOL_VERSION, type: 'ping', seq: s, run: 1, inc: 0, updates: [] }
        transport.send(peer.toString(), msg)
      }
    }, intervalMs)
  })
  // Let the last answers come in before reading the clock.
  await new Promise(resolve => setTimeout(resolve, 500))
  const cpu = process.cpuUsage(cpu0)
  if (mode === 'swim') failed = probes - rtts.length
  rtts.sort((a, b) => a - b)
  say({ report: true, mode, cpuMs: (cpu.user + cpu.system) / 1000, wallMs: performance.now() - t0, probes, failed, answered, rttP50: rtts[Math.floor(rtts.length * 0.5)] ?? null, rttP99: rtts[Math.floor(rtts.length * 0.99)] ?? null })
}

for await (const line of createInterface({ input: process.stdin })) {
  const c = JSON.parse(line) as Command
  if (c.cmd === 'connect') {
    const others = c.addrs.filter(a => !a.endsWith(self))
    await Promise.all(others.map(async a => { await node.dial(multiaddr(a), { signal: AbortSignal.timeout(60_000) }).catch(() => {}) }))
    peers.push(...others.map(a => peerIdFromString(multiaddr(a).getPeerId()!)))
    say({ connected: node.getConnections().length })
  } else if (c.cmd === 'phase') await phase(c.mode, c.intervalMs, c.durationMs)
  else break
}
await transport.stop()
await node.stop()
process.exit(0)
