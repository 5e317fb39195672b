/**
 * Cooperative placement of one VM, run by whichever agent received the
 * request: rank candidates from this agent's view (itself included), reserve
 * on the best through `/discovery/place/1.0.0`, commit the VM there, and on a
 * refusal (the view was stale) try the next. Only the owner of the capacity
 * decides, so a stale view costs a retry, never an over-commit.
 */
import { randomBytes, randomUUID } from 'node:crypto'
import type { CreateVmRequest, NodeState, PlaceRequest, PlaceResponse, VmSpec, VmState } from '../core/messages.ts'
import { PROTOCOL_VERSION } from '../core/messages.ts'
import { explainNoCandidate, filterCandidates, rankCandidates } from '../core/placement.ts'
import { add, sub, type Resources, ZERO } from '../core/resources.ts'
import type { Rng } from '../core/rng.ts'
import { NoCapacityError, PlacementUncertainError } from './errors.ts'

export interface PlacerInit {
  self: string
  /** Nodes believed alive, this agent's own state fresh. */
  nodes: () => NodeState[]
  /** Sends one place request to a node (this agent's own included). */
  send: (peerId: string, req: PlaceRequest) => Promise<PlaceResponse>
  rng: Rng
  sample: number
  leaseTtlMs: number
  now: () => number
  onAttempt: (result: 'reserved' | 'refused' | 'unreachable' | 'commit-failed') => void
}

export interface Placed {
  id: string
  node: string
  state: VmState
}

export function newVmId (): string {
  return `vm-${randomBytes(6).toString('hex')}`
}

export class Placer {
  readonly #init: PlacerInit
  /** What this agent is reserving right now, per node: not yet in anyone's gossip. */
  readonly #inFlight = new Map<string, Resources>()

  constructor (init: PlacerInit) {
    this.#init = init
  }

  async place (req: CreateVmRequest): Promise<Placed> {
    const id = newVmId()
    const spec: VmSpec = {
      id,
      name: req.name ?? id,
      cpu: req.cpu,
      memMiB: req.memMiB,
      createdAtMs: this.#init.now()
    }
    if (req.image != null) spec.image = req.image
    if (req.labels != null) spec.labels = req.labels
    if (req.constraints != null) spec.constraints = req.constraints
    const resources = { cpu: req.cpu, memMiB: req.memMiB }
    const preq = { resources, constraints: req.constraints }
    const filtered = filterCandidates(this.#init.nodes(), preq, this.#inFlight)
    if (filtered.candidates.length === 0) throw new NoCapacityError(explainNoCandidate(preq, filtered))
    const ranked = rankCandidates(filtered.candidates, this.#init.rng, this.#init.sample)
    const refusals: string[] = []
    for (const candidate of ranked) {
      const node = candidate.peerId
      const leaseId = randomUUID()
      this.#hold(node, resources)
      try {
        let reserved: PlaceResponse
        try {
          reserved = await this.#init.send(node, { v: PROTOCOL_VERSION, op: 'reserve', leaseId, resources, constraints: req.constraints, ttlMs: this.#init.leaseTtlMs })
        } catch (err: any) {
          this.#init.onAttempt('unreachable')
          refusals.push(`${short(node)}: unreachable (${err.name})`)
          continue
        }
        if (!reserved.ok) {
          this.#init.onAttempt('refused')
          refusals.push(`${short(node)}: ${reserved.reason}`)
          continue
        }
        this.#init.onAttempt('reserved')
        const committed = await this.#commit(node, leaseId, spec)
        if (committed.ok) return { id, node, state: committed.state ?? 'creating' }
        this.#init.onAttempt('commit-failed')
        refusals.push(`${short(node)}: ${committed.reason}`)
      } finally {
        this.#release(node, resources)
      }
    }
    throw new NoCapacityError(`no node accepted ${resources.cpu} vCPU / ${resources.memMiB} MiB: ${refusals.slice(0, 5).join('; ')}`)
  }

  /** Commits, retrying once when the answer is lost: commit is idempotent for one VM id. */
  async #commit (node: string, leaseId: string, vm: VmSpec): Promise<PlaceResponse> {
    const req: PlaceRequest = { v: PROTOCOL_VERSION, op: 'commit', leaseId, vm }
    try {
      return await this.#init.send(node, req)
    } catch {
      try {
        return await this.#init.send(node, req)
      } catch (err: any) {
        throw new PlacementUncertainError(`node ${node} reserved room for ${vm.id} but did not confirm it (${err.name}); the VM may still appear there`)
      }
    }
  }

  #hold (node: string, r: Resources): void {
    this.#inFlight.set(node, add(this.#inFlight.get(node) ?? ZERO, r))
  }

  #release (node: string, r: Resources): void {
    const left = sub(this.#inFlight.get(node) ?? ZERO, r)
    if (left.cpu <= 0 && left.memMiB <= 0) this.#inFlight.delete(node)
    else this.#inFlight.set(node, left)
  }
}

function short (peerId: string): string {
  return peerId.slice(-8)
}
