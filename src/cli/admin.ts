/**
 * `discovery admin partition --from API --to PEER... [--one-way]` and
 * `discovery admin heal --from API [--to PEER...]`: the admin routes of an
 * agent started with `--admin` (api/admin-routes.ts). `--to` takes peer ids,
 * or agents' API URLs (their peer id is asked of `GET /v1/health`).
 */
import type { ApiClient } from './client.ts'
import { UsageError } from './errors.ts'
import { table } from './table.ts'

export interface BlockedPeerView { peerId: string, direction: 'both' | 'inbound', sinceMs: number }

/** Peer ids as given, or asked of each API URL given instead. */
export async function resolvePeers (targets: string[], client: (url: string) => ApiClient): Promise<string[]> {
  const list = targets.flatMap(t => t.split(',')).map(t => t.trim()).filter(t => t !== '')
  if (list.length === 0) throw new UsageError('Expected --to to name at least one peer (a peer id, or an agent\'s API URL)')
  return await Promise.all(list.map(async (t) => {
    if (!/^https?:\/\//.test(t)) return t
    const health = await client(t).call<{ peerId: string }>('GET', '/v1/health')
    return health.peerId
  }))
}

export async function partition (from: ApiClient, peers: string[], oneWay: boolean): Promise<BlockedPeerView[]> {
  const r = await from.call<{ blocked: BlockedPeerView[] }>('POST', '/v1/admin/partition', { peers, direction: oneWay ? 'inbound' : 'both' })
  return r.blocked
}

export async function heal (from: ApiClient, peers?: string[]): Promise<{ healed: string[], blocked: BlockedPeerView[] }> {
  return await from.call('POST', '/v1/admin/heal', peers != null ? { peers } : {})
}

export function blockedTable (blocked: BlockedPeerView[], nowMs = Date.now()): string {
  if (blocked.length === 0) return 'no peer is blocked'
  return table(['PEER', 'DIRECTION', 'SINCE'], blocked.map(b => [b.peerId, b.direction === 'both' ? 'both ways' : 'inbound (one way)', `${Math.max(0, Math.round((nowMs - b.sinceMs) / 1000))}s ago`]))
}
