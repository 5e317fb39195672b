/**
 * Anti-entropy for the failure detector (memberlist's push/pull, for what is
 * not alive only). Updates ride on a bounded number of messages, and during
 * a partition most of those go to peers across the cut, lost: a node can
 * miss the accusations or the verdict that decide a member, and hold it
 * suspect, or alive, for as long as the partition lasts. So each node sends
 * one peer, every `syncIntervalMs` (when it has none to tell, longer on a host
 * shared by many agents: probe-timing.ts, `syncEveryMs`), the members it shows suspect or dead
 * (`sync`); and a suspicion past its deadline without a quorum is asked
 * about, at once, to one of the member's other observers. The receiver
 * answers with a gossip of what it knows beyond that: members the sender
 * named and holds in an older form, then members it did not name.
 */
import type { DetectionTargets } from './detection-targets.ts'
import type { DetectorConfig } from './detector-config.ts'
import { syncEveryMs } from './probe-timing.ts'
import type { SwimUpdate } from './swim-messages.ts'
import type { Member, SwimMembers } from './swim-members.ts'

/** Members one sync or its answer names: with the piggy-backed updates, within a message's bound (SWIM_LIMITS.maxUpdates). */
export const SYNC_UPDATES = 24

/**
 * What a sync tells: `first` (a member asked about), then the members dead
 * or suspect by a quorum, in the order they stopped being alive from the
 * `from`-th on, round the list, up to SYNC_UPDATES in all. Not a
 * suspicion held on our word alone: told again and again, one node's
 * accusations (a fault of its own, a one-way link) would meet a stray
 * accusation elsewhere and make a quorum that a lone accuser never does.
 */
export function syncUpdates (members: SwimMembers, first?: Member, from = 0): SwimUpdate[] {
  const updates = first != null ? [members.updateOf(first)] : []
  const agreed: Member[] = []
  for (const id of members.notAlive()) {
    const m = members.get(id)!
    if (id !== first?.id && members.agreed(m)) agreed.push(m)
  }
  // From `from` on, round the list: beyond SYNC_UPDATES members, each sync tells the next ones.
  for (let i = 0; i < agreed.length && updates.length < SYNC_UPDATES; i++) updates.push(members.updateOf(agreed[(from + i) % agreed.length]))
  return updates
}

/** The answer to a sync from `from` whose updates were applied already: what it lacks or holds older; empty when nothing. */
export function syncAnswer (members: SwimMembers, from: string, theirs: readonly SwimUpdate[]): SwimUpdate[] {
  const named = new Set<string>()
  const news: SwimUpdate[] = []
  for (const u of theirs) {
    named.add(u.peer)
    const m = u.peer === members.self ? undefined : members.peek(u.peer)
    if (m != null && members.behind(u, m) && news.length < SYNC_UPDATES) news.push(members.updateOf(m))
  }
  for (const id of members.notAlive()) {
    if (news.length >= SYNC_UPDATES) break
    const m = members.get(id)!
    if (!named.has(id) && id !== from && members.agreed(m)) news.push(members.updateOf(m))
  }
  return news
}

/** A sync to send: to whom, and what it tells; an answer (`answer`) goes as a gossip. */
export interface Sync {
  to: string
  updates: SwimUpdate[]
  answer?: true
}

/** When to sync, and with whom. */
export class Syncs {
  readonly #members: SwimMembers
  readonly #targets: DetectionTargets
  readonly #c: DetectorConfig
  /** When the last periodic sync was due (at first, when the detector started). */
  #lastMs: number
  /**
   * Where the next periodic sync starts in the list of members not alive:
   * each sync names at most SYNC_UPDATES, and always the first ones left the
   * later deaths of a partition of more than that many members untold — a
   * node that had missed one held it alive for as long as the partition
   * lasted (the simulator: 60 nodes seed 3).
   */
  #from = 0

  constructor (members: SwimMembers, targets: DetectionTargets, config: DetectorConfig, nowMs: number) {
    this.#members = members
    this.#targets = targets
    this.#c = config
    this.#lastMs = nowMs
  }

  /**
   * On a probe's tick (their phase is random: no timer of its own), once a sync interval: one peer we talk to.
   * A sync that would tell nothing (no member dead or suspect by a quorum: a cluster with nobody down) waits
   * longer on a host shared by many agents (probe-timing.ts, `syncEveryMs`), where it only asks whether the peer
   * knows of a death we missed; one that tells something keeps the interval (a partition's deaths spread by them).
   */
  periodic (nowMs: number, live: number): Sync | undefined {
    if (nowMs < this.#lastMs + this.#c.syncIntervalMs) return undefined
    const updates = syncUpdates(this.#members, undefined, this.#from)
    if (updates.length === 0 && nowMs < this.#lastMs + syncEveryMs(this.#c, live)) return undefined
    this.#lastMs = nowMs
    const to = this.#targets.gossip(1)[0]
    if (to == null) return undefined
    this.#from += updates.length
    return { to, updates }
  }

  /** What a sync from `from` lacked (its updates applied already), if anything. */
  answer (from: string, theirs: readonly SwimUpdate[]): Sync | undefined {
    const updates = syncAnswer(this.#members, from, theirs)
    return updates.length > 0 ? { to: from, updates, answer: true } : undefined
  }

  /**
   * A suspicion past its deadline without a quorum: one of the member's
   * observers we have no accusation from; at most twice a sync interval.
   * Not for a suspicion on another's word alone (see syncUpdates); on our own
   * word only with the rings, when we observe the member, and then only to
   * its other observers: the observers of a member cut off by a partition
   * each accuse it, and with the rings they need not talk to each other —
   * the piggy-backed accusations ran out on peers across the cut, and each
   * held the member suspect on its own word, with nobody to tell, for as
   * long as the partition lasted (the simulator: 40 nodes seed 7, 60 nodes
   * seed 3). Another observer's accusation is what a quorum is made of.
   */
  about (m: Member, nowMs: number): Sync | undefined {
    const self = this.#members.self
    const agreed = this.#members.agreed(m)
    // Without a quorum, its observers (the rings'; none without them): we must be one, and only another may be asked.
    const observers = agreed ? undefined : this.#members.observersOf(m.id)
    if (!agreed && (observers == null || !observers.includes(self) || m.suspicion?.has(self) !== true)) return undefined
    if (m.syncedAtMs != null && nowMs - m.syncedAtMs < this.#c.syncIntervalMs / 2) return undefined
    m.syncedAtMs = nowMs
    const to = this.#targets.helpers(m.id, this.#c.indirectChecks).find(h => m.suspicion?.has(h) !== true && (observers == null || observers.includes(h)))
    return to != null ? { to, updates: syncUpdates(this.#members, m) } : undefined
  }
}
