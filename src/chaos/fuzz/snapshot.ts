/**
 * What "no state change" is checked against: the target's VMs (id, state,
 * epoch), its view (each node's status, capacity, allocation, reservations,
 * VM count, idleness), its migrations and rebalancing events — read over its
 * API before and after, without the fields that move on their own (times,
 * CPU demand, sequence numbers). And its count of invalid input by source.
 */
/** The sum of one metric's samples whose labels include `labels` (Prometheus text). */
function metricValue (text: string, name: string, labels: Record<string, string>): number {
  let total = 0
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(\{[^}]*\})?\s+([0-9.e+-]+)$/.exec(line)
    if (m == null || m[1] !== name) continue
    if (Object.entries(labels).every(([k, v]) => (m[2] ?? '').includes(`${k}="${v}"`))) total += Number(m[3])
  }
  return total
}

export interface Snapshot {
  vms: string[]
  view: string[]
  migrations: number
  rebalance: number
}

async function get (api: string, path: string, token: string | undefined, timeoutMs: number): Promise<any> {
  const res = await fetch(`${api}${path}`, { headers: token != null ? { authorization: `Bearer ${token}` } : {}, signal: AbortSignal.timeout(timeoutMs) })
  if (!res.ok) throw new Error(`GET ${path}: ${res.status}`)
  return path === '/metrics' ? await res.text() : await res.json()
}

export async function healthy (api: string, timeoutMs = 5_000): Promise<boolean> {
  try {
    return (await get(api, '/v1/health', undefined, timeoutMs)).status === 'ok'
  } catch {
    return false
  }
}

export async function health (api: string): Promise<{ peerId: string }> {
  return await get(api, '/v1/health', undefined, 5_000)
}

export async function snapshot (api: string, token?: string): Promise<Snapshot> {
  const [vms, nodes, migrations, rebalance] = await Promise.all(['/v1/vms', '/v1/nodes', '/v1/migrations', '/v1/rebalance'].map(async p => await get(api, p, token, 10_000)))
  return {
    vms: (vms as any[]).map(v => `${v.id} ${v.state} epoch ${v.epoch}`).sort(),
    view: (nodes as any[]).map(n => `${n.peerId} ${n.state} cap ${n.capacity.cpu}/${n.capacity.memMiB} used ${n.used.cpu}/${n.used.memMiB} reserved ${n.reserved.cpu}/${n.reserved.memMiB} vms ${n.vmCount}${n.idle === true ? ' idle' : ''}`).sort(),
    migrations: (migrations as unknown[]).length,
    rebalance: (rebalance as unknown[]).length
  }
}

/** The VM ids and peer ids the target knows (of its view and of the cluster's VMs). */
export async function known (api: string, token?: string): Promise<{ vms: string[], peers: string[], self: any }> {
  const [vms, nodes, me] = await Promise.all([get(api, '/v1/vms?scope=cluster', token, 10_000), get(api, '/v1/nodes', token, 10_000), get(api, '/v1/health', undefined, 10_000)])
  return { vms: (vms as any[]).map(v => v.id), peers: (nodes as any[]).map(n => n.peerId), self: (nodes as any[]).find(n => n.peerId === me.peerId) }
}

/** What changed between two snapshots, one line each. */
export function differences (before: Snapshot, after: Snapshot): string[] {
  const out: string[] = []
  const list = (what: string, a: string[], b: string[]): void => {
    for (const x of a) if (!b.includes(x)) out.push(`${what} before: ${x}`)
    for (const x of b) if (!a.includes(x)) out.push(`${what} after: ${x}`)
  }
  list('vm', before.vms, after.vms)
  list('view', before.view, after.view)
  if (before.migrations !== after.migrations) out.push(`migrations: ${before.migrations} → ${after.migrations}`)
  if (before.rebalance !== after.rebalance) out.push(`rebalancing events: ${before.rebalance} → ${after.rebalance}`)
  return out
}

export type InvalidCounts = Record<string, number>

/** `discovery_invalid_messages_total` by source, and `deaths`: `discovery_detector_deaths_total`. */
export async function invalidCounts (api: string, token?: string): Promise<InvalidCounts> {
  const text: string = await get(api, '/metrics', token, 10_000)
  const out: InvalidCounts = {}
  for (const source of ['api', 'gossip', 'place', 'migrate', 'rebalance', 'replica', 'swim', 'epoch']) out[source] = metricValue(text, 'discovery_invalid_messages_total', { source })
  // Not input: the peers this agent declared dead, which move VMs (a starved machine's false positives do too).
  out.deaths = metricValue(text, 'discovery_detector_deaths_total', {})
  return out
}
