/**
 * The placement of one VM, as a state machine: which node to ask, reserve and
 * commit there, ask a lost commit again, move on after a refusal, give up.
 * Sans I/O: the caller sends what `commands` say, feeds back every answer or
 * failure, and wakes the attempt when it asks; the agent does this over
 * `/discovery/place/1.1.0`, the simulator over its simulated network.
 *
 * Candidates come in the order of `CandidateOrder` (placement.ts): a sample
 * of `d` first, least loaded first, then the rest. On each, the commit is sent
 * right behind its reserve, without waiting for the reserve's answer: one
 * round trip instead of two. The owner takes a peer's requests in the order
 * they were sent (one pipelined stream), so the commit finds the lease when
 * the reserve was granted, and no lease (and changes nothing) when it was
 * refused. The owner of the capacity has the last word, so a stale view
 * costs a retry, never an over-commit.
 *
 * When an answer is lost (the request may have been taken), the commit is
 * asked again — it is idempotent for one VM id — with a pause from
 * `COMMIT_RETRY_FIRST_MS` doubling to `COMMIT_RETRY_MAX_MS`, until the node
 * answers or two lease lifetimes have passed. Its answer is final either way:
 * a lease id the node said it did not hold can never be reserved afterwards
 * (ledger.ts). Only a node silent that long leaves the create uncertain.
 */
import type { PlaceRequest, PlaceResponse, VmSpec, VmState } from './messages.ts'
import type { Chain } from './ownership-messages.ts'
import { PROTOCOL_VERSION } from './messages.ts'
import type { Locality } from './locality.ts'
import { type Candidate, CandidateOrder, type NodeSource } from './placement.ts'
import { add, sub, type Resources, ZERO } from './resources.ts'
import type { Rng } from './rng.ts'

/** Pauses between the tries of a commit whose answer was lost: from 100 ms, doubling, up to 2 s. */
export const COMMIT_RETRY_FIRST_MS = 100
export const COMMIT_RETRY_MAX_MS = 2_000

/** Capacity this agent is reserving right now, per node: counted by the filter of every create in flight. */
export class InFlight {
  readonly #held = new Map<string, Resources>()

  get (peerId: string): Resources | undefined {
    return this.#held.get(peerId)
  }

  hold (peerId: string, r: Resources): void {
    this.#held.set(peerId, add(this.#held.get(peerId) ?? ZERO, r))
  }

  release (peerId: string, r: Resources): void {
    const left = sub(this.#held.get(peerId) ?? ZERO, r)
    if (left.cpu <= 0 && left.memMiB <= 0) this.#held.delete(peerId)
    else this.#held.set(peerId, left)
  }

  get size (): number {
    return this.#held.size
  }
}

export interface AttemptInit {
  /** The VM to place; its id is chosen by the caller. */
  spec: VmSpec
  /** The nodes believed alive, this agent's own fresh. */
  nodes: NodeSource
  inFlight: InFlight
  rng: Rng
  /** Candidates sampled first (power of d choices). */
  sample: number
  leaseTtlMs: number
  /** A new lease id (a UUID) for each candidate. */
  newLeaseId: () => string
  /**
   * A restart: the chain each candidate's commit carries, ending with the
   * restart link that names that candidate (core/ownership.ts). A new VM has none.
   */
  chainFor?: (node: string) => Chain
  /** The requester's zone and the round trips to its peers: candidates are asked zone by zone, nearest first (placement.ts). */
  locality?: Locality
  /** Nodes asked first when they can host the VM: the requester and the peers it is connected to (placement.ts). */
  near?: ReadonlySet<string>
}

export type AttemptCommand =
  /** Write these requests to `node`, in this order, on one stream; report each answer or failure. */
  | { kind: 'send', node: string, leaseId: string, requests: PlaceRequest[] }
  /** Call `wake` at this time. */
  | { kind: 'wake', atMs: number }

/** How one ask of one candidate went (for metrics). */
export type CandidateResult = 'reserved' | 'refused' | 'unreachable' | 'commit-failed'

export type AttemptOutcome =
  | { kind: 'placed', node: string, state: VmState, attempts: number }
  /** No node could host it, or every candidate refused: a 503. */
  | { kind: 'no-capacity', reason: string, attempts: number }
  /** The node may have taken the VM but never answered: a 504. */
  | { kind: 'uncertain', node: string, reason: string, attempts: number }

export interface AttemptStep {
  commands: AttemptCommand[]
  results: CandidateResult[]
  /** Set once, on the step that ends the attempt. */
  outcome?: AttemptOutcome
}

type Answer = { ok: true, res: PlaceResponse } | { ok: false, unsent: boolean, reason: string }

interface Asking {
  candidate: Candidate
  leaseId: string
  chain?: Chain
  reserve?: Answer
  commit?: Answer
  reservedNoted: boolean
  /** Asking the commit again after its answer was lost. */
  again?: { reserved: boolean, deadlineMs: number, pauseMs: number, tries: number, waiting: boolean }
}

export class PlacementAttempt {
  readonly #init: AttemptInit
  readonly #resources: Resources
  readonly #order: CandidateOrder
  readonly #refusals: string[] = []
  #asking?: Asking
  #attempts = 0
  #outcome?: AttemptOutcome

