/**
 * `discovery cluster up|status|down`: N agent processes on this machine,
 * bootstrapped to each other. The cluster's file (`DIR/cluster.json`) records
 * each agent's pid, addresses and command line, so `status`, `down` and
 * `restart` (cluster-restart.ts) find them again.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { killQemu, vmQemus, waitExit } from '../hypervisor/index.ts'
import { ApiClient } from './client.ts'
import { OperationError, UsageError } from './errors.ts'
import { destroyLab, type NetLab } from './netns.ts'
import { shortId, table } from './table.ts'

export const BIN = fileURLToPath(new URL('../../bin/discovery.js', import.meta.url))

export interface ClusterMember {
  index: number
  pid: number
  api: string
  listen: string
  dataDir: string
  log: string
  /**
   * The agent's command line after the node binary (V8 flags, the CLI, its
   * arguments), with the ports it got pinned: what `cluster restart` runs
   * again. Absent in files written before it was recorded.
   */
  argv?: string[]
  /** The network namespace it runs in (`cluster up --netns`): restarts run it there again. */
  netns?: string
  /**
   * With `cluster up --per-process K`: the index of the first agent of the
   * process it shares with others (`pid` is that process's). Killing it
   * kills them all; `cluster restart` refuses it.
   */
  group?: number
}

export interface ClusterFile {
  basePort: number
  nodes: ClusterMember[]
  /** The API token's file, when the agents require one (`cluster up --admin`). */
  tokenFile?: string
  /** The namespaces and bridge of a cluster started with `--netns` (netns.ts), removed by `cluster down`. */
  netns?: NetLab
}

/** The token the cluster's agents require, read from the file cluster.json names (none when it names none). */
export function clusterToken (file: ClusterFile): string | undefined {
  if (file.tokenFile == null) return undefined
  try {
    return readFileSync(file.tokenFile, 'utf8').trim()
  } catch (err: any) {
    throw new OperationError(`the cluster's token file ${file.tokenFile} cannot be read (${err.code ?? err.message})`)
  }
}

/** `DIR/api.token`, made once with 24 random bytes: the agents and every client of the cluster read it. */
export function ensureTokenFile (dir: string): string {
  const path = join(dir, 'api.token')
  if (!existsSync(path)) writeFileSync(path, randomBytes(24).toString('hex') + '\n', { mode: 0o600 })
  return path
}

/** Writes cluster.json whole, through a rename: a reader (status, a harness) never sees half a file. */
export function writeClusterFile (dir: string, file: ClusterFile): void {
  const path = clusterFilePath(dir)
  writeFileSync(path + '.tmp', JSON.stringify(file, null, 2))
  renameSync(path + '.tmp', path)
}

export function clusterFilePath (dir: string): string {
  return join(resolve(dir), 'cluster.json')
}

export function readClusterFile (dir: string): ClusterFile | undefined {
  const path = clusterFilePath(dir)
  if (!existsSync(path)) return undefined
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as ClusterFile
  } catch {
    throw new OperationError(`${path} is not a cluster file: remove it, or pass another --dir`)
  }
}

export function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch {
    return false
  }
  // A child of ours that died stays a zombie until reaped: signals still reach it, but it runs no more.
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0] !== 'Z'
  } catch {
    return true
  }
}

/** Each agent dials up to three others around a ring: no hub, and any one agent can restart alone. */
export function bootstrapPeers (index: number, n: number): number[] {
  const out = new Set<number>()
  for (const j of [index - 1, index - 2, index + Math.floor(n / 2)]) {
    const k = ((j % n) + n) % n
    if (k !== index) out.add(k)
  }
  return [...out]
}

/**
 * Agent `index`'s ports, data dir, log and command line. With a base port,
 * agent i serves its API on P+i and libp2p on P+1000+i and dials its
 * neighbours' known ports. With base port 0 the system picks free ports
 * (no clash with anything else on the machine, as tests need): then
 * `bootstrap` gives the addresses of agents already up.
 */
