/**
 * Placement: which nodes could host a VM, and in which order to ask them.
 *
 * Filter: a node is a candidate when it is alive, its free capacity (CPU
 * times its over-commit ratio, memory never over-committed, minus what is
 * running and reserved, minus what this agent has in flight there) fits the
 * VM, its labels include every label the VM asks for, its `zone` label
 * equals the VM's zone if one is asked for, and it runs no VM of the VM's
 * `spread` group (anti-affinity).
 *
 * Rank: power of d choices (Sparrow, Mitzenmacher), idle nodes last. We sample `d` candidates
 * at random and try them first, least loaded first; then the rest, least
 * loaded first. "Least loaded" is the dominant share of capacity in use after
 * placing the VM (worst fit). Why: worst fit leaves head-room on every node
 * for demand that grows, so fewer overloads need a migration later; sampling
 * keeps agents that place at the same time on stale views from all picking
 * the same "best" node, which would turn refusals into retries. The owner of
 * the capacity has the last word (the reservation), so a stale view costs a
 * retry, never an over-commit.
 */
import type { Constraints, NodeState } from './messages.ts'
import { add, dominantShare, fits, free, type Resources, ZERO } from './resources.ts'
import type { Rng } from './rng.ts'

export interface PlacementRequest {
  resources: Resources
  constraints?: Constraints
}

export interface Candidate {
  peerId: string
  free: Resources
  /** Dominant share of capacity in use once the VM is placed. */
  loadAfter: number
  /** Emptied by consolidation: asked only after every active node. */
  idle?: boolean
}

export type RejectReason = 'cpu' | 'memory' | 'labels' | 'zone' | 'spread'

export interface FilterResult {
  candidates: Candidate[]
  /** How many nodes were turned down, by reason: for the 503 message. */
  rejected: Record<RejectReason, number>
  considered: number
}

export function filterCandidates (nodes: Iterable<NodeState>, req: PlacementRequest, inFlight: ReadonlyMap<string, Resources> = new Map()): FilterResult {
  const rejected: Record<RejectReason, number> = { cpu: 0, memory: 0, labels: 0, zone: 0, spread: 0 }
  const candidates: Candidate[] = []
  let considered = 0
  const c = req.constraints ?? {}
  for (const node of nodes) {
    considered++
    if (c.zone != null && node.labels.zone !== c.zone) { rejected.zone++; continue }
    if (c.labels != null && !Object.entries(c.labels).every(([k, v]) => node.labels[k] === v)) { rejected.labels++; continue }
    if (c.spread != null && node.vms.some(vm => vm.spread === c.spread && vm.state !== 'deleted')) { rejected.spread++; continue }
    const committed = add(add(node.used, node.reserved), inFlight.get(node.peerId) ?? ZERO)
    const available = free(node.capacity, committed, node.cpuOvercommit)
    if (!fits(req.resources, available)) {
      if (req.resources.memMiB > available.memMiB) rejected.memory++
      else rejected.cpu++
      continue
    }
    const after = add(committed, req.resources)
    const cap = { cpu: Math.floor(node.capacity.cpu * node.cpuOvercommit), memMiB: node.capacity.memMiB }
    const candidate: Candidate = { peerId: node.peerId, free: available, loadAfter: dominantShare(after, cap) }
    if (node.idle === true) candidate.idle = true
    candidates.push(candidate)
  }
  return { candidates, rejected, considered }
}

function byLoad (a: Candidate, b: Candidate): number {
  return a.loadAfter - b.loadAfter || (a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0)
}

/**
 * The order in which to ask candidates: `d` sampled ones first, then the
 * rest; each group least loaded first. Idle nodes (emptied by consolidation)
 * come last, so that consolidation is not undone by the next create.
 */
export function rankCandidates (candidates: readonly Candidate[], rng: Rng, d = 2): Candidate[] {
  const idle = candidates.filter(c => c.idle === true)
  if (idle.length > 0) return [...rankCandidates(candidates.filter(c => c.idle !== true), rng, d), ...idle.sort(byLoad)]
  const pool = [...candidates]
  const sample: Candidate[] = []
  for (let i = 0; i < d && pool.length > 0; i++) {
    const j = Math.floor(rng.next() * pool.length)
    sample.push(pool[j])
    pool[j] = pool[pool.length - 1]
    pool.pop()
  }
  return [...sample.sort(byLoad), ...pool.sort(byLoad)]
}

/** One line that says why no node could host the VM. */
export function explainNoCandidate (req: PlacementRequest, result: FilterResult): string {
  const parts = (Object.entries(result.rejected) as Array<[RejectReason, number]>)
    .filter(([, n]) => n > 0)
    .map(([reason, n]) => `${n} ${reason === 'cpu' ? 'lack CPU' : reason === 'memory' ? 'lack memory' : reason === 'spread' ? 'already run its spread group' : `do not match its ${reason}`}`)
  const need = `${req.resources.cpu} vCPU / ${req.resources.memMiB} MiB`
  if (result.considered === 0) return `no live node is known to host ${need}`
  return `no node can host ${need}: of ${result.considered} live nodes, ${parts.join(', ')}`
}
