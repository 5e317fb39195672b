/**
 * The VMs of the `churn` scenario: each node owns VMs whose records are held
 * by the `k` next peers on the ring of the peers its own detector does not
 * declare dead, and when a holder's detector declares an owner dead, the
 * holder applies the agents' restart rule (core/replica-rule.ts
 * `decideRestart`, with its own view's statuses) — the same decisions as
 * src/agent/restarts.ts and replication.ts, on the simulator's clock:
 *
 * - the restarter places an `always` VM on a random running node with room
 *   that it does not hold dead, at epoch + 1, two round trips of the link
 *   later (ask, commit); if it is no longer running then, or the node is not,
 *   it tries again after `retryMs`. A `never` VM is reported lost;
 * - an owner whose ring changed recomputes its holders once the ring has
 *   stayed the same for `ringSettleMs` and, if they changed, pushes every
 *   record with the new designation to each of them and drops them from
 *   those that left (`pushDelayMs` then a one-way latency); a node back from
 *   a kill starts with no holders, as the agent does, so it pushes everything;
 * - a node resumed from a hang acts on no death for `stallHoldMs`;
 * - fencing: a copy below the VM's head (epoch, then owner id) stops
 *   `CLAIM_MS` after the head's owner and it are both running (the agent
 *   learns of the head from the owner's gossiped VMs and its proof), and the
 *   holders of records below the head drop them then too (claims.ts).
 *
 * A killed node keeps its disk: its copies run again when it comes back until
 * fenced, and it keeps its records. A hung node's VMs count as down.
 *
 * What is measured: restarts and the time from the failure to the VM running
 * again, conflicts (a restart at an epoch some copy already reached: two
 * holders restarting one VM, or a restart from a stale record), duplicates
 * (a VM on two running nodes once things settled), VMs lost (an `always` VM
 * that ran again only because its owner came back, or not at all), `never`
 * VMs reported lost, and the replica traffic.
 */
import { DEFAULT_REPLICA, decideRestart, isGone, type RestartPolicy, sameHolders } from '../core/replica-rule.ts'
import type { Designation } from '../core/ownership-messages.ts'
import { MAX_RECORDS_PER_MESSAGE } from '../core/replica-messages.ts'
import { Ring } from '../core/ring.ts'
import { seededRng, type Rng } from '../core/rng.ts'
import type { PeerStatus } from '../core/cluster-view.ts'
import type { ChangeRecord, SwimWorld } from './swim-world.ts'

/**
 * How long after a new head runs (or a fenced copy's node comes back) the
 * stale copies and records hear of it: in the agent, from the VMs each owner
 * gossips with its state and the proof the higher owner then sends
 * (claims.ts); with 8 agents the stale copies stopped within 3.7 s of their
 * return (README, "Failures and partitions"). A fixed 2 s here, a choice: the
 * state gossip of 10,000 nodes is much slower (`--scenario placement`), so
 * this scenario says nothing of how long a duplicate lasts there, only that
 * none is left once the owners heard of each other.
 */
export const CLAIM_MS = 2_000

/** Room on a node: restarted VMs go to nodes with fewer than this many times `vmsPerNode`. */
const ROOM_FACTOR = 3

export interface ChurnVmsInit {
  world: SwimWorld
  seed: number
  vmsPerNode: number
  /** One VM in `neverEvery` has restart policy `never` (0: none). */ neverEvery: number
  link: { baseMs: number, jitterMs: number }
}

interface Rec {
  vm: number
  epoch: number
  owner: number
  replicas: number[]
}

interface Vm {
  policy: RestartPolicy
  headEpoch: number
  headOwner: number
  headAtMs: number
  /** Node → the epoch of its copy (on its disk: it runs while the node runs). */
  owners: Map<number, number>
  /** Nodes holding a record of it. */
  holders: Set<number>
  downAtMs?: number
  /** Counted lost in this time down. */
  lost: boolean
}

interface Node {
  owned: Set<number>
  held: Map<number, Rec>
  holders: number[]
  ringChangedAtMs: number
  holdUntilMs: number
  inFlight: Set<number>
  /** Raised at each kill and hang: what a node had under way before it stops there. */
  gen: number
  /** What reached it while hung: handled on resume. */
  inbox: Array<() => void>
}

export interface ChurnVmStats {
  vms: number
  restarted: number
  restartMs: number[]
  conflicts: number
  fenced: number
  lost: number
  neverReported: number
  messages: number
}

