/** `discovery vm …` and `discovery nodes`: clients of an agent's API. */
import { createVmSchema, describeIssues } from '../core/messages.ts'
import { ApiClient } from './client.ts'
import { OperationError, UsageError } from './errors.ts'
import { parseInteger, parseLabels, parseSize } from './parse.ts'
import { shortId, table } from './table.ts'

export interface CreateFlags {
  cpu?: string
  mem?: string
  name?: string
  image?: string
  label?: string[]
  nodeLabel?: string[]
  spread?: string
  zone?: string
  restartPolicy?: string
}

export function createBody (flags: CreateFlags): unknown {
  if (flags.cpu == null) throw new UsageError('Expected --cpu N (vCPUs), e.g. `discovery vm create --cpu 1 --mem 512MiB`')
  if (flags.mem == null) throw new UsageError('Expected --mem SIZE, e.g. `discovery vm create --cpu 1 --mem 512MiB`')
  const body: Record<string, unknown> = { cpu: parseInteger('--cpu', flags.cpu, 1, 1024), memMiB: parseSize('--mem', flags.mem) }
  if (flags.name != null) body.name = flags.name
  if (flags.image != null) body.image = flags.image
  if (flags.label != null && flags.label.length > 0) body.labels = parseLabels('--label', flags.label)
  const constraints: Record<string, unknown> = {}
  if (flags.nodeLabel != null && flags.nodeLabel.length > 0) constraints.labels = parseLabels('--node-label', flags.nodeLabel)
  if (flags.spread != null) constraints.spread = flags.spread
  if (flags.zone != null) constraints.zone = flags.zone
  if (Object.keys(constraints).length > 0) body.constraints = constraints
  if (flags.restartPolicy != null) {
    if (flags.restartPolicy !== 'always' && flags.restartPolicy !== 'never') throw new UsageError(`Expected --restart-policy to be always or never, got \`${flags.restartPolicy}\``)
    body.restartPolicy = flags.restartPolicy
  }
  const ok = createVmSchema.safeParse(body)
  if (!ok.success) throw new UsageError(`invalid VM request: ${describeIssues(ok.error)}`)
  return ok.data
}

export function vmTable (vms: any[]): string {
  return table(['id', 'name', 'state', 'vCPU', 'MiB', 'node'], vms.map(v => [v.id, v.name, v.state, v.cpu, v.memMiB, shortId(v.node)]))
}

export function nodesTable (nodes: any[]): string {
  return table(['peer', 'state', 'vCPU used/cap', 'demand', 'MiB used/cap', 'reserved', 'vms', 'labels', 'last seen'],
    nodes.map(n => [shortId(n.peerId), n.idle === true ? `${n.state} (idle)` : n.state, `${n.used.cpu}/${n.capacity.cpu}`, Number(n.demand ?? 0).toFixed(2), `${n.used.memMiB}/${n.capacity.memMiB}`, `${n.reserved.cpu}/${n.reserved.memMiB}`, n.vmCount,
      Object.entries(n.labels).map(([k, v]) => `${k}=${String(v)}`).join(',') || '-', `${(n.lastSeenMs / 1000).toFixed(1)}s`]))
}

export function migrationLine (m: any): string {
  const figures = m.totalMs != null ? ` in ${(m.totalMs / 1000).toFixed(2)} s, downtime ${Number(m.downtimeMs).toFixed(1)} ms, ${Math.round(m.bytesMiB)} MiB sent` : ''
  return `${m.vmId} ${m.phase === 'committed' ? 'migrated' : m.phase} ${shortId(m.from)} → ${shortId(m.to)}${figures}${m.reason != null ? ` (${m.reason})` : ''}`
}

export function migrationsTable (list: any[]): string {
  return table(['migration', 'vm', 'from', 'to', 'phase', 'total s', 'downtime ms', 'MiB sent', 'reason'],
    list.map(m => [m.id.slice(0, 8), m.vmId, shortId(m.from), shortId(m.to), m.phase, m.totalMs != null ? (m.totalMs / 1000).toFixed(2) : '-', m.downtimeMs != null ? m.downtimeMs.toFixed(1) : '-', m.bytesMiB != null ? Math.round(m.bytesMiB) : '-', m.reason ?? '']))
}

export async function vmMigrate (client: ApiClient, id: string, to: string | undefined): Promise<any> {
  const res = await client.request('POST', `/v1/vms/${encodeURIComponent(id)}/migrate`, to != null ? { to } : {})
  if (res.status === 200) return res.body.migration
  throw new OperationError(`${res.body?.message ?? `HTTP ${res.status}`} (HTTP ${res.status} from ${client.url})`)
}