  constructor (init: AttemptInit) {
    this.#init = init
    this.#resources = { cpu: init.spec.cpu, memMiB: init.spec.memMiB }
    this.#order = new CandidateOrder(init.nodes, { resources: this.#resources, constraints: init.spec.constraints }, init.inFlight, init.rng, init.sample, init.locality, init.near)
  }

  get outcome (): AttemptOutcome | undefined {
    return this.#outcome
  }

  /** The node asked now, if any. */
  get asking (): string | undefined {
    return this.#asking?.candidate.peerId
  }

  start (): AttemptStep {
    const step = newStep()
    this.#nextCandidate(step)
    return step
  }

  /** The node answered one of the requests sent for `leaseId`. */
  answer (leaseId: string, op: 'reserve' | 'commit', res: PlaceResponse, nowMs: number): AttemptStep {
    return this.#record(leaseId, op, { ok: true, res }, nowMs)
  }

  /** A request sent for `leaseId` failed: never sent (`unsent`: the node cannot have taken it), or its answer was lost. */
  failed (leaseId: string, op: 'reserve' | 'commit', unsent: boolean, reason: string, nowMs: number): AttemptStep {
    return this.#record(leaseId, op, { ok: false, unsent, reason }, nowMs)
  }

  /** The time asked for by a `wake` command has come. */
  wake (): AttemptStep {
    const step = newStep()
    const a = this.#asking
    if (this.#outcome != null || a?.again?.waiting !== true) return step
    a.again.waiting = false
    this.#sendCommit(step, a)
    return step
  }

  #record (leaseId: string, op: 'reserve' | 'commit', answer: Answer, nowMs: number): AttemptStep {
    const step = newStep()
    const a = this.#asking
    // An answer for a candidate we already left, or after the end: nothing to do.
    if (this.#outcome != null || a == null || a.leaseId !== leaseId) return step
    if (a.again != null) {
      if (op === 'commit') this.#onCommitAgain(step, a, answer, nowMs)
      return step
    }
    if (op === 'reserve') a.reserve ??= answer
    else a.commit ??= answer
    this.#decide(step, a, nowMs)
    return step
  }

  #decide (step: AttemptStep, a: Asking, nowMs: number): void {
    const { reserve: r, commit: c } = a
    // A commit taken means the reserve was: whatever became of the reserve's answer.
    if (c?.ok === true && c.res.ok) return this.#placed(step, a, c.res.state)
    if (r == null) return
    const node = short(a.candidate.peerId)
    if (!r.ok && r.unsent) {
      // Neither request left this agent: the node took nothing.
      step.results.push('unreachable')
      this.#refusals.push(`${node}: unreachable (${r.reason})`)
      return this.#nextCandidate(step)
    }
    if (r.ok && !r.res.ok) {
      step.results.push('refused')
      this.#refusals.push(`${node}: ${r.res.reason}`)
      return this.#nextCandidate(step)
    }
    const reserved = r.ok
    if (reserved && !a.reservedNoted) {
      a.reservedNoted = true
      step.results.push('reserved')
    }
    if (c == null) return
    if (c.ok) {
      // The commit was answered, and not taken.
      const reason = c.res.ok ? 'refused' : c.res.reason
      step.results.push(reserved ? 'commit-failed' : 'unreachable')
      this.#refusals.push(reserved ? `${node}: ${reason}` : `${node}: unreachable (${r.ok ? '' : r.reason})`)
      return this.#nextCandidate(step)
    }
    // The node may have taken the reserve, and the commit behind it, before the answers were lost.
    a.again = { reserved, deadlineMs: nowMs + 2 * this.#init.leaseTtlMs, pauseMs: COMMIT_RETRY_FIRST_MS, tries: 0, waiting: false }
    this.#sendCommit(step, a)
  }

  #onCommitAgain (step: AttemptStep, a: Asking, answer: Answer, nowMs: number): void {
    const again = a.again!
    if (answer.ok) {
      if (answer.res.ok) return this.#placed(step, a, answer.res.state)
      // Final: the node never held the lease (or let it expire).
      step.results.push(again.reserved ? 'commit-failed' : 'unreachable')
      this.#refusals.push(`${short(a.candidate.peerId)}: ${answer.res.reason}`)
      return this.#nextCandidate(step)
    }
    if (nowMs + again.pauseMs >= again.deadlineMs) {
      const windowS = 2 * this.#init.leaseTtlMs / 1000
      return this.#end(step, { kind: 'uncertain', node: a.candidate.peerId, attempts: this.#attempts, reason: `node ${a.candidate.peerId} may have taken ${this.#init.spec.id} but did not answer ${again.tries} commits in ${windowS} s (${answer.reason}); the VM may still appear there` })
    }
    again.waiting = true
    step.commands.push({ kind: 'wake', atMs: nowMs + again.pauseMs })
    again.pauseMs = Math.min(2 * again.pauseMs, COMMIT_RETRY_MAX_MS)
  }

