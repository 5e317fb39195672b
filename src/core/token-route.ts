/**
 * Where a rebalancing token goes next (rebalance.ts). Without round trips:
 * the ring's next node, as DVMS does. With them (locality): the nearest
 * peer not visited in this turn, and the initiator (closing the turn) once
 * every peer was; when the peers left were never measured, or the turn has
 * visited `NEAR_HOPS` nodes, the token walks the ring from the initiator
 * past the nodes already visited, back to the initiator — so every node is
 * still visited once a turn, and the token stays small. The visited nodes
 * travel with the token (`near`).
 */
import { nearestPeer } from './locality.ts'
import type { EventToken } from './rebalance-messages.ts'
import type { Ring } from './ring.ts'

/** Nodes a token visits nearest-first in one turn before it walks the ring: what `near` may carry. */
export const NEAR_HOPS = 32

/** The measured round trip to a peer, ms; undefined when not measured. */
export type RttOf = (peerId: string) => number | undefined

/** The next node for `token` leaving `self`, and the token as sent; undefined when there is none (a ring of one). */
export function nextHop (token: EventToken, self: string, ring: Ring, rtt?: RttOf): { to: string, token: EventToken } | undefined {
  if (rtt != null) {
    const { to, near } = nearest(token, self, ring, rtt)
    if (to != null) return { to, token: { ...token, near } }
  }
  const next = ring.successor(self)
  return next == null ? undefined : { to: next, token }
}

function nearest (token: EventToken, self: string, ring: Ring, rtt: RttOf): { to: string | undefined, near: NonNullable<EventToken['near']> } {
  const prior = token.near ?? { visited: [token.initiator], walk: false }
  const seen = new Set(prior.visited)
  if (prior.walk) return { to: walkPast(ring, self, seen, token.initiator), near: prior }
  const visited = seen.has(self) ? prior.visited : [...prior.visited, self]
  seen.add(self)
  if (visited.length < NEAR_HOPS) {
    const to = nearestPeer(ring.ids(), seen, rtt)
    if (to != null) return { to, near: { visited, walk: false } }
    if (ring.ids().every(id => seen.has(id))) return { to: self === token.initiator ? undefined : token.initiator, near: { visited, walk: false } }
  }
  return { to: walkPast(ring, token.initiator, seen, token.initiator), near: { visited, walk: true } }
}

/** The first node after `from` on the ring that is not in `skip`, or `stop` if reached first. */
function walkPast (ring: Ring, from: string, skip: ReadonlySet<string>, stop: string): string | undefined {
  let cur = from
  for (let i = 0; i < ring.size; i++) {
    const next = ring.successor(cur)
    if (next == null) return undefined
    if (next === stop || !skip.has(next)) return next
    cur = next
  }
  return undefined
}
