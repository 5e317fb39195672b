/**
 * `npm run bench -- probe-cost [--nodes 50] [--interval 200ms] [--seconds 20] [--rounds 2] [--json]`
 *
 * What a failure detector's probe costs at N agent hosts on this machine,
 * two ways: libp2p's ping (a new stream per probe: yamux open,
 * multistream-select, 32 bytes each way, close) and `/discovery/swim/1.0.0`
 * (one ping and one ack frame on long-lived streams, JSON validated against
 * its schema). N processes (bench/lib/probe-peer.ts), each an agent's libp2p
 * host, all connected to each other; in each phase every process probes the
 * others round-robin once per interval. CPU per probe = (CPU of all the
 * processes in the phase − in an idle phase of the same length) / probes:
 * both ends of the probe, and what it costs gossipsub and the muxer around it.
 * First, two hosts in this process probe each other back to back (2,000
 * probes each way): the CPU of one probe with nothing else running.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { keyValues, table } from './lib/table.ts'
import { pairCost } from './lib/probe-pair.ts'

const PEER = fileURLToPath(new URL('./lib/probe-peer.ts', import.meta.url))

interface Report { mode: string, cpuMs: number, wallMs: number, probes: number, failed: number, answered: number, rttP50: number | null, rttP99: number | null }

const log = (line: string): void => { process.stderr.write(`[probe-cost] ${line}\n`) }

class Peer {
  readonly child: ChildProcess
  readonly #lines: string[] = []
  #waiter?: () => void

  constructor () {
    this.child = spawn(process.execPath, [PEER], { stdio: ['pipe', 'pipe', 'inherit'] })
    createInterface({ input: this.child.stdout! }).on('line', line => {
      this.#lines.push(line)
      this.#waiter?.()
    })
  }

  send (o: unknown): void {
    this.child.stdin!.write(JSON.stringify(o) + '\n')
  }

  async next (timeoutMs = 120_000): Promise<any> {
    const deadline = Date.now() + timeoutMs
    while (this.#lines.length === 0) {
      if (Date.now() > deadline) throw new Error('a probe peer did not answer in time')
      await new Promise<void>(resolve => { this.#waiter = resolve; setTimeout(resolve, 1000) })
    }
    return JSON.parse(this.#lines.shift()!)
  }
}

export async function main (args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      nodes: { type: 'string', default: '50' },
      interval: { type: 'string', default: '200' },
      seconds: { type: 'string', default: '20' },
      rounds: { type: 'string', default: '2' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false }
    },
    strict: true
  })
  if (values.help) {
    process.stdout.write('usage: npm run bench -- probe-cost [--nodes 50] [--interval MS] [--seconds 20] [--rounds 2] [--json]\n')
    return 0
  }
  const n = Number(values.nodes)
  const intervalMs = Number(values.interval.replace(/ms$/, ''))
  const durationMs = Number(values.seconds) * 1000
  const rounds = Number(values.rounds)
  if (!(n >= 2 && intervalMs > 0 && durationMs > 0 && rounds >= 1)) throw new Error('expected --nodes ≥ 2, --interval > 0, --seconds > 0, --rounds ≥ 1')
  log('two hosts in this process, probes back to back')
  const pair = await pairCost(2_000)
  process.stdout.write(table(['probe (two hosts, one process, back to back)', 'CPU per probe (both ends)', 'wall per probe'], pair.map(r => [r.mode === 'ping' ? 'libp2p ping' : '/discovery/swim/1.0.0', `${r.cpuMs.toFixed(3)} ms`, `${r.wallMs.toFixed(3)} ms`])) + '\n\n')
  const peers: Peer[] = []
  const stop = (): void => { for (const p of peers) p.child.kill('SIGKILL') }
  process.once('SIGINT', () => { stop(); process.exit(130) })
  try {
    log(`starting ${n} hosts`)
    for (let i = 0; i < n; i++) peers.push(new Peer())
    const ready = await Promise.all(peers.map(async p => await p.next()))
    const addrs = ready.map(r => r.addr as string)
    log('connecting every host to every other')
    for (const p of peers) p.send({ cmd: 'connect', addrs })
    const connected = await Promise.all(peers.map(async p => (await p.next()).connected as number))
    log(`connections per host: min ${Math.min(...connected)}, max ${Math.max(...connected)}`)
    // Streams opened once, code warmed up: what is measured after is the steady state of a running agent.
    log('warming up (not measured)')
    for (const mode of ['ping', 'swim'] as const) {
      for (const p of peers) p.send({ cmd: 'phase', mode, intervalMs, durationMs: Math.max(5_000, 2 * n * intervalMs) })
      await Promise.all(peers.map(async p => await p.next(n * intervalMs * 2 + 120_000)))
    }
    const phases: Array<'idle' | 'ping' | 'swim'> = []
    for (let r = 0; r < rounds; r++) phases.push('idle', 'ping', 'swim')
    const totals = new Map<string, { cpuMs: number, probes: number, failed: number, rtt50: number[], rtt99: number[], phases: number }>()
    for (const mode of phases) {
      log(`phase ${mode}: ${durationMs / 1000} s`)
      for (const p of peers) p.send({ cmd: 'phase', mode, intervalMs, durationMs })
      const reports: Report[] = await Promise.all(peers.map(async p => await p.next(durationMs + 60_000)))
      const t = totals.get(mode) ?? { cpuMs: 0, probes: 0, failed: 0, rtt50: [], rtt99: [], phases: 0 }
      t.phases++
      for (const r of reports) {
        t.cpuMs += r.cpuMs
        t.probes += r.probes
        t.failed += r.failed
        if (r.rttP50 != null) t.rtt50.push(r.rttP50)
        if (r.rttP99 != null) t.rtt99.push(r.rttP99)
      }
      totals.set(mode, t)
    }
    const idle = totals.get('idle')!
    const idleCpuPerPhase = idle.cpuMs / idle.phases
    const rows = (['ping', 'swim'] as const).map(mode => {
      const t = totals.get(mode)!
      const extraMs = t.cpuMs - idleCpuPerPhase * t.phases
      const sorted = (xs: number[]): number[] => [...xs].sort((a, b) => a - b)
      return {
        mode,
        probes: t.probes,
        failed: t.failed,
        cpuPerProbeMs: extraMs / Math.max(1, t.probes),
        machineCpuPct: 100 * extraMs / (durationMs * t.phases),
        rttP50Ms: sorted(t.rtt50)[Math.floor(t.rtt50.length / 2)] ?? NaN,
        rttP99Ms: sorted(t.rtt99).at(-1) ?? NaN
      }
    })
    const result = { nodes: n, intervalMs, seconds: durationMs / 1000, rounds, idleCpuPctPerHost: 100 * idleCpuPerPhase / durationMs / n, rows }
    if (values.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n')
    else {
      process.stdout.write(keyValues([['hosts', String(n)], ['probe interval per host', `${intervalMs} ms`], ['phase', `${durationMs / 1000} s × ${rounds}`], ['idle CPU per host', `${result.idleCpuPctPerHost.toFixed(2)} %`]]) + '\n\n')
      process.stdout.write(table(['probe', 'probes', 'failed', 'CPU per probe (both ends)', 'CPU of all probes (% of one core)', 'RTT p50 (median host)', 'RTT p99 (worst host)'],
        rows.map(r => [r.mode === 'ping' ? 'libp2p ping' : '/discovery/swim/1.0.0', String(r.probes), String(r.failed), `${r.cpuPerProbeMs.toFixed(3)} ms`, `${r.machineCpuPct.toFixed(1)} %`, `${r.rttP50Ms.toFixed(1)} ms`, `${r.rttP99Ms.toFixed(1)} ms`])) + '\n')
    }
    for (const p of peers) p.send({ cmd: 'exit' })
    await new Promise(resolve => setTimeout(resolve, 2000))
    return 0
  } finally {
    stop()
  }
}
