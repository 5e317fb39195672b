/**
 * One AgentConfig, resolved and validated once at start-up, then read-only.
 * Three profiles differ in a few timers, after memberlist's
 * DefaultLANConfig / DefaultWANConfig / DefaultLocalConfig:
 * - `local`: many agents on one machine (a cluster for trying, tests, benchmarks);
 * - `lan`:   one agent per machine in one data centre;
 * - `wan`:   edge sites tens of milliseconds apart.
 */
import type { GossipConfig } from './core/gossip-policy.ts'
import type { Resources } from './core/resources.ts'
import type { ViewConfig } from './core/cluster-view.ts'
import { DEFAULT_DEMAND, type DemandConfig } from './core/demand.ts'
import { DEFAULT_REBALANCE, type RebalanceConfig } from './core/rebalance.ts'
import { DEFAULT_MIGRATION, type MigrationConfig } from './core/migration-fsm.ts'
import { DEFAULT_REPLICA, type ReplicaConfig } from './core/replica-rule.ts'

export type Profile = 'local' | 'lan' | 'wan'
export type DriverName = 'sim'
export type { GossipConfig }

export interface ConnectionConfig {
  /**
   * How often libp2p's connection monitor pings each connection, closing the
   * ones that do not answer (a peer paused, or cut off without a TCP reset).
   * Each ping opens a stream, a fraction of a millisecond of CPU on both
   * ends, per connection: with 49 agents on one host, pings every 10 s cost
   * a sixth of the machine's idle CPU. Default 30 s (local: a killed agent's
   * connection resets at once), 10 s (lan/wan: libp2p's default).
   */
  pingIntervalMs: number
  /**
   * How long a ping may take before the connection is closed as dead. libp2p's
   * default, 5 s, is too short for agents sharing a saturated machine: 50
   * agents on two cores under load closed 200 healthy connections in a
   * minute, and every reconnection (a noise handshake, identify, gossipsub's
   * streams) loaded the machine further. Default 30 s (local), 10 s (lan),
   * 15 s (wan).
   */
  pingTimeoutMs: number
}

export interface AgentConfig {
  profile: Profile
  /** libp2p listen address. Default `/ip4/127.0.0.1/tcp/0`: loopback, any free port. */
  listen: string
  /** Peers to dial at start and re-dial when isolated. Default none (a first agent). */
  bootstrap: string[]
  /** HTTP API host and port. Default 127.0.0.1:7100; bound to loopback unless told otherwise. */
  apiHost: string
  apiPort: number
  /** Bearer token the API requires when set. Default none (loopback only). */
  apiToken?: string
  /** Durable state: identity key, VM records. Default `./.discovery/agent`. */
  dataDir: string
  /** What this node offers. Default 8 vCPU / 16 GiB with the sim driver. */
  capacity: Resources
  /** CPU over-commit ratio (≥ 1). Default 1: no over-commit unless the operator asks. Memory is never over-committed. */
  cpuOvercommit: number
  /** Node labels, e.g. zone=edge-paris. Default none. */
  labels: Record<string, string>
  driver: DriverName
  /** Sim driver: time from creating to running. Default 200 ms (local), 1 s otherwise. */
  bootDelayMs: number
  /** File holding a libp2p private-network key: only agents with the same key connect. Default none. */
  swarmKeyFile?: string
  gossip: GossipConfig
  connection: ConnectionConfig
  view: ViewConfig
  /** How long a reservation holds before it expires on its own. Default 10 s: a create that dies mid-way leaks nothing for long. */
  leaseTtlMs: number
  /**
   * Timeout of one stream request (reserve, commit, release, migrate, rebalance).
   * Default 10 s (local: 50 agents sharing two cores answer in seconds under
   * load; a killed peer resets its connections at once anyway), 5 s (lan),
   * 10 s (wan).
   */
  requestTimeoutMs: number
  /** Re-dial back-off: first and largest wait. Default 250 ms → 10 s, doubling. */
  redialMinMs: number
  redialMaxMs: number
  /** How often the agent ticks the view and expires leases. Default 250 ms. */
  tickIntervalMs: number
  /** How many candidates placement samples first (power of d choices). Default 2, as in Sparrow. */
  placementSample: number
  /**
   * Sim driver: each VM's CPU demand trace (after VMPlaceS: a Gaussian draw,
   * mean 0.6 of its vCPUs, on average every 300 s), or null for a fixed
   * `staticDemand`. Demand only overloads a node whose CPU is over-committed
   * (`cpuOvercommit` > 1): with the default 1, allocation caps it.
   */
  demand: DemandConfig | null
  /** Sim driver: the demand of every VM when the trace is off. Default 0.5. */
  staticDemand: number
  /** Seed of the sim driver's demand traces. Default 1. */
  seed: number
  /**
   * Seed of this agent's decisions (which candidates placement samples, the
   * refresh jitter). Default none: a fresh one each run, logged at start
   * (`rngSeed` in "agent started"), so that a run can be replayed with it.
   */
  rngSeed?: number
  /** How often the monitor checks for overload (and underload). Default 1 s. */
  monitorIntervalMs: number
  /** Cooperative rebalancing (DVMS): see core/rebalance.ts for each field. Consolidation is off by default. */
  rebalance: RebalanceConfig
  /** Live migration: see core/migration-fsm.ts for each field. */
  migration: MigrationConfig
  /** Replicated VM records and restart on a live peer: see core/replica-rule.ts for each field (the same in every profile). */
  replica: ReplicaConfig
}

