/**
 * `discovery cluster restart I`: starts agent I of a local cluster again, on
 * its data dir, with the command line `cluster up` recorded for it (its
 * addresses, capacity and flags), and records its new pid in cluster.json so
 * that `status` and `down` find it. A running agent is stopped first (SIGTERM,
 * SIGKILL after the grace). The chaos harness restarts the agents it killed
 * through this; and, with `cluster up --per-process`, a whole process of
 * agents through `clusterRestartGroup`.
 */
import { existsSync, statSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { ApiClient } from './client.ts'
import { alive, BIN, type ClusterFile, type ClusterMember, clusterToken, groupNodeFlags, readClusterFile, readyLine, spawnArgv, waitFor, writeClusterFile } from './cluster.ts'
import { OperationError, UsageError } from './errors.ts'

export interface RestartOptions {
  /** How long the agent may take to print its ready line and answer `GET /v1/health`. */
  waitMs: number
  /** Between SIGTERM and SIGKILL when the agent is still running. */
  graceMs?: number
}

/**
 * The recorded command line, with `--bootstrap` replaced by the addresses of
 * up to three other members that are running now: those it was first given
 * (agent 0 in a cluster with ports picked by the system) may be down, and an
 * agent with nobody to dial would stay alone.
 */
export function restartArgv (member: ClusterMember, others: ClusterMember[]): string[] {
  if (member.argv == null) throw new OperationError(`cluster.json records no command line for agent ${member.index} (a cluster started by an older version): stop it with \`discovery cluster down\` and start it again`)
  const argv = [...member.argv]
  const peers = others.filter(m => m.index !== member.index && alive(m.pid)).slice(0, 3).map(m => m.listen)
  const i = argv.indexOf('--bootstrap')
  if (i >= 0) argv.splice(i, 2)
  if (peers.length > 0) argv.push('--bootstrap', peers.join(','))
  return argv
}

async function stop (pid: number, graceMs: number): Promise<void> {
  if (!alive(pid)) return
  try { process.kill(pid, 'SIGCONT') } catch {}
  try { process.kill(pid, 'SIGTERM') } catch {}
  const end = Date.now() + graceMs
  while (Date.now() < end && alive(pid)) await new Promise(r => setTimeout(r, 100))
  if (alive(pid)) try { process.kill(pid, 'SIGKILL') } catch {}
  while (alive(pid)) await new Promise(r => setTimeout(r, 50))
}

/** Restarts agent `index` of the cluster in `dir`; resolves with its member entry once it answers. */
export async function clusterRestart (dir: string, index: number, opts: RestartOptions): Promise<ClusterMember> {
  const file = readClusterFile(dir)
  if (file == null) throw new OperationError(`no cluster in ${resolve(dir)}: start one with \`discovery cluster up --nodes N\``)
  const member = file.nodes.find(m => m.index === index)
  if (member == null) throw new UsageError(`Expected an agent index from 0 to ${file.nodes.length - 1}, got ${index}`)
  if (member.group != null) {
    const shared = file.nodes.filter(m => m.group === member.group).map(m => m.index)
    throw new OperationError(`agent ${index} runs in one process with agents ${shared[0]}–${shared[shared.length - 1]} (cluster up --per-process): it cannot be restarted alone; stop the cluster and start it again`)
  }
  await stop(member.pid, opts.graceMs ?? 10_000)
  const argv = restartArgv(member, file.nodes)
  const from = existsSync(member.log) ? statSync(member.log).size : 0
  const child = spawnArgv(argv, member.log, false, member.netns)
  const pid = child.pid ?? 0
  record(dir, file, index, { pid })
  return await answering(dir, file, member, pid, from, opts.waitMs)
}

/**
 * Restarts the process of agents `group` (`cluster up --per-process`: the
 * index of its first agent) on their data dirs: the process is stopped if it
 * runs, started again with each agent's recorded command line, its bootstrap
 * peers taken among the agents of other processes running now; resolves
 * with their member entries once every one answers.
 */
export async function clusterRestartGroup (dir: string, group: number, opts: RestartOptions): Promise<ClusterMember[]> {
  const file = readClusterFile(dir)
  if (file == null) throw new OperationError(`no cluster in ${resolve(dir)}: start one with \`discovery cluster up --nodes N\``)
  const members = file.nodes.filter(m => m.group === group)
  if (members.length === 0) throw new UsageError(`Expected the first agent of a process of the cluster in ${resolve(dir)}, got ${group}`)
  await stop(members[0].pid, opts.graceMs ?? 10_000)
  const others = file.nodes.filter(m => m.group !== group)
  // Each agent's flags after `agent`, as `discovery agents --spec` takes them (src/cli/agent-group.ts).
  const agents = members.map(m => {
    const argv = restartArgv(m, others)
    const at = argv.indexOf(BIN)
    return { argv: argv.slice(at + 2), log: m.log }
  })
  const specFile = join(dir, `group-${group}.json`)
  writeFileSync(specFile, JSON.stringify({ agents }, null, 2))
  const from = members.map(m => existsSync(m.log) ? statSync(m.log).size : 0)
  const child = spawnArgv([...groupNodeFlags(members.length), BIN, 'agents', '--spec', specFile], join(dir, `group-${group}.log`), false)
  const pid = child.pid ?? 0
  for (const m of members) record(dir, file, m.index, { pid })
  return await Promise.all(members.map(async (m, i) => await answering(dir, file, m, pid, from[i], opts.waitMs)))
}

/** Read, change, write with no await between: restarts of other agents by this process never lose each other's pid. */
function record (dir: string, file: ClusterFile, index: number, changes: Partial<ClusterMember>): ClusterMember {
  const now = readClusterFile(dir) ?? file
  const m = now.nodes.find(n => n.index === index)!
  Object.assign(m, changes)
  writeClusterFile(dir, now)
  return { ...m }
}

/** Waits for the ready line agent `member` writes to its log after byte `from`, then for its API to answer; records its addresses. */
async function answering (dir: string, file: ClusterFile, member: ClusterMember, pid: number, from: number, waitMs: number): Promise<ClusterMember> {
  const index = member.index
  const ready = await waitFor(`agent ${index} ready (see ${member.log})`, waitMs, async () => {
    if (!alive(pid)) throw new OperationError(`agent ${index} exited: see ${member.log}`)
    return readyLine(member.log, from)
  })
  const updated = record(dir, file, index, { api: ready.api, listen: ready.addrs[0].replace(/\/p2p\/[^/]+$/, '') })
  const client = new ApiClient(updated.api, clusterToken(file), 2_000)
  await waitFor(`agent ${index} answering on ${updated.api} (see ${member.log})`, waitMs, async () => {
    if (!alive(pid)) throw new OperationError(`agent ${index} exited: see ${member.log}`)
    return (await client.request('GET', '/v1/health')).status === 200 ? true : undefined
  })
  return updated
}
