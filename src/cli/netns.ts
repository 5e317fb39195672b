/**
 * A network namespace per agent (`cluster up --netns`, `discovery chaos
 * --netns`; root only): each agent gets its own network stack, joined to the
 * others by a veth to a bridge in the root namespace, one /24 of 10.77.0.0/16
 * per cluster (the bridge .1, agent i .i+2). The cluster's own processes —
 * `cluster status`, the chaos harness — reach the agents' APIs through the
 * bridge.
 *
 * Partitions are the kernel's, not the agent's: a policy-routing rule in an
 * agent's namespace (`from PEER blackhole`, ahead of the local table) drops
 * every packet that arrives from a peer, silently — a connection attempt
 * times out, an established connection's segments vanish, as on a broken
 * link — whatever the agent does, paused or restarted. Both ways: each side
 * drops what the other sends; one way: only the side named drops. The admin
 * route (admin-partitions.ts) instead closes and refuses connections in
 * libp2p's gater, which the agent sees at once.
 *
 * No delay: this kernel has no netem, and the bridge adds none (the edge lab,
 * deploy/edge-lab, puts a userspace delay line between namespaces).
 */
import { execFile, execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { OperationError, UsageError } from './errors.ts'

/** What cluster.json records of a cluster's namespaces: enough for `cluster down` to remove them. */
export interface NetLab {
  /** Prefix of the namespaces (`NAME-i`) and of the bridge (`NAMEbr`). */
  name: string
  bridge: string
  /** The cluster's /24, e.g. `10.77.12`: the bridge is .1, agent i .i+2. */
  subnet: string
  /** Namespaces made: agents 0 to size − 1. */
  size: number
}

/** The most agents a lab holds: a /24 less the network, the bridge and the broadcast. */
export const MAX_NETNS_AGENTS = 253
/** Priority of the drop rules; the local table's rule moves from 0 to after them. */
const DROP_PREF = 10
const LOCAL_PREF = 1000

export function nsName (lab: NetLab, index: number): string { return `${lab.name}-${index}` }
export function agentIp (lab: NetLab, index: number): string { return `${lab.subnet}.${index + 2}` }

/** The commands (`ip -batch` lines, root namespace) that make the bridge and each agent's namespace and veth. */
export function labLines (lab: NetLab, nodes: number): string[] {
  const out = [`link add ${lab.bridge} type bridge`, `addr add ${lab.subnet}.1/24 dev ${lab.bridge}`, `link set ${lab.bridge} up`]
  for (let i = 0; i < nodes; i++) {
    const ns = nsName(lab, i)
    out.push(`netns add ${ns}`, `link add ${ns} type veth peer name eth0 netns ${ns}`, `link set ${ns} master ${lab.bridge}`, `link set ${ns} up`)
  }
  return out
}

/** The commands (`ip -n NS -batch` lines) that address agent `index`'s side and make room for drop rules ahead of the local table. */
export function nsLines (lab: NetLab, index: number): string[] {
  return ['link set lo up', `addr add ${agentIp(lab, index)}/24 dev eth0`, 'link set eth0 up', `rule add pref ${LOCAL_PREF} lookup local`, 'rule del pref 0']
}

/** Drop every packet from `ips` (inside the namespace that takes them). */
export function dropLines (ips: string[]): string[] {
  return ips.map(ip => `rule add pref ${DROP_PREF} from ${ip}/32 blackhole`)
}

/** Lift the drops of `ips`. */
export function liftLines (ips: string[]): string[] {
  return ips.map(ip => `rule del pref ${DROP_PREF} from ${ip}/32 blackhole`)
}

function ipBatch (lines: string[], ns?: string, force = false): void {
  if (lines.length === 0) return
  const args = [...(ns != null ? ['-n', ns] : []), ...(force ? ['-force'] : []), '-batch', '-']
  try {
    execFileSync('ip', args, { input: lines.join('\n') + '\n', stdio: ['pipe', 'ignore', 'pipe'] })
  } catch (err: any) {
    if (force) return
    throw new OperationError(`\`ip ${args.join(' ')}\` failed: ${String(err.stderr ?? err.message).trim().split('\n')[0]}`)
  }
}

async function ipBatchAsync (lines: string[], ns: string, force: boolean): Promise<void> {
  if (lines.length === 0) return
  const args = ['-n', ns, ...(force ? ['-force'] : []), '-batch', '-']
  await new Promise<void>((resolve, reject) => {
    const child = execFile('ip', args, (err, _out, stderr) => {
      if (err != null && !force) reject(new OperationError(`\`ip ${args.join(' ')}\` failed: ${String(stderr).trim().split('\n')[0]}`))
      else resolve()
    })
    child.stdin?.end(lines.join('\n') + '\n')
  })
}

/** Whether this process may make namespaces: root, with `ip` on the PATH. The reason when not. */
export function netnsUnavailable (): string | undefined {
  if (process.getuid?.() !== 0) return 'network namespaces need root'
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' })
  } catch {
    return 'the `ip` command (iproute2) is not installed'
  }
  return undefined
}

/** A /24 of 10.77.0.0/16 that no interface of this namespace has an address in. */
function freeSubnet (): string {
  const used = execFileSync('ip', ['-4', '-o', 'addr', 'show'], { encoding: 'utf8' })
  const free: number[] = []
  for (let k = 0; k < 256; k++) if (!used.includes(` 10.77.${k}.`)) free.push(k)
  if (free.length === 0) throw new OperationError('every /24 of 10.77.0.0/16 is in use on this machine: remove a lab with `discovery cluster down`')
  return `10.77.${free[randomBytes(1)[0] % free.length]}`
}

/** Makes the bridge and `nodes` namespaces; on failure removes what it made. */
export function createLab (nodes: number): NetLab {
  const why = netnsUnavailable()
  if (why != null) throw new UsageError(`--netns: ${why}`)
  if (nodes > MAX_NETNS_AGENTS) throw new UsageError(`Expected at most ${MAX_NETNS_AGENTS} agents with --netns (one /24), got ${nodes}`)
  const name = `dn${randomBytes(3).toString('hex')}`
  const lab: NetLab = { name, bridge: `${name}br`, subnet: freeSubnet(), size: nodes }
  try {
    ipBatch(labLines(lab, nodes))
    for (let i = 0; i < nodes; i++) ipBatch(nsLines(lab, i), nsName(lab, i))
  } catch (err) {
    destroyLab(lab)
    throw err
  }
  return lab
}

/**
 * Removes the veths, the namespaces and the bridge; what is already gone is
 * skipped. Each veth is deleted first, by name: a namespace's own teardown
 * (which would take its veth with it) runs later in the kernel's background.
 */
export function destroyLab (lab: NetLab): void {
  const veths = Array.from({ length: lab.size }, (_, i) => `link del ${nsName(lab, i)}`)
  const namespaces = Array.from({ length: lab.size }, (_, i) => `netns del ${nsName(lab, i)}`)
  ipBatch([...veths, ...namespaces, `link del ${lab.bridge}`], undefined, true)
}

/** Agent `index` drops every packet from the agents `from`. */
export async function dropFrom (lab: NetLab, index: number, from: number[]): Promise<void> {
  await ipBatchAsync(dropLines(from.map(j => agentIp(lab, j))), nsName(lab, index), false)
}

/** Agent `index` takes packets from every agent again. */
export async function liftDrops (lab: NetLab, index: number): Promise<void> {
  const all = Array.from({ length: lab.size }, (_, j) => j).filter(j => j !== index)
  await ipBatchAsync(liftLines(all.map(j => agentIp(lab, j))), nsName(lab, index), true)
}