export class ChurnVms {
  readonly #w: SwimWorld
  readonly #rng: Rng
  readonly #link: { baseMs: number, jitterMs: number }
  readonly #k = DEFAULT_REPLICA.replicas
  readonly #cfg = DEFAULT_REPLICA
  readonly #room: number
  readonly #vms: Vm[] = []
  readonly #nodes: Node[] = []
  readonly #ring: number[]
  readonly #ringPos: number[]
  readonly stats: ChurnVmStats

  constructor (init: ChurnVmsInit) {
    this.#w = init.world
    this.#rng = seededRng(init.seed ^ 0x5eed_7a11)
    this.#link = init.link
    this.#room = ROOM_FACTOR * Math.max(1, init.vmsPerNode)
    const n = this.#w.size
    this.#ring = new Ring(Array.from({ length: n }, (_, i) => this.#w.id(i))).ids().map(id => Number(id.slice(1)))
    this.#ringPos = new Array<number>(n)
    this.#ring.forEach((node, pos) => { this.#ringPos[node] = pos })
    for (let i = 0; i < n; i++) this.#nodes.push({ owned: new Set(), held: new Map(), holders: [], ringChangedAtMs: -Infinity, holdUntilMs: 0, inFlight: new Set(), gen: 0, inbox: [] })
    // Every node starts with its VMs and its holders in place: the records were pushed before the run.
    for (let i = 0; i < n; i++) {
      const node = this.#nodes[i]
      node.holders = this.#successors(i)
      for (let j = 0; j < init.vmsPerNode; j++) {
        const v = this.#vms.length
        const policy: RestartPolicy = init.neverEvery > 0 && v % init.neverEvery === init.neverEvery - 1 ? 'never' : 'always'
        this.#vms.push({ policy, headEpoch: 0, headOwner: i, headAtMs: 0, owners: new Map([[i, 0]]), holders: new Set(), lost: false })
        node.owned.add(v)
        for (const h of node.holders) this.#hold(h, { vm: v, epoch: 0, owner: i, replicas: node.holders })
      }
    }
    this.stats = { vms: this.#vms.length, restarted: 0, restartMs: [], conflicts: 0, fenced: 0, lost: 0, neverReported: 0, messages: 0 }
  }

  /** An owner's current holders: with it, what a correlated failure of k + 1 nodes takes down. */
  holdersOf (i: number): readonly number[] { return this.#nodes[i].holders }

  /** A status change at one node's detector (SwimWorld.onChange). */
  onChange (c: ChangeRecord): void {
    if (c.to !== 'dead' && c.from !== 'dead') return
    const o = Number(c.observer.slice(1))
    this.#ringChanged(o)
    if (c.to === 'dead') this.#evaluate(o)
  }

  /** Node `i` was killed or hung: its VMs stop running. */
  failed (i: number): void {
    this.#nodes[i].gen++
    this.#nodes[i].inFlight.clear()
    for (const v of this.#nodes[i].owned) this.#refresh(v, 'other')
    for (const v of this.#nodes[i].held.keys()) if (this.#vms[v].downAtMs != null) this.#refresh(v, 'other')
  }

  /** Node `i` is about to resume from a hang: the deaths its view declares on waking are not acted on for `stallHoldMs` (replica-service.ts `tick`). */
  resuming (i: number): void {
    const node = this.#nodes[i]
    node.holdUntilMs = this.#w.now + this.#cfg.stallHoldMs
    this.#w.queue.push(node.holdUntilMs, () => { this.#evaluate(i) })
  }

  /** Node `i` is back: a new run after a kill (no holders until its ring settles), or resumed from a hang (acts on no death for a while). */
  back (i: number, how: 'restart' | 'resume'): void {
    const node = this.#nodes[i]
    const now = this.#w.now
    if (how === 'restart') {
      node.holders = []
      this.#ringChanged(i)
    }
    const inbox = node.inbox
    node.inbox = []
    for (const deliver of inbox) deliver()
    for (const v of node.owned) {
      this.#refresh(v, 'other')
      this.#w.queue.push(now + CLAIM_MS, () => { this.#fence(v) })
    }
  }

  /** VMs on two running nodes, and VMs down now (to be called once things have settled). */
  census (): { duplicates: number, down: number } {
    // Each is counted once: as down here, or as lost when it went down with no holder left.
    let duplicates = 0
    let down = 0
    for (const vm of this.#vms) {
      let running = 0
      for (const node of vm.owners.keys()) if (this.#running(node)) running++
      if (running > 1) duplicates++
      if (running === 0 && vm.policy === 'always' && !vm.lost) down++
    }
    return { duplicates, down }
  }

  #running (i: number): boolean { return this.#w.state(i) === 'running' }

  #status (i: number): (peer: string) => PeerStatus | undefined {
    const self = this.#w.id(i)
    return (peer: string) => peer === self ? 'alive' : this.#w.statusOf(i, Number(peer.slice(1))) as PeerStatus | undefined
  }

  /** The k peers after `i` on the ring of the peers its view does not declare dead: replicaSet() without building that ring. */
  #successors (i: number): number[] {
    const out: number[] = []
    const n = this.#ring.length
    const pos = this.#ringPos[i]
    for (let step = 1; step < n && out.length < this.#k; step++) {
      const p = this.#ring[(pos + step) % n]
      if (!isGone(this.#w.statusOf(i, p) as PeerStatus | undefined)) out.push(p)
    }
    return out
  }

  #latency (): number { return this.#link.baseMs + this.#rng.next() * this.#link.jitterMs }

  /** One message from `from` to `to`, handled at `to` if it runs (later if it is hung; lost if it is killed). */
  #send (to: number, delayMs: number, handle: () => void): void {
    this.stats.messages++
    this.#w.queue.push(this.#w.now + delayMs + this.#latency(), () => {
      const state = this.#w.state(to)
      if (state === 'running') handle()
      else if (state === 'hung') this.#nodes[to].inbox.push(handle)
    })
  }

  #ringChanged (i: number): void {
    const node = this.#nodes[i]
    const at = this.#w.now
    node.ringChangedAtMs = at
    this.#w.queue.push(at + this.#cfg.ringSettleMs, () => {
      if (node.ringChangedAtMs === at && this.#running(i)) this.#recompute(i)
    })
  }

