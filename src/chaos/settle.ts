/**
 * After the faults stop: waits for the cluster to settle — every agent alive
 * in every agent's view with the capacity each one states, every agent's view
 * of the cluster's VMs placing each VM where it runs, no VM migrating, and
 * every agent's own VMs unchanged over two polls — with a deadline, and
 * takes the final observation the checker judges. Records when the views
 * first agreed, for the convergence bound.
 */
import type { ChaosCluster } from './faults.ts'
import type { FinalObservation, VmSeen } from './history.ts'
import { get } from './http.ts'

interface NodeEntry { peerId: string, capacity: { cpu: number, memMiB: number }, state: string }

export interface SettleResult { convergedMs?: number, settledMs?: number, final: FinalObservation, polls: number }

/** Every agent sees every member alive, with the capacity that member states for itself. (Pure.) */
export function viewsAgree (peerIds: string[], views: Array<NodeEntry[] | undefined>): boolean {
  if (views.some(v => v == null)) return false
  const own = new Map<string, NodeEntry>()
  views.forEach((v, i) => { const me = v!.find(n => n.peerId === peerIds[i]); if (me != null) own.set(me.peerId, me) })
  return views.every(v => peerIds.every(id => {
    const n = v!.find(e => e.peerId === id)
    const mine = own.get(id)
    return n != null && n.state === 'alive' && mine != null && n.capacity.cpu === mine.capacity.cpu && n.capacity.memMiB === mine.capacity.memMiB
  }))
}

/**
 * Every agent's view of the cluster's VMs (`?scope=cluster`) names each VM
 * at the one agent that runs it. An agent restarted on its data dir runs its
 * old copies until it hears of the newer claims elsewhere and fences them:
 * its own list is stable over two polls before then, and a final observation
 * taken there reported a duplicate the cluster was about to resolve. A
 * duplicate that stays keeps this false until the deadline, when the final
 * observation shows it. (Pure.)
 */
export function vmViewsAgree (own: Array<VmSeen[] | undefined>, views: Array<VmSeen[] | undefined>): boolean {
  if (own.some(l => l == null) || views.some(v => v == null)) return false
  const where = new Map<string, string>()
  for (const list of own) {
    for (const vm of list!) {
      if (where.has(vm.id)) return false
      where.set(vm.id, vm.node)
    }
  }
  return views.every(v => v!.length === where.size && v!.every(vm => where.get(vm.id) === vm.node))
}

function key (lists: Array<VmSeen[] | undefined>): string {
  return JSON.stringify(lists.map(l => l?.map(v => `${v.id}:${v.state}:${v.epoch ?? ''}`).sort()))
}

export async function settle (c: ChaosCluster, deadlineMs: number, everyMs = 500): Promise<SettleResult> {
  const end = Date.now() + deadlineMs
  const peerIds = c.members.map(m => m.peerId)
  let convergedMs: number | undefined
  let previous = ''
  let polls = 0
  let lists: Array<VmSeen[] | undefined> = []
  while (true) {
    polls++
    const views = await Promise.all(c.members.map(async m => await get<NodeEntry[]>(m.api, c.token, '/v1/nodes')))
    lists = await Promise.all(c.members.map(async m => await get<VmSeen[]>(m.api, c.token, '/v1/vms')))
    const clusterViews = await Promise.all(c.members.map(async m => await get<VmSeen[]>(m.api, c.token, '/v1/vms?scope=cluster')))
    const agree = viewsAgree(peerIds, views)
    if (agree && convergedMs == null) convergedMs = c.now()
    const migrating = lists.some(l => l == null || l.some(v => v.state === 'migrating'))
    const k = key(lists)
    if (agree && !migrating && k === previous && vmViewsAgree(lists, clusterViews)) {
      return { convergedMs, settledMs: c.now(), final: final(c, lists), polls }
    }
    previous = k
    if (Date.now() > end) return { convergedMs, final: final(c, lists), polls }
    await new Promise(r => setTimeout(r, everyMs))
  }
}

function final (c: ChaosCluster, lists: Array<VmSeen[] | undefined>): FinalObservation {
  return {
    atMs: c.now(),
    agents: c.members.map((m, i) => ({ agent: m.index, peerId: m.peerId, up: lists[i] != null, vms: (lists[i] ?? []).map(v => ({ id: v.id, name: v.name, state: v.state, node: v.node, epoch: v.epoch })) }))
  }
}
