/**
 * The answering side of `/discovery/replica/1.0.0` (replica-service.ts runs
 * the rest): records put and dropped by their owners, tombstones taken,
 * deaths confirmed, chains and tombstones looked up, records handed over by
 * another holder of a dead owner's VMs. A request reaches it validated.
 */
import type { Logger } from 'pino'
import { PROTOCOL_VERSION } from '../core/messages.ts'
import { compareHeads, headOf } from '../core/ownership.ts'
import type { Chain, Tombstone } from '../core/ownership-messages.ts'
import type { ReplicaRecord, ReplicaRequest, ReplicaResponse } from '../core/replica-messages.ts'
import type { Claims } from './claims.ts'
import type { Holdings } from './holdings.ts'
import type { LocalNode } from './local-node.ts'
import type { Membership } from './membership.ts'
import type { Replication } from './replication.ts'
import type { Restarts } from './restarts.ts'
import type { TombstoneIntake } from './tombstone-intake.ts'

export interface ReplicaHandlerParts {
  holdings: Holdings
  tombstones: TombstoneIntake
  claims: Claims
  replication: Replication
  restarts: Restarts
  local: LocalNode
  membership: Membership
  log: Logger
  /** A record, claim or tombstone refused as forged: counted and reported (replica-service.ts). */
  refused: (vmId: string, from: string, what: 'claim' | 'record' | 'tombstone', reason: string) => void
}

export class ReplicaHandler {
  readonly #p: ReplicaHandlerParts

  constructor (parts: ReplicaHandlerParts) {
    this.#p = parts
  }

  /** The answer to one request from `from` (validated at the edge, `replicaRequestSchema`). */
  async serve (req: ReplicaRequest, from: string): Promise<ReplicaResponse> {
    const ok = { v: PROTOCOL_VERSION as typeof PROTOCOL_VERSION, ok: true as const }
    switch (req.op) {
      case 'put': {
        const refused = this.#p.holdings.put(from, req.records)
        for (const r of refused) if (r.forged) this.#p.refused(r.vmId, from, 'record', r.reason)
        if (refused.length === 0) return ok
        // A record refused because its VM was deleted: its owner runs a copy the delete did not reach (cut off, or
        // down, when it was deleted at a later head elsewhere): the tombstone goes back with the answer, and stops it.
        const tombstones = req.records.map(r => this.#p.holdings.tombstoneFor(r.spec.id, r.chain)).filter((t): t is Tombstone => t != null)
        return { ...ok, refused: refused.map(r => ({ vmId: r.vmId, reason: r.reason.slice(0, 500) })), ...(tombstones.length > 0 ? { tombstones } : {}) }
      }
      case 'drop': {
        // Only a record's owner takes it back.
        this.#p.holdings.drop(req.vmIds.filter(id => { const r = this.#p.holdings.get(id); return r != null && headOf(r.record.chain).owner === from }))
        return ok
      }
      case 'delete': {
        const { refused, later, deleting } = this.#p.tombstones.take(from, req.tombstones, true)
        await deleting
        return { ...ok, ...(refused.length > 0 ? { refused } : {}), ...(later.length > 0 ? { later } : {}) }
      }
      case 'confirm-dead':
        return { ...ok, dead: this.#p.membership.view.get(req.peerId)?.status === 'dead' }
      case 'chain': {
        const chains: Array<{ vmId: string, chain: Chain }> = []
        for (const id of req.vmIds) {
          const rec = this.#p.local.get(id)
          if (rec != null && rec.chain.length > 0) chains.push({ vmId: id, chain: rec.chain })
        }
        return { ...ok, chains }
      }
      case 'claim':
        this.#p.claims.pushed(from, req.chains)
        return ok
      case 'held':
        return { ...ok, ...this.#p.replication.heldBy(from, req.vmIds) }
      case 'handoff':
        return { ...ok, ...this.#takeHandoff(from, req.records) }
      case 'tombstones': {
        const designations = this.#p.holdings.designationsOf(req.vmIds)
        const later = this.#p.tombstones.knownHeads(req.vmIds, from)
        return { ...ok, tombstones: this.#tombstonesOf(req.vmIds), ...(designations.length > 0 ? { designations } : {}), ...(later.length > 0 ? { later } : {}) }
      }
      case 'heads':
        return { ...ok, later: this.#p.tombstones.laterHeads(req.heads, from, true), tombstones: this.#tombstonesOf(req.heads.map(h => h.vmId)) }
    }
  }

  /**
   * Records another holder hands us as their restarter (`handoff`): those we
   * restarted already, or run, are settled; those deleted answered with their
   * tombstones; the others taken (holdings.ts `handOver`: signatures checked,
   * owner dead in our view) and the restart rule run on them at once.
   */
  #takeHandoff (from: string, records: readonly ReplicaRecord[]): Pick<Extract<ReplicaResponse, { ok: true }>, 'settled' | 'tombstones' | 'refused'> {
    const settled: string[] = []
    const tombstones: Tombstone[] = []
    const rest: ReplicaRecord[] = []
    for (const r of records) {
      const id = r.spec.id
      const head = headOf(r.chain)
      const t = this.#p.holdings.tombstoneFor(id, r.chain)
      const mine = this.#p.local.get(id)
      if (t != null) tombstones.push(t)
      else if (this.#p.restarts.restartedFrom(id, head) || (mine != null && mine.chain.length > 0 && compareHeads(headOf(mine.chain), head) > 0)) settled.push(id)
      else rest.push(r)
    }
    const refused = rest.length > 0 ? this.#p.holdings.handOver(from, rest, owner => this.#p.membership.view.get(owner)?.status === 'dead') : []
    for (const r of refused) if (r.forged) this.#p.refused(r.vmId, from, 'record', r.reason)
    const taken = rest.length - refused.length
    if (taken > 0) {
      this.#p.log.info({ component: 'discovery:restart', from, vms: taken }, 'records of a dead owner handed over by another holder')
      this.#p.restarts.evaluate()
    }
    return {
      settled,
      tombstones,
      refused: refused.map(r => ({ vmId: r.vmId, reason: r.reason.slice(0, 500) }))
    }
  }

  #tombstonesOf (vmIds: readonly string[]): Tombstone[] {
    const out: Tombstone[] = []
    for (const id of vmIds) {
      const t = this.#p.holdings.tombstone(id)
      if (t != null) out.push(t)
    }
    return out
  }
}
