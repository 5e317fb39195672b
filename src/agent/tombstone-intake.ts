/**
 * Tombstones as they reach a node — pushed by a deleting owner or a peer
 * that saw us run a deleted VM (`delete`), or brought back by our own
 * questions (`held`, `tombstones`, `handoff`). A tombstone whose chain
 * reaches our copy of its VM deletes that copy, and our replica of it; one
 * that reaches neither is kept only from the VM's owner. A delete that met a
 * copy its VM's chain has since moved on from — its owner was declared dead
 * while it hung or was down, and a holder restarted the VM elsewhere — must
 * reach the later copies too: the sender is told the later heads we know of
 * (`laterHeads`), and sends them the tombstone in turn.
 */
import type { Logger } from 'pino'
import type { VmSummary } from '../core/messages.ts'
import { checkTombstone, compareHeads, type Head, headOf, type Signer } from '../core/ownership.ts'
import type { Chain, Tombstone } from '../core/ownership-messages.ts'
import { type LaterHead, MAX_LATER_HEADS } from '../core/replica-messages.ts'
import type { Holdings } from './holdings.ts'
import type { LocalNode } from './local-node.ts'

export interface TombstoneIntakeInit {
  self: string
  signer: Signer
  local: LocalNode
  holdings: Holdings
  log: Logger
  /** The head we restarted a VM at (restarts.ts). */
  restartedTo: (vmId: string) => Head | undefined
  /** The VMs our view knows, with the node that gossips each. */
  clusterVms: () => ReadonlyArray<VmSummary & { node: string }>
  /** A tombstone refused that names a copy or record we hold, or comes from its owner: counted and logged. */
  refused: (vmId: string, from: string, reason: string) => void
}

export class TombstoneIntake {
  readonly #init: TombstoneIntakeInit

  constructor (init: TombstoneIntakeInit) {
    this.#init = init
  }

  /**
   * Tombstones from `from`: each deletes our copy and our replica of its VM
   * when its chain reaches theirs, and is kept; one that reaches nothing we
   * hold is kept only from its own owner (we may be asked to restart that VM
   * later). Returns those refused, with `withLater` the later heads we know
   * of the VMs of those kept (`laterHeads`: a deleting sender sends them the
   * tombstone too; none otherwise), and the deletes of our copies, done once
   * each tombstone of ours reached our own holders.
   */
  take (from: string, tombstones: readonly Tombstone[], withLater = false): { refused: Array<{ vmId: string, reason: string }>, later: LaterHead[], deleting: Promise<void> } {
    const refused: Array<{ vmId: string, reason: string }> = []
    const keep: Tombstone[] = []
    const replicas: string[] = []
    const copies: string[] = []
    for (const t of tombstones) {
      const copy = this.#init.local.get(t.vmId)
      const held = this.#init.holdings.get(t.vmId)
      const reaches = (chain: Chain | undefined): boolean => chain != null && chain.length > 0 && checkTombstone(t, chain, this.#init.signer) == null
      const deletesCopy = reaches(copy?.chain)
      const deletesReplica = reaches(held?.record.chain)
      if (!deletesCopy && !deletesReplica) {
        const why = t.owner !== from ? 'a tombstone that reaches no copy or record held here' : checkTombstone(t, undefined, this.#init.signer)
        if (why != null) {
          refused.push({ vmId: t.vmId, reason: why.slice(0, 500) })
          if (t.owner === from || copy != null || held != null) this.#init.refused(t.vmId, from, why)
          continue
        }
      }
      keep.push(t)
      if (deletesReplica) replicas.push(t.vmId)
      if (deletesCopy) copies.push(t.vmId)
    }
    // Read before the records they name are dropped.
    const later = withLater ? this.laterHeads(keep, from) : []
    this.#init.holdings.drop(replicas)
    const deleting = copies.map(async id => {
      this.#init.log.info({ component: 'discovery:replica', vm: id, by: from }, 'deleted elsewhere: stopping our copy')
      await this.#init.local.remove(id, 'user').catch((err: Error) => { this.#init.log.warn({ component: 'discovery:replica', vm: id, err: err.message }, 'could not stop a copy deleted elsewhere') })
    })
    this.#init.holdings.addTombstones(keep)
    return { refused, later, deleting: Promise.all(deleting).then(() => {}) }
  }

  /**
   * The heads above each of `heads` (a tombstone's, or a copy's) that this
   * node knows of, but for `except`'s and — unless `withOwn` — its own: the
   * restart it made of that VM, the record it holds, the copies it sees
   * gossiped by live peers (and with `withOwn`, the copy it runs). A delete
   * that met a copy the VM's chain has since moved on from (its owner was
   * declared dead and came back, or was hung, while a holder restarted the
   * VM elsewhere) must reach the later copies too; an owner back from a
   * restart asks for them (`heads`) to stop its stale copies at once.
   */
  laterHeads (heads: ReadonlyArray<{ vmId: string } & Head>, except: string, withOwn = false): LaterHead[] {
    const byVm = new Map(heads.map(t => [t.vmId, t]))
    return this.#heads([...byVm.keys()], (vmId, h) => (h.owner !== this.#init.self || withOwn) && h.owner !== except && compareHeads(h, byVm.get(vmId)!) > 0)
  }

  /**
   * The heads this node knows of each of `vmIds`, but for `except`'s: the
   * restart it made, the record it holds, the copy it runs, the copies it
   * sees gossiped. A restarter asks the other holders (`tombstones`) before
   * it restarts: one of them may have restarted the VM already (it saw the
   * owner dead first, or the restarter dead), and the copy it made is proved
   * and our record dropped instead of a second copy made.
   */
  knownHeads (vmIds: readonly string[], except: string): LaterHead[] {
    return this.#heads(vmIds, (_vmId, h) => h.owner !== except)
  }

  #heads (vmIds: readonly string[], keep: (vmId: string, h: Head) => boolean): LaterHead[] {
    if (vmIds.length === 0) return []
    const byVm = new Set(vmIds)
    const out = new Map<string, LaterHead>()
    const add = (vmId: string, h: Head | undefined): void => {
      if (!byVm.has(vmId) || h == null || !keep(vmId, h)) return
      const key = `${vmId}/${h.owner}`
      const prev = out.get(key)
      if (prev == null || compareHeads(h, prev) > 0) out.set(key, { vmId, epoch: h.epoch, owner: h.owner })
    }
    for (const vmId of byVm) {
      add(vmId, this.#init.restartedTo(vmId))
      const held = this.#init.holdings.get(vmId)
      if (held != null) add(vmId, headOf(held.record.chain))
      const copy = this.#init.local.get(vmId)
      if (copy != null && copy.chain.length > 0) add(vmId, headOf(copy.chain))
    }
    for (const vm of this.#init.clusterVms()) if (byVm.has(vm.id)) add(vm.id, { epoch: vm.epoch, owner: vm.node })
    return [...out.values()].slice(0, MAX_LATER_HEADS)
  }
}
