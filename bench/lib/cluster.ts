/**
 * A real local cluster for a benchmark, started and stopped through the CLI
 * (`discovery cluster up|down`), in a temporary folder of its own. Teardown
 * runs once, on success, failure or Ctrl-C, and then kills any agent left
 * whose --data-dir is under that folder (and only those).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { agentsUnder, alive } from './proc.ts'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const BIN = join(ROOT, 'bin', 'discovery.js')

export interface Member { index: number, pid: number, api: string, listen: string, dataDir: string, log: string }

export interface Cluster {
  dir: string
  nodes: Member[]
  /** Wall time of `cluster up`, ms. */
  upMs: number
  /** Stops every agent; `keep` leaves the folder (logs) in place. Safe to call more than once. */
  down: (keep?: boolean) => Promise<void>
}

/** CLI processes running now: stopped on Ctrl-C (a `cluster up` would otherwise wait on). */
const running = new Set<ChildProcess>()

/** Runs the CLI; resolves to its exit code and output. */
async function cli (args: string[], env: Record<string, string> = {}): Promise<{ code: number, stdout: string, stderr: string }> {
  return await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
    running.add(child)
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    child.on('error', reject)
    child.on('close', (code) => {
      running.delete(child)
      resolve({ code: code ?? 1, stdout, stderr })
    })
  })
}

async function portFree (port: number): Promise<boolean> {
  return await new Promise(resolve => {
    const server = createServer()
    server.once('error', () => { resolve(false) })
    server.listen(port, '127.0.0.1', () => { server.close(() => { resolve(true) }) })
  })
}

/** The API ports P..P+N-1 and libp2p ports P+1000..P+1000+N-1 that `cluster up` will take. */
export async function checkPorts (basePort: number, nodes: number): Promise<void> {
  const ports = Array.from({ length: nodes }, (_, i) => [basePort + i, basePort + 1000 + i]).flat()
  const busy: number[] = []
  for (const p of ports) if (!(await portFree(p))) busy.push(p)
  if (busy.length > 0) throw new Error(`ports ${busy.slice(0, 5).join(', ')}${busy.length > 5 ? '…' : ''} are in use: stop what holds them, or pick another base port`)
}

let current: Cluster | undefined
let onSignal: (() => void) | undefined

/** On Ctrl-C or SIGTERM: tear the running cluster down, then exit. */
function trapSignals (): void {
  if (onSignal != null) return
  onSignal = () => {
    process.stderr.write('\ninterrupted: stopping the cluster…\n')
    for (const child of running) if (child.exitCode == null && child.signalCode == null && child.spawnargs.includes('up')) child.kill('SIGTERM')
    void (current?.down() ?? Promise.resolve()).finally(() => process.exit(130))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
}

/** `env` goes to `cluster up`, and so to every agent it starts (NODE_OPTIONS, for one). */
export async function clusterUp (opts: { nodes: number, basePort: number, cpu: number, memMiB: number, waitS?: number, env?: Record<string, string>, extra?: string[] }): Promise<Cluster> {
  trapSignals()
  // Base port 0: the system picks free ports, nothing to check.
  if (opts.basePort !== 0) await checkPorts(opts.basePort, opts.nodes)
  const dir = mkdtempSync(join(tmpdir(), `discovery-bench-${opts.nodes}-`))
  let stopping: Promise<void> | undefined
  const cluster: Cluster = {
    dir,
    nodes: [],
    upMs: 0,
    down: async (keep = false) => {
      stopping ??= (async () => {
        const res = await cli(['cluster', 'down', '--dir', dir, '--purge', '--json'])
        if (res.code !== 0 && cluster.nodes.length > 0) process.stderr.write(`cluster down: ${res.stderr.trim()}\n`)
        // A cluster that failed half-way, or an agent that outlived `down`: ours by their data dir, nobody else's.
        let left = agentsUnder(dir)
        for (const pid of left) try { process.kill(pid, 'SIGTERM') } catch {}
        const end = Date.now() + 5_000
        while (Date.now() < end && left.some(alive)) await new Promise(r => setTimeout(r, 100))
        left = left.filter(alive)
        for (const pid of left) try { process.kill(pid, 'SIGKILL') } catch {}
        if (keep) process.stderr.write(`cluster folder kept: ${dir}\n`)
        else rmSync(dir, { recursive: true, force: true })
        if (current === cluster) current = undefined
      })()
      await stopping
    }
  }
  current = cluster
  const t0 = performance.now()
  const args = ['cluster', 'up', '--nodes', String(opts.nodes), '--dir', dir, '--base-port', String(opts.basePort),
    '--cpu', String(opts.cpu), '--mem', `${opts.memMiB}MiB`, '--json', ...(opts.waitS != null ? ['--wait', `${opts.waitS}s`] : []), ...(opts.extra ?? [])]
  const res = await cli(args, opts.env)
  cluster.upMs = performance.now() - t0
  if (res.code !== 0) {
    await cluster.down(true)
    throw new Error(`cluster up failed (exit ${res.code}): ${res.stderr.trim()}`)
  }
  cluster.nodes = (JSON.parse(res.stdout) as { nodes: Member[] }).nodes
  return cluster
}
