/**
 * `discovery cluster up`: N agents on this machine, started in waves sized to
 * the machine (cluster-waves.ts), each wave answering before the next starts,
 * with progress on stderr. It waits for as long as the cluster makes
 * progress — agents coming up, agents seeing more of the others alive — and
 * gives up only once nothing has progressed for `stallMs`, naming the agents
 * that hold it back and why (exited, silent, or missing peers), with the last
 * line of their logs.
 */
import type { ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { availableParallelism, setPriority } from 'node:os'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { ApiClient } from './client.ts'
import { MAX_AGENTS_PER_PROCESS } from './agent-group.ts'
import { agentArgv, alive, BIN, type ClusterFile, clusterFilePath, type ClusterMember, clusterToken, ensureTokenFile, groupNodeFlags, memberPlan, pinAddresses, readClusterFile, readyLine, spawnAgent, spawnArgv, writeClusterFile } from './cluster.ts'
import { bootstrapFor, crowdingAdvice, StallWatch, waveSize, waves } from './cluster-waves.ts'
import { OperationError, UsageError } from './errors.ts'
import { agentIp, createLab, destroyLab, type NetLab, nsName } from './netns.ts'
import { formatSwarmKey } from '../net/swarm-key.ts'

export interface UpOptions {
  nodes: number
  dir: string
  basePort: number
  foreground: boolean
  /** Extra flags passed to every agent (capacity, profile…). */
  agentArgs: string[]
  json: boolean
  /** How long the cluster may go without progress before `cluster up` gives up. */
  stallMs: number
  /** Agents started at once. Default: four per core (cluster-waves.ts). */
  waveSize?: number
  /**
   * The niceness each agent is given once it answers: on a busy host the
   * agents still starting then come before those already running (each needs
   * about 0.35 s of CPU to answer, and under CFS it otherwise gets only its
   * share among a hundred), and the rest of the machine before all of them.
   * Default 5; 0 leaves them as started. Raising a niceness needs no
   * privilege; lowering it again does, so the agents keep it.
   */
  nice?: number
  /** Where progress lines go. Default stderr. */
  progress?: (line: string) => void
  /**
   * Serve the admin routes (partitions, for chaos): the agents need a token,
   * made once into `DIR/api.token` (mode 0600) and recorded in cluster.json.
   */
  admin?: boolean
  /**
   * Each agent in a network namespace of its own, joined by a bridge
   * (netns.ts; root only): partitions can then be the kernel's. The agents
   * listen on their namespace's address, so they get a swarm key made into
   * `DIR/swarm.key` and an API token (as with `admin`).
   */
  netns?: boolean
  /**
   * Agents per process (`discovery agents`, agent-group.ts): each its own
   * libp2p node, store, API and log, sharing one Node binary, heap and event
   * loop. Default 1 (a process per agent). Such agents cannot be restarted
   * one by one, nor killed alone: chaos kills, pauses and restarts a whole
   * process of them at a time.
   */
  perProcess?: number
}

/** An agent's niceness once it answers (UpOptions.nice). */
export const DEFAULT_NICE = 5

/** Gives `pid` the niceness `nice` (no-op for 0); a process gone or a platform that refuses is left as it is. */
function renice (pid: number, nice: number): void {
  if (nice === 0) return
  try {
    setPriority(pid, nice)
  } catch {}
}

/** Between two looks at the agents' logs and APIs. */
const POLL_MS = 500
/** Agents asked for their view at once: a saturated machine answers slowly, and each answer lists every agent. */
const VIEW_QUERIES_AT_ONCE = 8
/** Progress lines at most this often, besides each wave's start. */
const PROGRESS_EVERY_MS = 5_000

interface Tracked extends ClusterMember {
  child: ChildProcess
  logFrom: number
  peerId?: string
  answering: boolean
  /** Alive agents it sees, itself included, as of its last answer. */
  seesAlive: number
  missing?: string[]
  /** Its libp2p addresses, from its ready line: what later agents dial. */
  addrs?: string[]
}

const sleep = async (ms: number): Promise<void> => { await new Promise(r => setTimeout(r, ms)) }

/**
 * This module runs from the bundle (bin/bundle-run.js: a CommonJS script,
 * where `import.meta.url` names it): bin/discovery.js found it current when
 * it started, and the script may not `import()` (bin/bundle-run.js).
 */
const FROM_BUNDLE = import.meta.url.endsWith('.cjs')

/**
 * Rebuilds the bundle the agents will run (bin/bundle.js) if a source changed
 * since it was built, so that a hundred agents do not each load the sources.
 * Best effort: without rolldown or on failure the agents run the sources.
 * Running from the bundle, it is current already.
 */
async function freshBundle (say: (line: string) => void): Promise<void> {
  if (FROM_BUNDLE) return
  try {
    const url = pathToFileURL(join(BIN, '..', 'bundle.js')).href
    const mod = await import(url) as { ensureBundle: () => Promise<string | undefined> }
    const t0 = Date.now()
    await mod.ensureBundle()
    if (Date.now() - t0 > 1_000) say(`bundled the agent in ${((Date.now() - t0) / 1000).toFixed(1)} s`)
  } catch (err: any) {
    say(`no bundle (${err?.message ?? err}): the agents run from the sources`)
  }
}

function lastLogLine (m: Tracked): string {
  try {
    const text = readFileSync(m.log).subarray(m.logFrom).toString('utf8').trim()
    const line = text.slice(text.lastIndexOf('\n') + 1)
    return line === '' ? 'its log is empty' : `last log line: ${line.slice(0, 300)}`
  } catch {
    return 'no log'
  }
}

export async function clusterUp (opts: UpOptions): Promise<{ file: ClusterFile, children: ChildProcess[] }> {
  const say = opts.progress ?? ((line: string) => { process.stderr.write(`cluster up: ${line}\n`) })
  const dir = resolve(opts.dir)
  const existing = readClusterFile(dir)
  if (existing != null && existing.nodes.some(m => alive(m.pid))) {
    throw new OperationError(`a cluster is already running in ${dir}: run \`discovery cluster down --dir ${opts.dir}\` first`)
  }
  if (opts.basePort !== 0 && opts.basePort + 1000 + opts.nodes > 65535) throw new UsageError(`Expected --base-port + 1000 + --nodes to stay under 65536, got ${opts.basePort}`)
  mkdirSync(dir, { recursive: true })
  await freshBundle(say)
  const t0 = Date.now()
  const auto = opts.basePort === 0
  const perProcess = opts.perProcess ?? 1
  if (perProcess > MAX_AGENTS_PER_PROCESS || perProcess < 1) throw new UsageError(`Expected --per-process to be from 1 to ${MAX_AGENTS_PER_PROCESS}, got ${perProcess}`)
  if (perProcess > 1 && opts.netns === true) throw new UsageError('--per-process and --netns contradict each other: a process has one network namespace, each agent of --netns its own')
  const cores = availableParallelism()
  const advice = crowdingAdvice(opts.nodes, perProcess, cores)
  if (advice != null) say(advice)
  const size = Math.max(opts.waveSize ?? waveSize(cores), perProcess)
  const plan = waves(opts.nodes, size, auto)
  const members: Tracked[] = []
  const file: ClusterFile = { basePort: opts.basePort, nodes: [] }
  const extra = [...opts.agentArgs]
  let token: string | undefined
  if (opts.admin === true || opts.netns === true) {
    file.tokenFile = ensureTokenFile(dir)
    token = clusterToken(file)
    extra.push('--api-token-file', file.tokenFile)
    if (opts.admin === true) extra.push('--admin')
  }
  let lab: NetLab | undefined
  if (opts.netns === true) {
    lab = createLab(opts.nodes)
    file.netns = lab
    const keyFile = join(dir, 'swarm.key')
    if (!existsSync(keyFile)) writeFileSync(keyFile, formatSwarmKey(), { mode: 0o600 })
    extra.push('--swarm-key', keyFile)
  }
  const hostOf = lab != null ? (i: number) => agentIp(lab, i) : undefined
  const save = (): void => {
    file.nodes = members.map(m => ({ index: m.index, pid: m.pid, api: m.api, listen: m.listen, dataDir: m.dataDir, log: m.log, argv: m.argv, ...(m.netns != null ? { netns: m.netns } : {}), ...(m.group != null ? { group: m.group } : {}) })).sort((a, b) => a.index - b.index)
    writeClusterFile(dir, file)
  }
  // Recorded before any agent starts: `cluster down` then removes the namespaces whatever happens next.
  if (lab != null) save()
  const watch = new StallWatch(opts.stallMs, Date.now())
  const elapsed = (): string => `${((Date.now() - t0) / 1000).toFixed(0)} s`
  let lastSaid = 0

  const start = (i: number, bootstrap?: string[]): void => {
    const p = memberPlan(i, opts.nodes, dir, opts.basePort, bootstrap, hostOf)
    const logFrom = existsSync(p.log) ? statSync(p.log).size : 0
    const netns = lab != null ? nsName(lab, i) : undefined
    const child = spawnAgent(p, extra, opts.foreground, netns)
    const { args: _args, ...member } = p
    // The command line `cluster restart` runs again (its ports pinned once the agent has them).
    members.push({ ...member, pid: child.pid ?? 0, argv: agentArgv(p, extra), child, logFrom, answering: false, seesAlive: 0, ...(netns != null ? { netns } : {}) })
  }

  /** Agents `list` in one process (`discovery agents`); its own output goes to `DIR/group-FIRST.log`. */
  const startGroup = (list: Array<{ i: number, bootstrap?: string[] }>): void => {
    const plans = list.map(({ i, bootstrap }) => memberPlan(i, opts.nodes, dir, opts.basePort, bootstrap, hostOf))
    const first = list[0].i
    const specFile = join(dir, `group-${first}.json`)
    writeFileSync(specFile, JSON.stringify({ agents: plans.map(p => ({ argv: [...p.args.slice(1), ...extra], log: p.log })) }, null, 2))
    const child = spawnArgv([...groupNodeFlags(list.length), BIN, 'agents', '--spec', specFile], join(dir, `group-${first}.log`), opts.foreground)
    for (const p of plans) {
      const { args: _args, ...member } = p
      const logFrom = existsSync(p.log) ? statSync(p.log).size : 0
      members.push({ ...member, pid: child.pid ?? 0, argv: agentArgv(p, extra), child, logFrom, answering: false, seesAlive: 0, group: first })
    }
  }

  /** Reads the ready lines of the agents started; fails at once on one that exited. */
  const readReady = (): void => {
    for (const m of members) {
      if (m.peerId != null) continue
      if (m.child.exitCode != null || m.child.signalCode != null || !alive(m.pid)) {
        throw new OperationError(`agent ${m.index} exited (${m.child.exitCode != null ? `code ${m.child.exitCode}` : (m.child.signalCode ?? 'gone')}) before it was ready: ${lastLogLine(m)} (see ${m.log})`)
      }
      const r = readyLine(m.log, m.logFrom)
      if (r == null) continue
      m.peerId = r.peerId ?? ''
      m.api = r.api
      m.listen = r.addrs[0].replace(/\/p2p\/[^/]+$/, '')
      m.argv = pinAddresses(m.argv ?? [], m.api, m.listen)
      m.addrs = r.addrs
      m.answering = true
      renice(m.pid, opts.nice ?? DEFAULT_NICE)
    }
  }

  try {
    // 1. The waves: each one started, then waited for until every agent of it answers.
    for (const [w, wave] of plan.entries()) {
      const up = members.filter(m => m.answering).map(m => m.index)
      const bootOf = (i: number): string[] | undefined => !auto ? undefined : i === 0 ? undefined : bootstrapFor(i, up).map(k => members.find(m => m.index === k)?.addrs?.[0]).filter((a): a is string => a != null)
      if (perProcess > 1) {
        for (let k = 0; k < wave.length; k += perProcess) startGroup(wave.slice(k, k + perProcess).map(i => ({ i, bootstrap: bootOf(i) })))
      } else {
        for (const i of wave) start(i, bootOf(i))
      }
      save()
      say(`wave ${w + 1}/${plan.length}: starting agents ${wave[0]}–${wave[wave.length - 1]} (${members.length}/${opts.nodes}, ${elapsed()})`)
      while (true) {
        readReady()
        const answering = members.filter(m => m.answering).length
        watch.progress(answering, Date.now())
        if (wave.every(i => members.find(m => m.index === i)!.answering)) break
        if (watch.stalled(Date.now())) {
          const silent = members.filter(m => !m.answering)
          throw new OperationError(`no progress for ${(opts.stallMs / 1000).toFixed(0)} s after ${elapsed()}: ` +
            silent.slice(0, 5).map(m => `agent ${m.index} has not printed its ready line: ${lastLogLine(m)} (see ${m.log})`).join('; ') +
            (silent.length > 5 ? `; and ${silent.length - 5} more` : ''))
        }
        await sleep(POLL_MS)
      }
    }
    save()
    say(`${opts.nodes} agents answering (${elapsed()}); waiting until each sees all ${opts.nodes} alive`)

    // 2. Every agent sees every other alive.
    let complete = 0
    while (complete < members.length) {
      const pending = members.filter(m => m.seesAlive < opts.nodes)
      for (let k = 0; k < pending.length; k += VIEW_QUERIES_AT_ONCE) {
        await Promise.all(pending.slice(k, k + VIEW_QUERIES_AT_ONCE).map(async m => {
          if (!alive(m.pid)) throw new OperationError(`agent ${m.index} exited: ${lastLogLine(m)} (see ${m.log})`)
          try {
            const nodes = await new ApiClient(m.api, token, 5_000).call<Array<{ peerId: string, state: string }>>('GET', '/v1/nodes')
            const seen = new Set(nodes.filter(n => n.state === 'alive').map(n => n.peerId))
            m.seesAlive = seen.size
            m.missing = members.filter(o => o.peerId != null && !seen.has(o.peerId)).map(o => String(o.index))
          } catch {
            // A saturated machine answers late: only no progress for stallMs counts.
          }
        }))
      }
      complete = members.filter(m => m.seesAlive >= opts.nodes).length
      const seen = members.reduce((sum, m) => sum + Math.min(m.seesAlive, opts.nodes), 0)
      if (watch.progress(opts.nodes + seen, Date.now()) && Date.now() - lastSaid > PROGRESS_EVERY_MS && complete < members.length) {
        lastSaid = Date.now()
        say(`${complete}/${opts.nodes} agents see all ${opts.nodes} alive (${elapsed()})`)
      }
      if (complete === members.length) break
      if (watch.stalled(Date.now())) {
        const laggards = members.filter(m => m.seesAlive < opts.nodes).sort((a, b) => a.seesAlive - b.seesAlive)
        throw new OperationError(`no progress for ${(opts.stallMs / 1000).toFixed(0)} s after ${elapsed()}: ` +
          laggards.slice(0, 5).map(m => `agent ${m.index} sees ${m.seesAlive} of ${opts.nodes} alive${m.missing != null && m.missing.length > 0 ? ` (not agents ${m.missing.slice(0, 10).join(', ')}${m.missing.length > 10 ? '…' : ''})` : ''}: ${lastLogLine(m)}`).join('; ') +
          (laggards.length > 5 ? `; and ${laggards.length - 5} more` : ''))
      }
      await sleep(POLL_MS)
    }
    say(`${opts.nodes} agents up, each seeing all ${opts.nodes} alive, in ${elapsed()}`)
  } catch (err) {
    // Leave nothing behind that `cluster down` could no longer find.
    for (const m of members) m.child.kill('SIGTERM')
    const end = Date.now() + 10_000
    while (Date.now() < end && members.some(m => alive(m.pid))) await sleep(100)
    for (const m of members) if (alive(m.pid)) try { process.kill(m.pid, 'SIGKILL') } catch {}
    while (Date.now() < end + 5_000 && members.some(m => alive(m.pid))) await sleep(50)
    if (lab != null) destroyLab(lab)
    rmSync(clusterFilePath(dir), { force: true })
    throw err
  }
  return { file, children: members.map(m => m.child) }
}