export function memberPlan (index: number, n: number, dir: string, basePort: number, bootstrap?: string[], hostOf: (i: number) => string = () => '127.0.0.1'): ClusterMember & { args: string[] } {
  const auto = basePort === 0
  const apiPort = auto ? 0 : basePort + index
  const dataDir = join(dir, `agent-${index}`)
  const host = hostOf(index)
  const listen = `/ip4/${host}/tcp/${auto ? 0 : basePort + 1000 + index}`
  const peers = bootstrap ?? (auto ? [] : bootstrapPeers(index, n).map(k => `/ip4/${hostOf(k)}/tcp/${basePort + 1000 + k}`))
  const args = ['agent', '--listen', listen, '--api', `${host}:${apiPort}`, '--data-dir', dataDir, '--json']
  if (peers.length > 0) args.push('--bootstrap', peers.join(','))
  return { index, pid: 0, api: `http://${host}:${apiPort}`, listen, dataDir, log: join(dir, `agent-${index}.log`), args }
}

/** The ready line an agent started with `--json` writes (to its log, in a cluster): its API and libp2p addresses. */
export function readyLine (logPath: string, fromByte = 0): { api: string, addrs: string[], peerId?: string } | undefined {
  let text: string
  try {
    text = readFileSync(logPath).subarray(fromByte).toString('utf8')
  } catch {
    return undefined
  }
  for (const line of text.split('\n')) {
    if (!line.includes('"event":"ready"')) continue
    try {
      const r = JSON.parse(line) as { event?: string, api?: string, addrs?: string[], peerId?: string }
      if (r.event === 'ready' && typeof r.api === 'string' && Array.isArray(r.addrs)) return { api: r.api, addrs: r.addrs, peerId: r.peerId }
    } catch {}
  }
  return undefined
}

/**
 * V8 flags of the agents of a local cluster. Node sizes the young generation
 * from the machine's memory (64 MiB here, 24 GiB): with many agents on one
 * host that is memory paid many times over. Semi-spaces of 16 MiB took
 * 19 MiB off each agent's resident memory at 20 agents, for the same
 * throughput; of 4 MiB, 20 MiB more idle and 18 MiB under load at 10 agents
 * (docs/many-agents.md).
 *
 * And young-generation collections on the agent's own thread
 * (`--no-parallel-scavenge`): V8 scavenges with helper threads, one per
 * core, which on a host with far more agents than cores wait for a core like
 * everything else while the agent's thread waits for them: at 100 idle
 * agents a minor collection took 50 ms of wall time on average. Without the
 * helpers, 23 ms, and the collector's share of an idle agent's CPU profile
 * went from 25 % to 14 % (measured with `--single-threaded-gc`, which also
 * stops concurrent marking: that one cost 17 MiB more per agent under the
 * placement load at 20 agents; this one nothing).
 *
 * Since 2026-12-01 also `--single-threaded` (no background thread does V8's
 * work: marking, sweeping, compiling all on the agent's thread) and a young
 * generation of 4 MiB from the start (`--min-semi-space-size=4`; Node starts
 * at 1 MiB and an idle agent collected it about once a second). A hundred
 * idle agents spent a third of their CPU in V8's helper threads, waking and
 * waiting for a core; with both, 76–77 % of one core idle instead of 91–95 %
 * (one cluster each, 20 s samples), and `npm run bench -- placement --nodes
 * 100` gave 0.46× its baseline against 0.16–0.25× before — for 8–11 MiB
 * more of each agent's own memory under load (75–77 MiB against 66–67).
 *
 * `--single-threaded` itself is not passed but spelled out as the flags it
 * sets (`V8_WORK_ON_AGENT_THREAD`), less two that V8 counts in the hash it
 * checks code caches against (`--concurrent-maglev-max-threads=0` and the
 * WebAssembly ones; the agent compiles no WebAssembly of its own): with
 * `--single-threaded`, Node rejected the code cache of every built-in module
 * it ships (`NODE_DEBUG_NATIVE=CODE_CACHE`: 36 of 36 rejected on
 * `require('http')`) and compiled each one from source in every agent — 3.3 %
 * of the CPU a hundred agents spent coming up (`perf`, 2026-12-01).
 */