const base = {
  listen: '/ip4/127.0.0.1/tcp/0',
  bootstrap: [] as string[],
  apiHost: '127.0.0.1',
  apiPort: 7100,
  dataDir: '.discovery/agent',
  capacity: { cpu: 8, memMiB: 16384 },
  cpuOvercommit: 1,
  labels: {} as Record<string, string>,
  driver: 'sim' as const,
  leaseTtlMs: 10_000,
  redialMinMs: 250,
  redialMaxMs: 10_000,
  tickIntervalMs: 250,
  placementSample: 2,
  demand: DEFAULT_DEMAND as DemandConfig | null,
  staticDemand: 0.5,
  seed: 1,
  monitorIntervalMs: 1_000
}

export function defaultLocalConfig (): AgentConfig {
  return {
    ...base,
    rebalance: { ...DEFAULT_REBALANCE },
    migration: { ...DEFAULT_MIGRATION },
    replica: { ...DEFAULT_REPLICA },
    profile: 'local',
    bootDelayMs: 200,
    requestTimeoutMs: 10_000,
    gossip: { minPublishIntervalMs: 100, refreshIntervalMs: 5_000, changeThreshold: 0.05, budgetPerSecond: 8, hostBudgetPerSecond: 160, burst: 4, meshDegree: 3 },
    connection: { pingIntervalMs: 30_000, pingTimeoutMs: 30_000 },
    // A connected peer counts as heard on every tick (libp2p's connection monitor closes a dead
    // connection, and then the peer is dead within 3 s). Silence only matters for peers we are not
    // connected to, whose refresh slows down as the cluster grows: hence the long silence timeouts.
    view: { suspectAfterMs: 30_000, deadAfterMs: 60_000, disconnectedDeadAfterMs: 3_000, forgetAfterMs: 300_000 }
  }
}

export function defaultLanConfig (): AgentConfig {
  return {
    ...base,
    rebalance: { ...DEFAULT_REBALANCE },
    migration: { ...DEFAULT_MIGRATION },
    replica: { ...DEFAULT_REPLICA },
    profile: 'lan',
    listen: '/ip4/0.0.0.0/tcp/4001',
    bootDelayMs: 1_000,
    requestTimeoutMs: 5_000,
    gossip: { minPublishIntervalMs: 200, refreshIntervalMs: 3_000, changeThreshold: 0.05, budgetPerSecond: 40, burst: 2, meshDegree: 6 },
    connection: { pingIntervalMs: 10_000, pingTimeoutMs: 10_000 },
    view: { suspectAfterMs: 30_000, deadAfterMs: 60_000, disconnectedDeadAfterMs: 5_000, forgetAfterMs: 3_600_000 }
  }
}

export function defaultWanConfig (): AgentConfig {
  return {
    ...base,
    rebalance: { ...DEFAULT_REBALANCE, partitionTimeoutMs: 120_000 },
    migration: { ...DEFAULT_MIGRATION, bandwidthMiBps: 125 },
    replica: { ...DEFAULT_REPLICA },
    profile: 'wan',
    listen: '/ip4/0.0.0.0/tcp/4001',
    bootDelayMs: 1_000,
    requestTimeoutMs: 10_000,
    gossip: { minPublishIntervalMs: 200, refreshIntervalMs: 5_000, changeThreshold: 0.05, budgetPerSecond: 40, burst: 2, meshDegree: 6 },
    connection: { pingIntervalMs: 10_000, pingTimeoutMs: 15_000 },
    view: { suspectAfterMs: 45_000, deadAfterMs: 90_000, disconnectedDeadAfterMs: 10_000, forgetAfterMs: 3_600_000 }
  }
}

export function profileConfig (profile: Profile): AgentConfig {
  return profile === 'local' ? defaultLocalConfig() : profile === 'lan' ? defaultLanConfig() : defaultWanConfig()
}
