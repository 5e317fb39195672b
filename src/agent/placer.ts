/**
 * Cooperative placement of one VM, run by whichever agent received the
 * request: rank candidates from this agent's view (itself included), reserve
 * on the best through `/discovery/place/1.x`, commit the VM there, and on a
 * refusal (the view was stale) try the next. Only the owner of the capacity
 * decides, so a stale view costs a retry, never an over-commit.
 *
 * The commit is sent right behind its reserve, without waiting for the
 * reserve's answer: one round trip per candidate instead of two. The owner
 * takes a peer's requests in the order they were sent, so the commit finds
 * the lease when the reserve was granted, and no lease (and changes nothing)
 * when it was refused. When an answer is lost, the commit is asked again (it
 * is idempotent for one VM id), with a growing pause, until the node answers
 * or twice `leaseTtlMs` has passed: the node may have taken both. Its answer is
 * final either way, since a lease id the node said it did not hold can never
 * be reserved afterwards (core/ledger.ts). Only a node silent that long leaves
 * the create uncertain (504).
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
  sleep: (ms: number) => Promise<void>
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

  /** Places a new VM; `id` is drawn here unless the caller drew it (to name the VM before it is placed). */
  async place (req: CreateVmRequest, id = newVmId()): Promise<Placed> {
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
        const reserve: PlaceRequest = { v: PROTOCOL_VERSION, op: 'reserve', leaseId, resources, constraints: req.constraints, ttlMs: this.#init.leaseTtlMs }
        const commit: PlaceRequest = { v: PROTOCOL_VERSION, op: 'commit', leaseId, vm: spec }
        // One round trip: the commit goes right behind its reserve. The owner takes them
        // in that order, so when it refuses the reserve, the commit finds no lease.
        const reserving = settle(this.#init.send(node, reserve))
        const committing = settle(this.#init.send(node, commit))
        const reserved = await reserving
        if (!reserved.ok) {
          const err = reserved.error
          if (err.name === PLACE_UNSENT) {
            // Neither request left this agent: the node took nothing.
            this.#init.onAttempt('unreachable')
            refusals.push(`${short(node)}: unreachable (${causeName(err)})`)
            continue
          }
          // The node may have taken the reserve, and the commit behind it, before the answers were lost.
          const c = await committing
          const committed = c.ok ? c.value : await this.#commitAgain(node, commit, spec)
          if (committed.ok) return { id, node, state: committed.state ?? 'creating' }
          // It has no such lease: it never took the reserve.
          this.#init.onAttempt('unreachable')
          refusals.push(`${short(node)}: unreachable (${err.name})`)
          continue
        }
        if (!reserved.value.ok) {
          this.#init.onAttempt('refused')
          refusals.push(`${short(node)}: ${reserved.value.reason}`)
          continue
        }
        this.#init.onAttempt('reserved')
        const c = await committing
        // A lost answer is asked once more: a commit is idempotent for one VM id.
        const committed = c.ok ? c.value : await this.#commitAgain(node, commit, spec)
        if (committed.ok) return { id, node, state: committed.state ?? 'creating' }
        this.#init.onAttempt('commit-failed')
        refusals.push(`${short(node)}: ${committed.reason}`)
      } finally {
        this.#release(node, resources)
      }
    }
    throw new NoCapacityError(`no node accepted ${resources.cpu} vCPU / ${resources.memMiB} MiB: ${refusals.slice(0, 5).join('; ')}`)
  }

  /** A commit whose answer was lost, asked again until the node answers, for at most two leases' lifetimes. */
  async #commitAgain (node: string, req: PlaceRequest, vm: VmSpec): Promise<PlaceResponse> {
    const windowMs = 2 * this.#init.leaseTtlMs
    const deadline = this.#init.now() + windowMs
    let pauseMs = COMMIT_RETRY_FIRST_MS
    for (let tries = 1; ; tries++) {
      try {
        return await this.#init.send(node, req)
      } catch (err: any) {
        if (this.#init.now() + pauseMs >= deadline) {
          throw new PlacementUncertainError(`node ${node} may have taken ${vm.id} but did not answer ${tries} commits in ${windowMs / 1000} s (${causeName(err)}); the VM may still appear there`)
        }
      }
      await this.#init.sleep(pauseMs)
      pauseMs = Math.min(2 * pauseMs, COMMIT_RETRY_MAX_MS)
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

/** Pauses between the tries of a commit whose answer was lost: from 100 ms, doubling, up to 2 s. */
const COMMIT_RETRY_FIRST_MS = 100
const COMMIT_RETRY_MAX_MS = 2_000

type Settled<T> = { ok: true, value: T } | { ok: false, error: Error }

/** A promise's outcome, without throwing: so that two sent at once can be awaited one after the other. */
async function settle<T> (p: Promise<T>): Promise<Settled<T>> {
  try {
    return { ok: true, value: await p }
  } catch (err: any) {
    return { ok: false, error: err instanceof Error ? err : new Error(String(err)) }
  }
}

/** The name of the error the network layer gives a request that never left this agent (`PlaceUnsentError`). */
const PLACE_UNSENT = 'PlaceUnsentError'

function causeName (err: Error): string {
  const cause = (err as { cause?: { name?: unknown } }).cause
  return typeof cause?.name === 'string' ? cause.name : err.name
}

function short (peerId: string): string {
  return peerId.slice(-8)
}
