/**
 * When an agent next asks a peer for the states it holds (agent/peer-exchange.ts,
 * anti-entropy): soon again after a sync that brought states it lacked — the
 * view is still filling (agents joining, a state that missed it while the
 * mesh formed), and each answer it merges is passed on by its own next
 * answers, so the news spreads peer to peer in a few rounds — otherwise after
 * the configured interval. Measured (docs/many-agents.md): 100 agents on one host took
 * 176 s after the last one answered until every agent saw every other, with
 * a sync every 30 s whatever it brought; and sooner while the view grows.
 */

/** The next sync after one that brought news. */
export const VIEW_SYNC_AGAIN_MS = 2_000
/**
 * The next sync after one that brought nothing, while the view still grows
 * (a peer new to it within the interval: agents are joining). A state that
 * missed us while the cluster forms is otherwise waited for a whole
 * interval: measured, 100 agents took 100 s after the last one answered
 * until each saw every other, the last few waiting for the 30 s sync.
 */
export const VIEW_SYNC_GROWING_MS = 5_000
/**
 * How long after the view last gained a peer it counts as growing. Measured
 * with 30 s (the interval) before: once a `cluster up` of 100 was up, every
 * agent still synced every 5 s for half a minute, 20 syncs a second that
 * brought nothing, while the cluster's idle CPU was being sampled.
 */
export const VIEW_GROWTH_WINDOW_MS = 10_000

/**
 * How long until the next sync, given how many states the last one brought
 * and how long ago the view last gained a peer (within
 * `VIEW_GROWTH_WINDOW_MS`: growing); `everyMs` 0: never (only while joining).
 */
export function nextViewSyncMs (brought: number, everyMs: number, sinceGrowthMs = Infinity): number | undefined {
  if (everyMs <= 0) return undefined
  if (brought > 0) return Math.min(VIEW_SYNC_AGAIN_MS, everyMs)
  return sinceGrowthMs < Math.min(VIEW_GROWTH_WINDOW_MS, everyMs) ? Math.min(VIEW_SYNC_GROWING_MS, everyMs) : everyMs
}
