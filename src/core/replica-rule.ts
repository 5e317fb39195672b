/**
 * The rules of replicated VM records, pure, for the agent and the simulator:
 *
 * - who holds what: an owner's VMs are held by the `k` peers after it on the
 *   ring of the peers not declared dead (ring.ts), in ring order; when that
 *   set changes, the owner pushes its records to the new members and then
 *   drops them from the members that left;
 * - who restarts what: when an owner is declared dead, each holder of one of
 *   its VMs computes the restarter — the first holder of the VM's
 *   designation not declared dead. The restarter places an `always` VM again
 *   (at epoch + 1, with a restart link) or reports a `never` VM lost; the
 *   others wait, and the next one takes over only if the restarter is
 *   declared dead too. A tombstone refuses every restart of its VM;
 * - the quorum mode (`--restart-quorum`): a restart needs a majority of the
 *   VM's replica set (its owner and its holders) to confirm the owner dead,
 *   so a minority side of a partition restarts nothing.
 *
 * Deaths are not decided here: the view's status (the failure detector) is an input.
 */
import type { PeerStatus } from './cluster-view.ts'
import type { Designation } from './ownership-messages.ts'
import type { ProcessIdentity } from './messages.ts'
import type { Ring } from './ring.ts'

export interface ReplicaConfig {
  /**
   * k: how many peers after the owner on the ring hold each of its VMs.
   * Default 2: a VM survives the death of its owner and of one holder at
   * once (two neighbours on the ring), for two more copies of each record.
   */
  replicas: number
  /**
   * `--restart-quorum`: a restart needs a majority of the VM's replica set
   * (the owner and its k holders) to confirm the owner dead, so the minority
   * side of a partition restarts nothing. Default off: with it, a VM whose
   * owner and one holder die at once (k = 2) waits for one of them to return.
   */
  restartQuorum: boolean
  /**
   * How long an owner gathers its new records before it pushes them to its
   * holders, in one message each: every push is a stream opened on both ends
   * (milliseconds of CPU in JS libp2p) and a commit on the holder. Measured
   * on this machine, shared with other work (placement benchmark, 20 agents):
   * 67–70 VMs/s with a push per create against 114–118 without replication.
   * The price of waiting: an owner that dies within this time after a
   * create's `201` takes the VM with it. Default 100 ms.
   */
  pushDelayMs: number
  /** Pause before a failed push, restart or confirmation is tried again; doubles up to 10 s. Default 1 s. */
  retryMs: number
  /**
   * How long the ring must stay the same before an owner moves its replicas:
   * agents that start or die together change the ring many times in a second,
   * and each change would move every record. Restarts do not wait for it. Default 1 s.
   */
  ringSettleMs: number
  /**
   * After a ring change, how long a holder waits for its owners to send their
   * records again before it asks them about the ones they did not (`held`):
   * a holder back from the dead may hold records its owner has since moved
   * or deleted, and must not restart them. Default 10 s.
   */
  reconcileAfterMs: number
  /**
   * How long a tombstone is kept: a VM deleted on one side of a partition
   * stays deleted if the partition heals within this time. Default 7 days.
   */
  tombstoneKeepMs: number
  /** The most tombstones kept (the oldest go first): bounded disk. Default 10,000. */
  tombstoneMax: number
  /**
   * How long after an owner's death a holder that waits for another holder to
   * restart one of its VMs hands that holder its record (`handoff`), and again
   * with a back-off while the VM has not run elsewhere: an owner that died
   * while it moved its records to new holders may have left the restarter its
   * designation names without the record, and the other holders would wait
   * for it for ever. The restarter takes a handed record only with valid
   * signatures and its owner dead in its own view, and restarts it as if the
   * owner had sent it. Default 3 s: a restart begins within a second of the
   * death when the restarter holds the record.
   */
  handoffAfterMs: number
  /**
   * How long a restarter waits, in one round, for the tombstones of a dead
   * owner's VMs from the live peers that may hold them (the other holders of
   * the VM's designation, and the owner's successors on the ring now): a
   * delete is answered once its live holders took the tombstone, and a
   * holder that was down then, or whose record is older than the owner's
   * last designation, missed it. A VM is restarted only once every live peer
   * asked has answered; one that has not within this time is asked again
   * on the restart's back-off (`retryMs`, doubling), and a hung one stops
   * counting once the failure detector declares it dead (seconds). A late
   * answer's tombstones are still taken. Default 1 s: a live holder answers
   * within milliseconds on a LAN, tens of them across sites; under load,
   * seconds (4.2 s measured at 50 agents on two cores).
   */
  tombstoneAskMs: number
  /**
   * A gap this long between two of the agent's ticks (250 ms apart) means it
   * was paused (SIGSTOP, a frozen VM, a machine out of CPU): on waking, its
   * view finds every peer silent and declares them dead. Default 5 s.
   */
  stallMs: number
  /**
   * After such a pause, how long deaths are not acted on: time to reconnect
   * and hear the peers again, which makes them alive. Without it a paused
   * agent would restart every VM it holds on waking. Default 10 s.
   */
  stallHoldMs: number
}