  #recompute (i: number): void {
    const node = this.#nodes[i]
    const next = this.#successors(i)
    if (sameHolders(next.map(p => this.#w.id(p)), node.holders.map(p => this.#w.id(p)))) return
    const before = node.holders
    node.holders = next
    const ids = [...node.owned]
    if (ids.length === 0) return
    for (const h of next) this.#push(i, h, ids)
    for (const h of before) {
      if (next.includes(h)) continue
      for (let b = 0; b < ids.length; b += MAX_RECORDS_PER_MESSAGE) {
        const batch = ids.slice(b, b + MAX_RECORDS_PER_MESSAGE)
        this.#send(h, this.#cfg.pushDelayMs, () => {
          const held = this.#nodes[h].held
          for (const v of batch) if (held.get(v)?.owner === i) this.#drop(h, v)
        })
      }
    }
  }

  /** Owner `i` sends its records of `ids` to holder `h`, with its current designation. */
  #push (i: number, h: number, ids: number[]): void {
    const replicas = this.#nodes[i].holders
    for (let b = 0; b < ids.length; b += MAX_RECORDS_PER_MESSAGE) {
      const recs: Rec[] = []
      for (const v of ids.slice(b, b + MAX_RECORDS_PER_MESSAGE)) {
        const epoch = this.#vms[v].owners.get(i)
        if (epoch != null) recs.push({ vm: v, epoch, owner: i, replicas })
      }
      this.#send(h, this.#cfg.pushDelayMs, () => {
        let act = false
        for (const r of recs) if (this.#put(h, r)) act ||= isGone(this.#status(h)(this.#w.id(r.owner)))
        if (act) this.#evaluate(h)
      })
    }
  }

  /** A holder takes a record unless it holds a later one, or has heard (by gossip) of a later head. */
  #put (h: number, r: Rec): boolean {
    const vm = this.#vms[r.vm]
    const held = this.#nodes[h].held.get(r.vm)
    if (held != null && this.#below(r, held.epoch, held.owner)) return false
    if (this.#below(r, vm.headEpoch, vm.headOwner) && this.#w.now >= vm.headAtMs + CLAIM_MS) return false
    this.#hold(h, r)
    return true
  }

  #hold (h: number, r: Rec): void { this.#nodes[h].held.set(r.vm, r); this.#vms[r.vm].holders.add(h) }
  #drop (h: number, v: number): void { this.#nodes[h].held.delete(v); this.#vms[v].holders.delete(h) }

  /** Whether (epoch, owner) of `r` is below the other: a later epoch wins, then the higher peer id. */
  #below (r: { epoch: number, owner: number }, epoch: number, owner: number): boolean {
    return r.epoch < epoch || (r.epoch === epoch && this.#w.id(r.owner) < this.#w.id(owner))
  }

  /** Holder `h` runs the restart rule over the records it holds of owners it counts as gone (restarts.ts `evaluate`). */
  #evaluate (h: number): void {
    const node = this.#nodes[h]
    if (!this.#running(h) || this.#w.now < node.holdUntilMs) return
    const status = this.#status(h)
    const self = this.#w.id(h)
    for (const r of [...node.held.values()]) {
      if (node.inFlight.has(r.vm) || !isGone(status(this.#w.id(r.owner)))) continue
      const designation = { vmId: `v${r.vm}`, epoch: r.epoch, owner: this.#w.id(r.owner), replicas: r.replicas.map(p => this.#w.id(p)), issuedAtMs: 0, sig: '' } satisfies Designation
      const decision = decideRestart({ designation, policy: this.#vms[r.vm].policy }, self, status, false)
      if (decision.kind === 'lost') {
        this.stats.neverReported++
        this.#drop(h, r.vm)
      } else if (decision.kind === 'restart') this.#restart(h, r)
    }
  }

  /** Ask a node with room, then commit there: two round trips. */
  #restart (h: number, r: Rec): void {
    const node = this.#nodes[h]
    node.inFlight.add(r.vm)
    const gen = node.gen
    const status = this.#status(h)
    let target: number | undefined
    for (let tries = 0; tries < 20 && target == null; tries++) {
      const t = Math.floor(this.#rng.next() * this.#nodes.length)
      if (this.#nodes[t].owned.size < this.#room && !isGone(status(this.#w.id(t)))) target = t
    }
    this.stats.messages += 4
    const rtt2 = 2 * (this.#latency() + this.#latency())
    this.#w.queue.push(this.#w.now + rtt2, () => {
      // Killed or hung meanwhile, or the record superseded: this restart is off (its takeover is the next holder's).
      if (node.gen !== gen) return
      node.inFlight.delete(r.vm)
      if (!this.#running(h) || node.held.get(r.vm) !== r) return
      if (target == null || !this.#running(target)) {
        this.#w.queue.push(this.#w.now + this.#cfg.retryMs, () => { this.#evaluate(h) })
        return
      }
      this.#commit(r, target)
      this.#drop(h, r.vm)
    })
  }

  #commit (r: Rec, x: number): void {
    const vm = this.#vms[r.vm]
    const epoch = r.epoch + 1
    if (epoch <= vm.headEpoch) this.stats.conflicts++
    this.stats.restarted++
    vm.owners.set(x, epoch)
    this.#nodes[x].owned.add(r.vm)
    if (!this.#below({ epoch, owner: x }, vm.headEpoch, vm.headOwner)) {
      vm.headEpoch = epoch
      vm.headOwner = x
      vm.headAtMs = this.#w.now
    }
    this.#refresh(r.vm, 'restart')
    for (const h of this.#nodes[x].holders) this.#push(x, h, [r.vm])
    this.#w.queue.push(this.#w.now + CLAIM_MS, () => { this.#fence(r.vm) })
  }

  /** The head's owner runs: copies below it stop, and records below it are dropped. */
  #fence (v: number): void {
    const vm = this.#vms[v]
    if (!this.#running(vm.headOwner)) return
    for (const [node, epoch] of [...vm.owners]) {
      if (!this.#below({ epoch, owner: node }, vm.headEpoch, vm.headOwner) || !this.#running(node)) continue
      vm.owners.delete(node)
      this.#nodes[node].owned.delete(v)
      this.stats.fenced++
    }
    for (const h of [...vm.holders]) {
      const r = this.#nodes[h].held.get(v)
      if (r != null && this.#below(r, vm.headEpoch, vm.headOwner)) this.#drop(h, v)
    }
    this.#refresh(v, 'other')
  }

  /**
   * Whether the VM runs somewhere now, and if not, whether some running node
   * still holds a record of it (a holder that can restart it): an `always`
   * VM with neither is lost — until its owner or a holder comes back.
   */
  #refresh (v: number, why: 'restart' | 'other'): void {
    const vm = this.#vms[v]
    let up = false
    for (const node of vm.owners.keys()) if (this.#running(node)) { up = true; break }
    if (up) {
      if (vm.downAtMs != null && why === 'restart') this.stats.restartMs.push(this.#w.now - vm.downAtMs)
      vm.downAtMs = undefined
      vm.lost = false
      return
    }
    vm.downAtMs ??= this.#w.now
    if (vm.lost || vm.policy !== 'always') return
    for (const h of vm.holders) if (this.#running(h)) return
    vm.lost = true
    this.stats.lost++
  }
}
