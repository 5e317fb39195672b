/**
 * What a node does with one of its own VMs whose process is gone — found
 * gone when its agent starts (a VM of the sim driver always is: it dies with
 * the agent; a QEMU that died while the agent was down), or dead while the
 * agent runs (killed, crashed, shut down from inside): start it again in
 * place under `restartPolicy: always` (the default), or, under `never`,
 * report it lost and forget it, freeing its room.
 *
 * A VM that keeps dying is started again after growing pauses — at once the
 * first time, then 1 s, 2 s, 4 s… up to a minute — so that a guest in a
 * crash loop cannot take the host's CPU with QEMU start-ups; the count falls
 * back to zero once the VM has run for a minute. (A restart on another node,
 * after its node died, is the replicas' business, not this.)
 */
import type { RestartPolicy } from './messages.ts'

export interface LocalRestartConfig {
  /** Pause before the second restart in a row. Default 1 s. */
  firstDelayMs: number
  /** Longest pause. Default 60 s. */
  maxDelayMs: number
  /** A VM that ran this long before dying is no longer in a crash loop. Default 60 s. */
  stableAfterMs: number
}

export const DEFAULT_LOCAL_RESTART: LocalRestartConfig = Object.freeze({ firstDelayMs: 1_000, maxDelayMs: 60_000, stableAfterMs: 60_000 })

/** One VM's recent deaths: how many in a row, and when it was last started. */
export interface CrashHistory {
  crashes: number
  startedAtMs?: number
}

export type GoneDecision =
  | { action: 'restart', delayMs: number, history: CrashHistory }
  | { action: 'lost', reason: string }

/** What to do with a VM whose process is gone, at `nowMs`, given its policy and what came before. */
export function decideGone (policy: RestartPolicy | undefined, history: CrashHistory | undefined, nowMs: number, config: LocalRestartConfig = DEFAULT_LOCAL_RESTART): GoneDecision {
  if ((policy ?? 'always') === 'never') return { action: 'lost', reason: 'its restart policy is never' }
  const stable = history?.startedAtMs != null && nowMs - history.startedAtMs >= config.stableAfterMs
  const crashes = (stable ? 0 : history?.crashes ?? 0) + 1
  const delayMs = crashes === 1 ? 0 : Math.min(config.maxDelayMs, config.firstDelayMs * 2 ** (crashes - 2))
  return { action: 'restart', delayMs, history: { crashes } }
}

/** The history once the VM has been started again at `nowMs`. */
export function started (history: CrashHistory, nowMs: number): CrashHistory {
  return { crashes: history.crashes, startedAtMs: nowMs }
}
