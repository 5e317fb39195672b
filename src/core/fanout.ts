/**
 * A bounded fan-out: which peers an agent keeps connections to when it may
 * not connect to all of them (the `local` profile: a hundred agents on one
 * host, each with a noise session, a yamux muxer, gossipsub's streams and
 * libp2p's pings per connection). Two rules, like libp2p's old low and high
 * water marks:
 * - below `warm` connections, dial more, in an order of its own per pair of
 *   peers (`pairRank`): every agent ranks its peers differently, so that the
 *   connections spread over the cluster instead of all going to the first
 *   agents everybody learnt of;
 * - above `max`, close connections that are idle (no request under way),
 *   open long enough to have done their first work, the peers outside our
 *   gossipsub mesh first, then those that dialled us, then the worst ranked.
 * Gossip still reaches every agent through the mesh; a request to a peer we
 * are not connected to dials it, and the connection is closed once idle.
 */
import { spreadHash } from './hash.ts'


/** The rank of the pair (a, b), the same seen from either side: lower is preferred. */
export function pairRank (a: string, b: string): number {
  return a < b ? spreadHash(`${a}|${b}`) : spreadHash(`${b}|${a}`)
}

/** Peers to dial, best ranked first: those not connected, not being dialled and not `avoid`ed, at most `budget`. */
export function pickDials (self: string, candidates: Iterable<string>, skip: (peer: string) => boolean, budget: number): string[] {
  if (budget <= 0) return []
  const ranked: Array<{ peer: string, rank: number }> = []
  const seen = new Set<string>()
  for (const peer of candidates) {
    if (peer === self || seen.has(peer) || skip(peer)) continue
    seen.add(peer)
    ranked.push({ peer, rank: pairRank(self, peer) })
  }
  ranked.sort((x, y) => x.rank - y.rank)
  return ranked.slice(0, budget).map(r => r.peer)
}

export interface OpenConnection {
  peer: string
  /** No request of ours under way on it (only gossipsub's and libp2p's own streams). */
  idle: boolean
  /** The peer is in our gossipsub mesh: closing it makes gossipsub graft another. */
  inMesh: boolean
  /** It dialled us. */
  inbound: boolean
  /** How long it has been open. */
  ageMs: number
}

/**
 * Peers whose connections to close so that `max` remain, among the idle ones
 * open for at least `minAgeMs`: outside the mesh first, then inbound ones,
 * then the worst ranked. Fewer (or none) when not enough are idle.
 */
export function pickCloses (self: string, open: readonly OpenConnection[], max: number, minAgeMs: number): string[] {
  const peers = new Map<string, OpenConnection>()
  for (const c of open) {
    const known = peers.get(c.peer)
    // Two connections to one peer count once, and the peer is busy if either is.
    peers.set(c.peer, known == null ? { ...c } : { ...known, idle: known.idle && c.idle, ageMs: Math.min(known.ageMs, c.ageMs) })
  }
  const excess = peers.size - max
  if (excess <= 0) return []
  return [...peers.values()]
    .filter(c => c.idle && c.ageMs >= minAgeMs)
    .sort((x, y) => Number(x.inMesh) - Number(y.inMesh) || Number(y.inbound) - Number(x.inbound) || pairRank(self, y.peer) - pairRank(self, x.peer))
    .slice(0, excess)
    .map(c => c.peer)
}
