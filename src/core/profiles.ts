/**
 * The numbers of the three profiles that both the agents and the simulator
 * read: how an agent gossips its state (core/gossip-policy.ts), how long it
 * waits for a peer's answer, how long a reservation holds, how many
 * candidates placement samples. src/config.ts builds an agent's
 * configuration from them (where each field is documented with its reasons);
 * the simulator's `placement` scenario runs the `lan` and `wan` ones.
 */
import type { GossipConfig } from './gossip-policy.ts'

export type ProfileName = 'local' | 'lan' | 'wan'

/** The gossip policy of each profile. Each field's default and why: GossipConfig. */
export const PROFILE_GOSSIP: Readonly<Record<ProfileName, Readonly<GossipConfig>>> = Object.freeze({
  local: Object.freeze({ minPublishIntervalMs: 100, refreshIntervalMs: 5_000, refreshShare: 0.05, changeThreshold: 0.05, budgetPerSecond: 8, hostBudgetPerSecond: 320, burst: 4, meshDegree: 3 }),
  lan: Object.freeze({ minPublishIntervalMs: 200, refreshIntervalMs: 3_000, changeThreshold: 0.05, budgetPerSecond: 40, burst: 2, meshDegree: 6 }),
  wan: Object.freeze({ minPublishIntervalMs: 200, refreshIntervalMs: 5_000, changeThreshold: 0.05, budgetPerSecond: 40, burst: 2, meshDegree: 6 })
})

/** Timeout of one stream request (reserve, commit, migrate, rebalance) in each profile: AgentConfig.requestTimeoutMs. */
export const PROFILE_REQUEST_TIMEOUT_MS: Readonly<Record<ProfileName, number>> = Object.freeze({ local: 10_000, lan: 5_000, wan: 10_000 })

/** How long a reservation holds before it expires on its own: AgentConfig.leaseTtlMs. */
export const DEFAULT_LEASE_TTL_MS = 10_000

/** Candidates placement samples first (power of d choices): AgentConfig.placementSample. */
export const DEFAULT_PLACEMENT_SAMPLE = 2
