/**
 * When an agent next asks a peer for the states it holds (agent/peer-exchange.ts,
 * anti-entropy): soon again after a sync that brought states it lacked — the
 * view is still filling (agents joining, a state that missed it while the
 * mesh formed), and each answer it merges is passed on by its own next
 * answers, so the news spreads peer to peer in a few rounds — otherwise after
 * the configured interval. Measured (README): 100 agents on one host took
 * 176 s after the last one answered until every agent saw every other, with
 * a sync every 30 s whatever it brought.
 */

/** The next sync after one that brought news. */
export const VIEW_SYNC_AGAIN_MS = 2_000

/** How long until the next sync, given how many states the last one brought; `everyMs` 0: never (only while joining). */
export function nextViewSyncMs (brought: number, everyMs: number): number | undefined {
  if (everyMs <= 0) return undefined
  return brought > 0 ? Math.min(VIEW_SYNC_AGAIN_MS, everyMs) : everyMs
}