export const DEFAULT_REPLICA: ReplicaConfig = Object.freeze({ replicas: 2, restartQuorum: false, pushDelayMs: 100, retryMs: 1_000, ringSettleMs: 1_000, reconcileAfterMs: 10_000, handoffAfterMs: 3_000, tombstoneAskMs: 1_000, tombstoneKeepMs: 7 * 24 * 3_600_000, tombstoneMax: 10_000, stallMs: 5_000, stallHoldMs: 10_000 })

/** A peer's status as this node believes it; undefined for a peer it does not know (forgotten, or never heard of). */
export type StatusOf = (peerId: string) => PeerStatus | undefined

export type RestartPolicy = 'always' | 'never'

/**
 * A peer's failure domain for replicaSet: the process it runs in (`process`
 * in its state), shared by the agents of one process (`cluster up
 * --per-process`), which one SIGKILL or crash takes down together. Undefined
 * where the process is not known (not Linux): a domain of its own.
 */
export function processDomain (p: ProcessIdentity | undefined): string | undefined {
  return p == null ? undefined : `${p.host}/${p.pid}/${p.start}`
}

/**
 * The `k` holders of `owner`'s VMs on `ring` (the peers not declared dead,
 * `owner` among them), in ring order. With `domainOf` (the failure domain of
 * a peer: the agents that die together, such as those of one process; undefined
 * for a peer alone in its own), the next peers whose domain is neither the
 * owner's nor an already chosen holder's come first, so that one domain's
 * death never takes a VM's owner with all its holders while other domains
 * could hold them; when there are too few domains, the peers skipped fill in,
 * in ring order. Without `domainOf`, or when every peer is alone in its
 * domain, the k next peers.
 */
export function replicaSet (ring: Ring, owner: string, k: number, domainOf?: (peerId: string) => string | undefined): string[] {
  if (domainOf == null) return ring.successors(owner, k)
  const taken = new Set<string>()
  const own = domainOf(owner)
  if (own != null) taken.add(own)
  const out: string[] = []
  const skipped: string[] = []
  let cur = owner
  for (let n = 0; n < ring.size && out.length < k; n++) {
    const next = ring.successor(cur)
    if (next == null || next === owner) break
    cur = next
    const d = domainOf(next)
    if (d != null && taken.has(d)) { skipped.push(next); continue }
    if (d != null) taken.add(d)
    out.push(next)
  }
  if (out.length >= k || skipped.length === 0) return out
  // Too few other domains: the peers skipped, nearest first, then the whole set back in ring order.
  const chosen = new Set([...out, ...skipped.slice(0, k - out.length)])
  return ring.successors(owner, ring.size).filter(p => chosen.has(p))
}

/** What an owner whose holders were `before` and are `after` must do: push to the new ones, drop from those that left. */
export function replicaMoves (before: readonly string[], after: readonly string[]): { push: string[], drop: string[] } {
  return { push: after.filter(p => !before.includes(p)), drop: before.filter(p => !after.includes(p)) }
}

/** Whether two holder lists are the same, in the same order (the order decides the restarter). */
export function sameHolders (a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((p, i) => p === b[i])
}

/** A peer no longer counted on: declared dead, or not in the view at all. */
export function isGone (status: PeerStatus | undefined): boolean {
  return status == null || status === 'dead'
}

/** The holder that restarts a dead owner's VM: the first of its designation not declared dead. */
export function restarterOf (designation: Designation, status: StatusOf): string | undefined {
  return designation.replicas.find(p => !isGone(status(p)))
}

export type RestartDecision =
  /** This holder places the VM again. */
  | { kind: 'restart' }
  /** This holder reports the VM lost (`never`): nothing restarts it. */
  | { kind: 'lost' }
  /** Another holder is the restarter; this one takes over if that one is declared dead. */
  | { kind: 'wait', restarter: string }
  /** Nothing to do: why. */
  | { kind: 'none', reason: 'owner-not-dead' | 'deleted' | 'not-designated' }

export interface HeldReplica {
  designation: Designation
  policy: RestartPolicy
}

/** What holder `self` does with a replica it holds, given what it believes of each peer. */
export function decideRestart (replica: HeldReplica, self: string, status: StatusOf, tombstoned: boolean): RestartDecision {
  if (tombstoned) return { kind: 'none', reason: 'deleted' }
  if (!isGone(status(replica.designation.owner))) return { kind: 'none', reason: 'owner-not-dead' }
  if (!replica.designation.replicas.includes(self)) return { kind: 'none', reason: 'not-designated' }
  const restarter = restarterOf(replica.designation, p => p === self ? 'alive' : status(p))
  if (restarter !== self) return { kind: 'wait', restarter: restarter! }
  return replica.policy === 'never' ? { kind: 'lost' } : { kind: 'restart' }
}

/** Confirmations a restart needs in the quorum mode: a majority of the replica set (the owner and its holders). */
export function quorumSize (designation: Designation): number {
  return Math.floor((designation.replicas.length + 1) / 2) + 1
}

/** The holders the restarter asks to confirm the owner dead (itself confirms by deciding to restart). */
export function confirmers (designation: Designation, self: string): string[] {
  return designation.replicas.filter(p => p !== self)
}

/** Whether `confirmed` (holders that answered "dead", the restarter included) is a majority of the replica set. */
export function hasQuorum (designation: Designation, confirmed: ReadonlySet<string>): boolean {
  let n = 0
  for (const p of designation.replicas) if (confirmed.has(p)) n++
  return n >= quorumSize(designation)
}
