/**
 * Where each VM this agent knows of runs, and in what state: fed with every
 * node's VM list (gossip, or our own), it says what changed — a VM that
 * appeared on a node, booted there, or left it — so that each change becomes
 * one event, whichever way the agent first learnt of it (its own placement,
 * the owner's answer, a peer's gossip). Pure: no clock, no I/O.
 */
import type { VmState } from './messages.ts'

export type VmChange =
  | { kind: 'placed', id: string, node: string, cpu: number, memMiB: number }
  | { kind: 'running', id: string, node: string }
  | { kind: 'deleted', id: string, node: string }

export interface ObservedVm {
  id: string
  cpu: number
  memMiB: number
  state: VmState
}

interface Where {
  node: string
  state: VmState
  /** `running` was reported on this node: a VM back from `migrating` does not boot again. */
  ran: boolean
}

export class VmIndex {
  readonly #where = new Map<string, Where>()
  readonly #byNode = new Map<string, Set<string>>()

  /** How many VMs are known. */
  get size (): number {
    return this.#where.size
  }

  node (id: string): string | undefined {
    return this.#where.get(id)?.node
  }

  /** `vm` is on `node` in its state (one VM: a placement answered, a local change). */
  observe (node: string, vm: ObservedVm): VmChange[] {
    const out: VmChange[] = []
    if (vm.state === 'deleted') {
      out.push(...this.gone(node, vm.id))
      return out
    }
    const e = this.#where.get(vm.id)
    if (e == null || e.node !== node) {
      if (e != null) this.#byNode.get(e.node)?.delete(vm.id)
      this.#where.set(vm.id, { node, state: vm.state, ran: vm.state === 'running' })
      this.#nodeSet(node).add(vm.id)
      out.push({ kind: 'placed', id: vm.id, node, cpu: vm.cpu, memMiB: vm.memMiB })
      if (vm.state === 'running') out.push({ kind: 'running', id: vm.id, node })
      return out
    }
    if (!e.ran && vm.state === 'running') {
      e.ran = true
      out.push({ kind: 'running', id: vm.id, node })
    }
    e.state = vm.state
    return out
  }

  /** `vm` left `node` (deleted, or moved away). Nothing if it is known elsewhere now. */
  gone (node: string, id: string): VmChange[] {
    const e = this.#where.get(id)
    if (e == null || e.node !== node) return []
    this.#where.delete(id)
    this.#byNode.get(node)?.delete(id)
    return [{ kind: 'deleted', id, node }]
  }

  /** `node`'s whole list of VMs now: what appeared, booted, or is no longer there. */
  observeNode (node: string, vms: readonly ObservedVm[]): VmChange[] {
    const out: VmChange[] = []
    const before = this.#byNode.get(node)
    const seen = before != null && before.size > 0 ? new Set<string>() : undefined
    for (const vm of vms) {
      seen?.add(vm.id)
      out.push(...this.observe(node, vm))
    }
    if (before != null && seen != null) {
      for (const id of [...before]) if (!seen.has(id)) out.push(...this.gone(node, id))
    }
    return out
  }

  /** Forgets a node and its VMs, without changes: a peer dropped from the view. */
  forgetNode (node: string): void {
    for (const id of this.#byNode.get(node) ?? []) this.#where.delete(id)
    this.#byNode.delete(node)
  }

  #nodeSet (node: string): Set<string> {
    let set = this.#byNode.get(node)
    if (set == null) {
      set = new Set()
      this.#byNode.set(node, set)
    }
    return set
  }
}
