/**
 * Whom the failure detector sends to: the next peer to probe in turn, the
 * helpers of an indirect probe, the peers an urgent update is pushed to.
 * Without a monitoring topology, SWIM's way: every member in a shuffled
 * round-robin (probe-order.ts), random helpers, random gossip targets. With
 * one (swim-members.ts, monitor-rings.ts), only peers this member talks to
 * anyway: its subjects in turn (and, among them, the dead members it would
 * observe if they were alive, pinged so that they refute); as helpers, the
 * other observers of the target (they probe it, so they are connected to
 * it), then our own detection peers if too few; gossip to our subjects and
 * observers. So an agent's detection connections stay at about 2k peers.
 */
import type { ProbeOrder } from './probe-order.ts'
import type { Rng } from './rng.ts'
import type { MemberStatus } from './swim-messages.ts'
import type { SwimMembers } from './swim-members.ts'

/** Up to `k` of `list` at random (a partial Fisher–Yates on a copy). */
export function sampleFrom (list: readonly string[], k: number, rng: Rng): string[] {
  const rest = [...list]
  const out: string[] = []
  while (out.length < k && rest.length > 0) {
    const i = Math.floor(rng.next() * rest.length)
    out.push(rest[i])
    rest[i] = rest[rest.length - 1]
    rest.pop()
  }
  return out
}

export class DetectionTargets {
  readonly #members: SwimMembers
  readonly #order: ProbeOrder
  readonly #rng: Rng
  /** The cursor over our subjects (with the topology). */
  #turn = 0

  constructor (members: SwimMembers, order: ProbeOrder, rng: Rng) {
    this.#members = members
    this.#order = order
    this.#rng = rng
  }

  /**
   * The members to consider for this period's probe, in order: the first
   * one not dead is probed, dead ones on the way are pinged to revive.
   * Without the topology, the round-robin's next ones; with it, our subjects
   * and the dead we would observe, in turn.
   */
  * turn (eligible: (id: string) => boolean): Generator<string> {
    const walk = this.#members.walk()
    if (walk == null) {
      for (let i = 0; i < this.#order.size; i++) {
        const next = this.#order.next(eligible)
        if (next == null) return
        yield next
      }
      return
    }
    const list = [...walk.subjects, ...walk.passed]
    for (let i = 0; i < list.length; i++) {
      const id = list[this.#turn++ % list.length]
      if (eligible(id)) yield id
    }
  }

  /** The members we observe (every member without the topology), and the dead ones we would observe. */
  watched (): string[] {
    const walk = this.#members.walk()
    return walk != null ? [...walk.subjects, ...walk.passed] : [...this.#members.values()].map(m => m.id)
  }

  /** Up to `k` peers to ask to probe `target` for us. */
  helpers (target: string, k: number): string[] {
    const ok = (id: string): boolean => id !== target && id !== this.#members.self && this.#members.status(id) === 'alive'
    const observers = this.#members.observersOf(target)
    if (observers == null) return this.#order.sample(k, ok)
    const picked = sampleFrom(observers.filter(ok), k, this.#rng)
    if (picked.length < k) picked.push(...sampleFrom((this.#members.peers() ?? []).filter(id => ok(id) && !picked.includes(id)), k - picked.length, this.#rng))
    return picked
  }

  /** Whether to probe a member we just heard accused: with probability `verifyProbes` / its observers (with the topology: if we are one). */
  verifies (peer: string, status: MemberStatus, verifyProbes: number): boolean {
    if (this.#members.topology) return this.#members.observes(peer)
    const others = Math.max(1, this.#members.aliveCount - (status === 'alive' ? 1 : 0))
    return this.#rng.next() < verifyProbes / others
  }

  /** Up to `k` peers to push urgent updates to. */
  gossip (k: number): string[] {
    const notDead = (id: string): boolean => { const s = this.#members.status(id); return s != null && s !== 'dead' }
    const peers = this.#members.peers()
    return peers == null ? this.#order.sample(k, notDead) : sampleFrom(peers.filter(notDead), k, this.#rng)
  }
}
