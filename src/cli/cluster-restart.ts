/**
 * `discovery cluster restart I`: starts agent I of a local cluster again, on
 * its data dir, with the command line `cluster up` recorded for it (its
 * addresses, capacity and flags), and records its new pid in cluster.json so
 * that `status` and `down` find it. A running agent is stopped first (SIGTERM,
 * SIGKILL after the grace). The chaos harness restarts the agents it killed
 * through this.
 */
import { existsSync, statSync } from 'node:fs'
import { resolve } from 'node:path'
import { ApiClient } from './client.ts'
import { alive, type ClusterMember, clusterToken, readClusterFile, readyLine, spawnArgv, waitFor, writeClusterFile } from './cluster.ts'
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
  // Read, change, write with no await between: restarts of other agents by this process never lose each other's pid.
  const record = (changes: Partial<ClusterMember>): ClusterMember => {
    const now = readClusterFile(dir) ?? file
    const m = now.nodes.find(n => n.index === index)!
    Object.assign(m, changes)
    writeClusterFile(dir, now)
    return { ...m }
  }
  record({ pid })
  const ready = await waitFor(`agent ${index} ready (see ${member.log})`, opts.waitMs, async () => {
    if (!alive(pid)) throw new OperationError(`agent ${index} exited: see ${member.log}`)
    return readyLine(member.log, from)
  })
  const updated = record({ api: ready.api, listen: ready.addrs[0].replace(/\/p2p\/[^/]+$/, '') })
  const client = new ApiClient(updated.api, clusterToken(file), 2_000)
  await waitFor(`agent ${index} answering on ${updated.api} (see ${member.log})`, opts.waitMs, async () => {
    if (!alive(pid)) throw new OperationError(`agent ${index} exited: see ${member.log}`)
    return (await client.request('GET', '/v1/health')).status === 200 ? true : undefined
  })
  return updated
}
