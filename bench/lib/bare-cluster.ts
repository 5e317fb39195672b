/**
 * The baseline of the placement benchmark: N bare libp2p processes
 * (bench/bare-node.ts), bundled like the agent (bin/bundle.js) and run with
 * the agents' V8 flags, started in the same waves as `cluster up`
 * (src/cli/cluster-waves.ts). Up once every process answers and holds a
 * connection; then the file of every process's address is written, which
 * their creates draw peers from.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { AGENT_NODE_FLAGS, agentEnv } from '../../src/cli/cluster.ts'
import { bootstrapFor, waveSize, waves } from '../../src/cli/cluster-waves.ts'
import { alive } from './proc.ts'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const BUNDLE = join(ROOT, 'dist', 'bench', 'bare-node.mjs')

export interface BareMember { index: number, pid: number, api: string, addr: string, child: ChildProcess }

export interface BareCluster {
  nodes: BareMember[]
  /** Wall time from the first spawn until every process answered with a connection, ms. */
  upMs: number
  down: () => Promise<void>
}

/** Bundles bench/bare-node.ts (a few seconds): a baseline that loaded hundreds of modules would start slower than the agent. */
async function bundle (): Promise<string> {
  const { build } = await import('rolldown')
  mkdirSync(join(ROOT, 'dist', 'bench'), { recursive: true })
  await build({
    input: join(ROOT, 'bench', 'bare-node.ts'),
    platform: 'node',
    logLevel: 'silent',
    write: true,
    output: { file: BUNDLE, format: 'esm', minify: { compress: { keepNames: { function: true, class: true } }, mangle: false, codegen: { removeWhitespace: true } }, codeSplitting: false }
  })
  return BUNDLE
}

const sleep = async (ms: number): Promise<void> => { await new Promise(r => setTimeout(r, ms)) }

export async function bareClusterUp (opts: { nodes: number, log?: (line: string) => void }): Promise<BareCluster> {
  const file = await bundle()
  const dir = mkdtempSync(join(tmpdir(), `discovery-bare-${opts.nodes}-`))
  const peersFile = join(dir, 'peers.txt')
  const members: BareMember[] = []
  const down = async (): Promise<void> => {
    for (const m of members) if (m.child.exitCode == null) m.child.kill('SIGTERM')
    const end = Date.now() + 5_000
    while (Date.now() < end && members.some(m => alive(m.pid))) await sleep(100)
    for (const m of members) if (alive(m.pid)) m.child.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
  const t0 = performance.now()
  try {
    const ready = new Map<number, { api: string, addr: string }>()
    for (const wave of waves(opts.nodes, waveSize(availableParallelism()), true)) {
      const up = [...ready.keys()]
      await Promise.all(wave.map(async i => {
        const boot = bootstrapFor(i, up).map(k => ready.get(k)!.addr)
        const child = spawn(process.execPath, [...AGENT_NODE_FLAGS, file, '--listen', '/ip4/127.0.0.1/tcp/0', '--api', '127.0.0.1:0', '--bootstrap', boot.join(','), '--peers', peersFile], { env: agentEnv(), stdio: ['ignore', 'pipe', 'inherit'] })
        const m: BareMember = { index: i, pid: child.pid ?? 0, api: '', addr: '', child }
        members.push(m)
        const line = await new Promise<string>((resolve, reject) => {
          createInterface({ input: child.stdout! }).once('line', resolve)
          child.once('exit', (code) => { reject(new Error(`bare node ${i} exited with ${code}`)) })
        })
        const r = JSON.parse(line) as { api: string, addrs: string[] }
        m.api = r.api
        m.addr = r.addrs[0]
        ready.set(i, { api: r.api, addr: r.addrs[0] })
      }))
    }
    writeFileSync(peersFile, members.map(m => m.addr).join('\n') + '\n')
    // Up: every process answers and holds a connection (the first one waits for the others to dial it).
    const pending = new Set(members)
    const deadline = Date.now() + 120_000
    while (pending.size > 0) {
      if (Date.now() > deadline) throw new Error(`${pending.size} bare nodes without a connection after 120 s`)
      await Promise.all([...pending].map(async m => {
        try {
          const h = await (await fetch(`${m.api}/v1/health`, { signal: AbortSignal.timeout(5_000) })).json() as { connections: number }
          if (h.connections > 0 || opts.nodes === 1) pending.delete(m)
        } catch {}
      }))
      if (pending.size > 0) await sleep(250)
    }
  } catch (err) {
    await down()
    throw err
  }
  return { nodes: members.sort((a, b) => a.index - b.index), upMs: performance.now() - t0, down }
}