  #sendCommit (step: AttemptStep, a: Asking): void {
    a.again!.tries++
    step.commands.push({ kind: 'send', node: a.candidate.peerId, leaseId: a.leaseId, requests: [this.#commitRequest(a)] })
  }

  #placed (step: AttemptStep, a: Asking, state: VmState | undefined): void {
    this.#end(step, { kind: 'placed', node: a.candidate.peerId, state: state ?? 'creating', attempts: this.#attempts })
  }

  #nextCandidate (step: AttemptStep): void {
    this.#leave()
    const candidate = this.#order.next()
    if (candidate == null) {
      const reason = this.#attempts === 0
        ? this.#order.explain()
        : `no node accepted ${this.#resources.cpu} vCPU / ${this.#resources.memMiB} MiB: ${this.#refusals.slice(0, 5).join('; ')}`
      return this.#end(step, { kind: 'no-capacity', reason, attempts: this.#attempts })
    }
    this.#attempts++
    const leaseId = this.#init.newLeaseId()
    const asking: Asking = { candidate, leaseId, reservedNoted: false }
    if (this.#init.chainFor != null) asking.chain = this.#init.chainFor(candidate.peerId)
    this.#asking = asking
    this.#init.inFlight.hold(candidate.peerId, this.#resources)
    const reserve: PlaceRequest = { v: PROTOCOL_VERSION, op: 'reserve', leaseId, resources: this.#resources, ttlMs: this.#init.leaseTtlMs }
    if (this.#init.spec.constraints != null) reserve.constraints = this.#init.spec.constraints
    step.commands.push({ kind: 'send', node: candidate.peerId, leaseId, requests: [reserve, this.#commitRequest(asking)] })
  }

  #commitRequest (a: Asking): PlaceRequest {
    const req: PlaceRequest = { v: PROTOCOL_VERSION, op: 'commit', leaseId: a.leaseId, vm: this.#init.spec }
    if (a.chain != null) req.chain = a.chain
    return req
  }

  #leave (): void {
    if (this.#asking != null) this.#init.inFlight.release(this.#asking.candidate.peerId, this.#resources)
    this.#asking = undefined
  }

  #end (step: AttemptStep, outcome: AttemptOutcome): void {
    this.#leave()
    this.#outcome = outcome
    step.outcome = outcome
  }
}

function newStep (): AttemptStep {
  return { commands: [], results: [] }
}

function short (peerId: string): string {
  return peerId.slice(-8)
}