export const V8_WORK_ON_AGENT_THREAD = [
  '--single-threaded-gc', '--no-concurrent-recompilation', '--no-concurrent-sparkplug', '--no-concurrent-builtin-generation',
  '--no-lazy-compile-dispatcher', '--no-parallel-compile-tasks-for-eager-toplevel', '--no-parallel-compile-tasks-for-lazy',
  '--no-maglev-build-code-on-background', '--no-maglev-deopt-data-on-background'
]
export const AGENT_NODE_FLAGS = ['--max-semi-space-size=4', '--min-semi-space-size=4', '--no-parallel-scavenge', ...V8_WORK_ON_AGENT_THREAD]

/**
 * V8 flags of a process running `k` agents (`cluster up --per-process K`):
 * its young generation is shared by the k, so it is sized with them, 4 MiB
 * an agent up to 16 MiB. With 4 MiB for ten agents the process spent its
 * idle time collecting: 50 agents ten to a process took 80 % of one core
 * idle with 4 MiB, 65–69 % with 16 or 32 MiB, and no more memory (docs/many-agents.md).
 */
export function groupNodeFlags (k: number): string[] {
  return [`--max-semi-space-size=${Math.min(16, 4 * Math.max(1, k))}`, '--no-parallel-scavenge']
}

/**
 * The environment of the agents of a local cluster: glibc's malloc keeps an
 * arena for each thread that allocates, up to 8 per core (V8's compiler and
 * GC threads, libuv's pool); two are enough for an agent, and took 14–16 MiB
 * off each one's resident memory at 10 agents. A value of the operator's own
 * wins.
 */
export function agentEnv (): NodeJS.ProcessEnv {
  return { MALLOC_ARENA_MAX: '2', ...process.env }
}

export function agentArgv (plan: ReturnType<typeof memberPlan>, extra: string[]): string[] {
  return [...AGENT_NODE_FLAGS, BIN, ...plan.args, ...extra]
}

export function spawnAgent (plan: ReturnType<typeof memberPlan>, extra: string[], foreground: boolean, netns?: string): ChildProcess {
  return spawnArgv(agentArgv(plan, extra), plan.log, foreground, netns)
}

/**
 * Starts `node ARGV` with its output appended to `log`; detached (it outlives
 * us) unless in the foreground. In namespace `netns` through `ip netns exec`,
 * which execs node in place: the child's pid is the agent's.
 */
export function spawnArgv (argv: string[], log: string, foreground: boolean, netns?: string): ChildProcess {
  const fd = openSync(log, 'a')
  const [cmd, args] = netns != null ? ['ip', ['netns', 'exec', netns, process.execPath, ...argv]] : [process.execPath, argv]
  const child = spawn(cmd, args, {
    env: agentEnv(),
    detached: !foreground,
    stdio: foreground ? ['ignore', fd, fd, 'ipc'] : ['ignore', fd, fd]
  })
  closeSync(fd)
  if (!foreground) child.unref()
  return child
}

/** Polls `fn` until it gives a value, at most `deadlineMs`: the error names what did not happen and the last failure. */
export async function waitFor<T> (what: string, deadlineMs: number, fn: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + deadlineMs
  let last: unknown
  while (Date.now() < end) {
    try {
      const v = await fn()
      if (v !== undefined) return v
    } catch (err) {
      last = err
    }
    await new Promise(r => setTimeout(r, 200))
  }
  throw new OperationError(`${what} did not happen within ${deadlineMs} ms${last instanceof Error ? ` (${last.message})` : ''}`)
}

