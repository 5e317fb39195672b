/**
 * Locality: where a node is (its zone: the `zone` label, one site of an edge
 * deployment) and how far its peers are (round trips measured with libp2p's
 * ping protocol). Pure: the agent feeds the samples, placement and
 * rebalancing read the ranking.
 *
 * Why: at the edge a VM is placed where its users are, and a migration
 * between sites costs a WAN link's bandwidth and latency. DVMS's Vivaldi
 * variant, which grows rebalancing partitions among the nearest nodes, cut
 * the migrations between sites by 72 % (Pastor et al.). So placement asks
 * the requester's zone first, then the nearest zones; a partition grows
 * towards the nearest peer.
 */

/** The label that names a node's site. */
export const ZONE_LABEL = 'zone'

export function zoneOf (labels: Readonly<Record<string, string>> | undefined): string | undefined {
  const z = labels?.[ZONE_LABEL]
  return z != null && z !== '' ? z : undefined
}

/** Whether a migration between two nodes crosses sites: both have a zone, and they differ. */
export function isInterSite (from: Readonly<Record<string, string>> | undefined, to: Readonly<Record<string, string>> | undefined): boolean {
  const a = zoneOf(from)
  const b = zoneOf(to)
  return a != null && b != null && a !== b
}

/** Samples of one peer's round trip kept: enough to ride out a few slow ones. */
export const RTT_SAMPLES = 8

/**
 * A peer's round trip from its recent samples: the least of them. A sample
 * is the path's delay plus whatever queueing and scheduling it met (agents
 * sharing a busy machine answer late); the least of a few is the path's.
 */
export function addRttSample (samples: readonly number[], ms: number, keep = RTT_SAMPLES): number[] {
  if (!Number.isFinite(ms) || ms < 0) return [...samples]
  return [...samples, ms].slice(-keep)
}

export function rttOf (samples: readonly number[]): number | undefined {
  return samples.length > 0 ? Math.min(...samples) : undefined
}

export interface Locality {
  /** The requester's zone: asked first. */
  zone?: string
  /** The measured round trip to a peer, ms; undefined when not measured. */
  rttMs: (peerId: string) => number | undefined
}

/** Something placed in a zone: a candidate, a node. */
export interface Located {
  peerId: string
  zone?: string
}

/**
 * Items grouped by distance from the requester: its own zone first, then
 * each other zone, nearest first (a zone is as near as the nearest of its
 * nodes measured; nodes with no zone count as one zone), then together every
 * zone none of whose nodes was measured. Within a group, the input's order.
 */
export function groupByDistance<T extends Located> (items: readonly T[], loc: Locality): T[][] {
  const own: T[] = []
  const zones = new Map<string, { items: T[], distance: number }>()
  for (const item of items) {
    if (loc.zone != null && item.zone === loc.zone) {
      own.push(item)
      continue
    }
    const key = item.zone ?? ''
    let z = zones.get(key)
    if (z == null) {
      z = { items: [], distance: Number.POSITIVE_INFINITY }
      zones.set(key, z)
    }
    z.items.push(item)
    const rtt = loc.rttMs(item.peerId)
    if (rtt != null && rtt < z.distance) z.distance = rtt
  }
  const measured = [...zones.entries()].filter(([, z]) => Number.isFinite(z.distance))
  measured.sort(([a, x], [b, y]) => x.distance - y.distance || (a < b ? -1 : a > b ? 1 : 0))
  const unmeasured = [...zones.values()].filter(z => !Number.isFinite(z.distance)).flatMap(z => z.items)
  return [own, ...measured.map(([, z]) => z.items), unmeasured].filter(g => g.length > 0)
}

/**
 * The nearest peer to pass a rebalancing token to: the one with the least
 * measured round trip, among `peers` not in `exclude`; ties by id. Undefined
 * when none of them was measured.
 */
export function nearestPeer (peers: Iterable<string>, exclude: ReadonlySet<string>, rttMs: (peerId: string) => number | undefined): string | undefined {
  let best: string | undefined
  let bestMs = Number.POSITIVE_INFINITY
  for (const p of peers) {
    if (exclude.has(p)) continue
    const ms = rttMs(p)
    if (ms == null) continue
    if (ms < bestMs || (ms === bestMs && best != null && p < best)) {
      best = p
      bestMs = ms
    }
  }
  return best
}
