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
import { constraintMiss } from './constraints.ts'
import { groupByDistance, type Locality, zoneOf } from './locality.ts'
import type { Constraints, NodeState } from './messages.ts'
import { add, allocatable, dominantShare, fits, free, type Resources, ZERO } from './resources.ts'
import type { Rng } from './rng.ts'

/** What this agent is reserving right now, per node, not yet in anyone's gossip (a Map, or `InFlight`). */
export interface HeldResources {
  get (peerId: string): Resources | undefined
}

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

/** What a node lacks to take the VM, or the candidate it makes. */
export function checkNode (node: NodeState, req: PlacementRequest, inFlight: HeldResources = NO_FLIGHT): Candidate | RejectReason {
  const miss = constraintMiss(node.labels, req.constraints, group => node.vms.some(vm => vm.spread === group && vm.state !== 'deleted'))
  if (miss != null) return miss.kind
  const committed = add(add(node.used, node.reserved), inFlight.get(node.peerId) ?? ZERO)
  const available = free(node.capacity, committed, node.cpuOvercommit)
  if (!fits(req.resources, available)) return req.resources.memMiB > available.memMiB ? 'memory' : 'cpu'
  const candidate: Candidate = { peerId: node.peerId, free: available, loadAfter: dominantShare(add(committed, req.resources), allocatable(node.capacity, node.cpuOvercommit)) }
  if (node.idle === true) candidate.idle = true
  return candidate
}

const NO_FLIGHT: HeldResources = new Map<string, Resources>()