/** `argv` with `--api` and `--listen` set to the addresses the agent got (ports picked by the system pinned for its restarts). */
export function pinAddresses (argv: string[], api: string, listen: string): string[] {
  const out = [...argv]
  const set = (flag: string, value: string): void => {
    const i = out.indexOf(flag)
    if (i >= 0 && i + 1 < out.length) out[i + 1] = value
  }
  set('--api', api.replace(/^https?:\/\//, ''))
  set('--listen', listen)
  return out
}

export interface MemberStatus extends ClusterMember {
  up: boolean
  peerId?: string
  alivePeers?: number
  vms?: number
  usedCpu?: number
  usedMemMiB?: number
}

export async function clusterStatus (dir: string): Promise<MemberStatus[]> {
  const file = readClusterFile(dir)
  if (file == null) throw new OperationError(`no cluster in ${resolve(dir)}: start one with \`discovery cluster up --nodes N\``)
  const token = clusterToken(file)
  return await Promise.all(file.nodes.map(async m => {
    try {
      const client = new ApiClient(m.api, token, 2_000)
      const health = await client.call('GET', '/v1/health')
      const nodes = await client.call<any[]>('GET', '/v1/nodes')
      const me = nodes.find(n => n.peerId === health.peerId)
      return { ...m, up: true, peerId: health.peerId, alivePeers: nodes.filter(n => n.state === 'alive').length, vms: me?.vmCount ?? 0, usedCpu: me?.used.cpu, usedMemMiB: me?.used.memMiB }
    } catch {
      return { ...m, up: false }
    }
  }))
}

export function statusTable (rows: MemberStatus[]): string {
  return table(['#', 'peer', 'api', 'pid', 'state', 'peers', 'vms', 'vCPU used', 'MiB used'],
    rows.map(r => [r.index, r.peerId != null ? shortId(r.peerId) : '-', r.api, r.pid, r.up ? 'up' : 'down', r.alivePeers ?? '-', r.vms ?? '-', r.usedCpu ?? '-', r.usedMemMiB ?? '-']))
}

/**
 * Stops every agent of the cluster: SIGTERM, then SIGKILL after `graceMs`.
 * The qemu driver's VMs outlive their agents: with `purge` their QEMUs are
 * stopped too, with the data; without, they run on (counted in `vmsRunning`).
 */
export async function clusterDown (dir: string, graceMs = 10_000, purge = false): Promise<{ stopped: number, vmsStopped: number, vmsRunning: number }> {
  const file = readClusterFile(dir)
  if (file == null) throw new OperationError(`no cluster in ${resolve(dir)}: nothing to stop`)
  const pids = [...new Set(file.nodes.map(m => m.pid))].filter(alive)
  // Agents, not processes: with --per-process several share one pid.
  const stopped = file.nodes.filter(m => pids.includes(m.pid)).length
  for (const pid of pids) try { process.kill(pid, 'SIGTERM') } catch {}
  const end = Date.now() + graceMs
  while (Date.now() < end && pids.some(alive)) await new Promise(r => setTimeout(r, 100))
  for (const pid of pids.filter(alive)) try { process.kill(pid, 'SIGKILL') } catch {}
  while (Date.now() < end + 5_000 && pids.some(alive)) await new Promise(r => setTimeout(r, 50))
  if (file.netns != null) destroyLab(file.netns)
  rmSync(clusterFilePath(dir), { force: true })
  const qemus = (await Promise.all(file.nodes.map(async m => await vmQemus(resolve(m.dataDir))))).flat()
  if (purge) {
    for (const q of qemus) await killQemu(q.pid, q.paths.qmp)
    for (const q of qemus) await waitExit(q.pid, 5_000)
    for (const m of file.nodes) rmSync(m.dataDir, { recursive: true, force: true })
  }
  return { stopped, vmsStopped: purge ? qemus.length : 0, vmsRunning: purge ? 0 : qemus.length }
}
