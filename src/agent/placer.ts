/**
 * The runtime of a placement (core/placement-attempt.ts): whichever agent
 * received a create runs one attempt per VM, sends what it says over the
 * place protocol, feeds every answer back, and sleeps when it asks. The
 * decisions — candidate order, reserve and commit, asking a lost commit
 * again, giving up — are the core's; the simulator runs the same ones.
 */
import { randomBytes, randomUUID } from 'node:crypto'
import type { Clock } from '../core/clock.ts'
import type { CreateVmRequest, NodeState, PlaceRequest, PlaceResponse, VmSpec, VmState } from '../core/messages.ts'
import type { Chain } from '../core/ownership-messages.ts'
import { type AttemptOutcome, type AttemptStep, type CandidateResult, InFlight, PlacementAttempt } from '../core/placement-attempt.ts'
import type { Locality } from '../core/locality.ts'
import { arraySource } from '../core/placement.ts'
import type { Rng } from '../core/rng.ts'
import { NoCapacityError, PlacementUncertainError } from './errors.ts'

export interface PlacerInit {
  /** Nodes believed alive, this agent's own state fresh. */
  nodes: () => NodeState[]
  /** Sends one place request to a node (this agent's own included). Rejects with a `PlaceUnsentError` when it never left. */
  send: (peerId: string, req: PlaceRequest) => Promise<PlaceResponse>
  rng: Rng
  sample: number
  leaseTtlMs: number
  clock: Clock
  sleep: (ms: number) => Promise<void>
  onAttempt: (result: CandidateResult) => void
  /** This agent's zone and its peers' round trips (locality on), or undefined (off). */
  locality?: () => Locality | undefined
}

export interface Placed {
  id: string
  node: string
  state: VmState
  /** Candidates asked. */
  attempts: number
}

export function newVmId (): string {
  return `vm-${randomBytes(6).toString('hex')}`
}

/** The name of the error the network layer gives a request that never left this agent. */
const PLACE_UNSENT = 'PlaceUnsentError'

export class Placer {
  readonly #init: PlacerInit
  readonly #inFlight = new InFlight()

  constructor (init: PlacerInit) {
    this.#init = init
  }

  /** The spec of a new VM from a user's request: a fresh id, the time of the request. */
  specOf (req: CreateVmRequest, id = newVmId()): VmSpec {
    const spec: VmSpec = { id, name: req.name ?? id, cpu: req.cpu, memMiB: req.memMiB, createdAtMs: this.#init.clock.now() }
    if (req.image != null) spec.image = req.image
    if (req.labels != null) spec.labels = req.labels
    if (req.constraints != null) spec.constraints = req.constraints
    spec.restartPolicy = req.restartPolicy ?? 'always'
    return spec
  }

  /**
   * Places `spec`; a restart passes the chain each candidate's commit carries
   * (its restart link names the candidate), and the nodes to sample first (`near`).
   */
  async place (req: CreateVmRequest, spec = this.specOf(req), chainFor?: (node: string) => Chain, near?: ReadonlySet<string>): Promise<Placed> {
    const attempt = new PlacementAttempt({
      spec,
      nodes: arraySource(this.#init.nodes()),
      inFlight: this.#inFlight,
      rng: this.#init.rng,
      sample: this.#init.sample,
      leaseTtlMs: this.#init.leaseTtlMs,
      newLeaseId: randomUUID,
      ...(chainFor != null ? { chainFor } : {}),
      ...(near != null ? { near } : {}),
      locality: this.#init.locality?.()
    })
    const outcome = await new Promise<AttemptOutcome>(resolve => {
      const run = (step: AttemptStep): void => {
        for (const r of step.results) this.#init.onAttempt(r)
        if (step.outcome != null) {
          resolve(step.outcome)
          return
        }
        for (const c of step.commands) {
          if (c.kind === 'wake') {
            void this.#init.sleep(Math.max(0, c.atMs - this.#init.clock.now())).then(() => { run(attempt.wake()) })
            continue
          }
          for (const req of c.requests) {
            const op = req.op === 'reserve' ? 'reserve' : 'commit'
            // Sent one after the other without waiting: the owner takes them in this order.
            this.#init.send(c.node, req).then(
              res => { run(attempt.answer(c.leaseId, op, res, this.#init.clock.now())) },
              (err: Error) => { run(attempt.failed(c.leaseId, op, err?.name === PLACE_UNSENT, causeName(err), this.#init.clock.now())) })
          }
        }
      }
      run(attempt.start())
    })
    if (outcome.kind === 'placed') return { id: spec.id, node: outcome.node, state: outcome.state, attempts: outcome.attempts }
    if (outcome.kind === 'uncertain') throw new PlacementUncertainError(outcome.reason)
    throw new NoCapacityError(outcome.reason)
  }
}

function causeName (err: Error): string {
  const cause = (err as { cause?: { name?: unknown } } | undefined)?.cause
  return typeof cause?.name === 'string' ? cause.name : String(err?.name ?? err)
}