export function filterCandidates (nodes: Iterable<NodeState>, req: PlacementRequest, inFlight: HeldResources = NO_FLIGHT): FilterResult {
  const rejected: Record<RejectReason, number> = { cpu: 0, memory: 0, labels: 0, zone: 0, spread: 0 }
  const candidates: Candidate[] = []
  let considered = 0
  for (const node of nodes) {
    considered++
    const c = checkNode(node, req, inFlight)
    if (typeof c === 'string') rejected[c]++
    else candidates.push(c)
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

/** The nodes an agent may place on, by index: its view, or a simulated agent's. `at` is undefined for a node not believed alive. */
export interface NodeSource {
  readonly size: number
  at (index: number): NodeState | undefined
}

export function arraySource (nodes: readonly NodeState[]): NodeSource {
  return { size: nodes.length, at: i => nodes[i] }
}

/**
 * The order of `rankCandidates`, drawn lazily so that a create costs a few
 * checks, not a pass over thousands of nodes: `d` candidates are found by
 * probing nodes at random (without replacement), and are asked first, least
 * loaded first; only when they all refused is the whole view filtered and
 * the rest asked, least loaded first, idle nodes last. Probing nodes in a
 * random order and keeping those that pass the filter draws the same sample
 * as drawing `d` of the filtered candidates; when a few probes do not find
 * `d` of them (a nearly full cluster), the whole view is filtered at once.
 * Free capacity is read when a node is checked, so capacity held by other
 * creates in flight (`inFlight`, shared and updated by the caller) counts.
 *
 * With a `locality` that names the requester's zone, the whole view is
 * filtered at once and the candidates are asked zone by zone: the
 * requester's zone first, then the other zones nearest first
 * (locality.ts), each zone in the order above (d sampled, then the rest,
 * least loaded first, idle last). A VM created at a site stays there when
 * it fits; the power of d choices still spreads the load within the site.
 * A requester with no zone, or no locality, gets the order above.
 *
 * With `near` (and no zone), the `d` sampled first are drawn from the nodes
 * in `near` that can host the VM — the requester and the peers it is
 * connected to: asking them costs no dial —, and from the whole view only
 * when none of them can; then the rest as above. A restart uses it: a dead
 * owner's VMs are placed at once by one agent, on a host that is busy with
 * the death, where opening a connection takes seconds.
 */
export class CandidateOrder {
  readonly #nodes: NodeSource
  readonly #req: PlacementRequest
  readonly #inFlight: HeldResources
  readonly #rng: Rng
  readonly #d: number
  #queue: Candidate[] = []
  readonly #asked = new Set<string>()
  #phase: 'sample' | 'rest' | 'done' = 'sample'
  #last?: FilterResult
  readonly #locality?: Locality
  /** Each node's zone, by peer id: read by the last full pass, for locality. */
  #zones?: Map<string, string | undefined>
  readonly #near?: ReadonlySet<string>

  constructor (nodes: NodeSource, req: PlacementRequest, inFlight: HeldResources, rng: Rng, d: number, locality?: Locality, near?: ReadonlySet<string>) {
    this.#nodes = nodes
    this.#req = req
    this.#inFlight = inFlight
    this.#rng = rng
    this.#d = d
    if (locality?.zone != null) this.#locality = locality
    if (near != null && near.size > 0) this.#near = near
  }

  /** The next node to ask, or undefined when every candidate was asked. */
  next (): Candidate | undefined {
    while (true) {
      const c = this.#queue.shift()
      if (c != null) {
        this.#asked.add(c.peerId)
        return c
      }
      if (this.#phase === 'sample' && this.#locality != null) {
        this.#phase = 'done'
        this.#queue = this.#byLocality(this.#locality)
      } else if (this.#phase === 'sample') {
        this.#phase = 'rest'
        this.#queue = this.#nearSample() ?? this.#sample()
      } else if (this.#phase === 'rest') {
        this.#phase = 'done'
        const all = this.#filterAll()
        const rest = all.candidates.filter(c => !this.#asked.has(c.peerId))
        const active = rest.filter(c => c.idle !== true).sort(byLoad)
        const idle = rest.filter(c => c.idle === true).sort(byLoad)
        this.#queue = [...active, ...idle]
      } else {
        return undefined
      }
    }
  }

  /** Why no node could host the VM: a pass over the whole view (only when none could). */
  explain (): string {
    return explainNoCandidate(this.#req, this.#last ?? this.#filterAll())
  }

  /** Candidates found by the last full pass (undefined until one ran). */
  get filtered (): FilterResult | undefined {
    return this.#last
  }

  #filterAll (): FilterResult {
    const nodes: NodeState[] = []
    for (let i = 0; i < this.#nodes.size; i++) {
      const n = this.#nodes.at(i)
      if (n != null) nodes.push(n)
    }
    this.#last = filterCandidates(nodes, this.#req, this.#inFlight)
    if (this.#locality != null) this.#zones = new Map(nodes.map(n => [n.peerId, zoneOf(n.labels)]))
    return this.#last
  }

  /** Every candidate, zone by zone (the requester's, then nearest first), each zone in power-of-d order. */
  #byLocality (locality: Locality): Candidate[] {
    const all = this.#filterAll()
    const located = all.candidates.map(c => ({ peerId: c.peerId, zone: this.#zones?.get(c.peerId), c }))
    return groupByDistance(located, locality).flatMap(group => rankCandidates(group.map(g => g.c), this.#rng, this.#d))
  }

  /** `d` of the near nodes that can host the VM, least loaded first; undefined when there is no near set or none can. */
  #nearSample (): Candidate[] | undefined {
    if (this.#near == null || this.#d <= 0) return undefined
    const near: NodeState[] = []
    for (let i = 0; i < this.#nodes.size; i++) {
      const n = this.#nodes.at(i)
      if (n != null && this.#near.has(n.peerId)) near.push(n)
    }
    const fit = filterCandidates(near, this.#req, this.#inFlight).candidates.filter(c => c.idle !== true)
    return fit.length === 0 ? undefined : rankCandidates(fit, this.#rng, this.#d).slice(0, this.#d)
  }

  #sample (): Candidate[] {
    const n = this.#nodes.size
    if (this.#d <= 0 || n === 0) return []
    const maxProbes = Math.min(n, 4 * this.#d + 16)
    const probed = new Set<number>()
    const sample: Candidate[] = []
    // Past half the view, drawing an unprobed index by rejection gets slow: filter it all instead.
    while (sample.length < this.#d && probed.size < maxProbes && probed.size < n / 2 + 1) {
      const i = Math.floor(this.#rng.next() * n)
      if (probed.has(i)) continue
      probed.add(i)
      const node = this.#nodes.at(i)
      if (node == null) continue
      const c = checkNode(node, this.#req, this.#inFlight)
      if (typeof c !== 'string' && c.idle !== true) sample.push(c)
    }
    if (sample.length < this.#d) {
      // Too few found by probing: draw them from the whole filtered view, as rankCandidates does.
      const all = this.#filterAll()
      return rankCandidates(all.candidates, this.#rng, this.#d).slice(0, Math.min(this.#d, all.candidates.filter(c => c.idle !== true).length))
    }
    return sample.sort(byLoad)
  }
}
