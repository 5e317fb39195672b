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
import { DETECTOR_PROFILES, type DetectorConfig } from './core/detector-config.ts'
import { DEFAULT_DEMAND, type DemandConfig } from './core/demand.ts'
import { DEFAULT_REBALANCE, type RebalanceConfig } from './core/rebalance.ts'
import { DEFAULT_MIGRATION, type MigrationConfig } from './core/migration-fsm.ts'
import { DEFAULT_REPLICA, type ReplicaConfig } from './core/replica-rule.ts'
import { DEFAULT_PEER_LEASE_BOUND, type PeerLeaseBound } from './core/ledger.ts'
import { DEFAULT_LEASE_TTL_MS, DEFAULT_PLACEMENT_SAMPLE, PROFILE_GOSSIP, PROFILE_REQUEST_TIMEOUT_MS, type ProfileName } from './core/profiles.ts'

export type Profile = ProfileName
export type DriverName = 'sim' | 'qemu'
export type { GossipConfig }

export interface ConnectionConfig {
  /**
   * How often libp2p's connection monitor pings each connection, closing the
   * ones that do not answer (a peer paused, or cut off without a TCP reset).
   * Whether a peer is alive is the failure detector's to say; this only reaps
   * connections to peers gone for good. Each ping opens a stream, 2–3 ms of
   * CPU for both ends together (`npm run bench -- probe-cost`), per
   * connection — and with the detector's full mesh (`observers` null)
   * 1,225 connections at 50 agents on one host, 80 pings a second at 30 s, a
   * fifth of a core (a few hundred connections with the local bound). Default 120 s (local), 10 s (lan/wan: libp2p's default, one
   * agent per machine).
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
  /**
   * A bounded fan-out (core/fanout.ts): beyond this many connections the
   * agent closes idle ones (saying bye first, net/farewell.ts); requests to a
   * peer it is not connected to dial it, and that connection is closed in
   * turn once idle. Each connection costs a noise session, a yamux muxer,
   * gossipsub's streams and heartbeat work, and pings: with every agent
   * connected to every other, a hundred agents on one host hold 9,900
   * connections. Gossip still reaches everyone through gossipsub's mesh.
   * A connection carrying the failure detector's stream is never idle, so
   * the bound holds only with the detector's monitoring topology
   * (`detector.observers`: each agent talks to about 2 × observers peers for
   * detection). Default 10 (local: the 8 or so detection peers of
   * `observers` 4, plus two kept for requests; a hundred agents on one host
   * hold about 1,000 connections instead of 9,900), unbounded (lan, wan:
   * one agent per machine; their detector probes every peer).
   */
  maxConnections: number
  /**
   * Connections the agent opens on its own to peers it knows, so that a first
   * request does not pay for the handshake. Default 4 (local: well under
   * `maxConnections`, so that the agents dialled by others do not close
   * connections as fast as new ones open; the detection peers are most of
   * an agent's connections anyway), 32 (lan, wan).
   */
  warmConnections: number
  /**
   * How often the agent asks one connected peer, at random, for the states it
   * holds newer than ours (net/view-sync.ts): a state published while the
   * mesh formed may have missed us. 0: only when the agent joins (its first
   * minute). Default 30 s (local, where the fan-out is bounded), 0 (lan, wan).
   */
  viewSyncEveryMs: number
  /**
   * Gossipsub's heartbeat (mesh upkeep, and IHAVE to peers outside the mesh):
   * a wake-up and some messages a second per agent, whatever happens.
   * Default 2 s (local: a hundred idle agents on one host), 1 s (lan, wan:
   * gossipsub's).
   */
  gossipHeartbeatMs: number
  /**
   * Peers outside the mesh told at each heartbeat which messages we have
   * seen (IHAVE), so that one that missed a message can ask for it. On one
   * host, where connections do not lose messages, flood publishing and the
   * mesh deliver them, and the view sync catches up what a forming mesh
   * missed. Default 1 (local), the mesh degree (lan, wan: gossipsub's).
   */
  gossipLazyPeers: number
}

/** Whether the fan-out is bounded (`maxConnections` finite: the `local` profile): most peers are then not connected. */
export function boundedFanout (c: ConnectionConfig): boolean {
  return Number.isFinite(c.maxConnections)
}

/** The qemu driver's settings (`--driver qemu`); the migration's limits are in `migration`. */
export interface QemuConfig {
  /**
   * `auto` (default): KVM when it works here, tried once with a throw-away
   * VM, TCG otherwise — `/dev/kvm` existing proves nothing (on our build
   * machines it opens and the guest hangs). `kvm` or `tcg` force one; both
   * ends of a migration must use the same.
   */
  accel: 'auto' | 'kvm' | 'tcg'
  /** Default `qemu-system-x86_64`, found on PATH (Debian: `qemu-system-x86`). */
  binary: string
  /** Default `qemu-img` (Debian: `qemu-utils`): makes each disk's qcow2 overlay on its base image. */
  imgBinary: string
  /**
   * Where the base images a VM's `image` names live. Default
   * `<dataDir>/images`: next to the VMs that use them, so one data dir is
   * one node's whole state.
   */
  imagesDir?: string
  /**
   * Address an incoming migration listens on (QEMU's `migrate-incoming`,
   * on a port the system picks). Default: the address `--listen` names —
   * 127.0.0.1 on loopback; for 0.0.0.0, every address, advertised as the
   * first non-loopback address libp2p listens on — so that a migration
   * goes where the agents' own traffic goes.
   */
  migrationHost?: string
  /** The address the source is told to connect to, when it is not `migrationHost` (NAT, 0.0.0.0). Default: as above. */
  migrationAdvertiseHost?: string
}

/** Placement and rebalancing by locality (zones, measured round trips). */
export interface LocalityConfig {
  /**
   * Prefer this node's zone (its `zone` label), then the nearest zones by
   * measured round trip, when placing a VM and when growing a rebalancing
   * partition. Default on; it changes nothing for a node with no `zone`
   * label (placement) or no measured round trips (rebalancing). Off: the
   * behaviour before locality, for comparisons.
   */
  enabled: boolean
  /**
   * How often each connected peer is pinged (libp2p's ping protocol) when
   * libp2p's connection monitor has not measured it since. Default 30 s (lan,
   * wan): a round trip between sites changes with routes, not by the second;
   * 150 s (local: every agent on one host, where a ping is a stream of CPU
   * and no news — the monitor's own pings, every 120 s there, are the
   * samples). A new peer is pinged at once, whatever the profile.
   */
  pingIntervalMs: number
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
  /**
   * Bearer token the API requires when set (`--api-token-file`, `$DISCOVERY_API_TOKEN`
   * or `--api-token`). Default none (loopback only).
   */
  apiToken?: string
  /**
   * Serve the admin routes (`/v1/admin/partition`, `/v1/admin/heal`): cut this
   * agent off given peers, for tests and chaos. Default off: they can isolate
   * the agent. Refused without an API token.
   */
  admin: boolean
  /**
   * Listen beyond loopback with no swarm key. Default false: without a key,
   * any process that reaches the libp2p port is a peer and may reserve,
   * commit and delete VMs, whatever the API token; so an agent that listens
   * on anything but loopback refuses to start without `--swarm-key` unless
   * the operator says `--open-swarm`.
   */
  openSwarm: boolean
  /**
   * Find peers by multicast DNS (`@libp2p/mdns`) on the local network segment,
   * and dial them. Default off: it announces the agent to the whole segment,
   * and the bootstrap list is what a fleet across sites needs anyway.
   */
  mdns: boolean
  /** What one peer may hold in reservations on this node (core/ledger.ts, `PeerLeaseBound`: each default with its reason). */
  peerLeases: PeerLeaseBound
  /** Durable state: identity key, VM records. Default `./.discovery/agent`. */
  dataDir: string
  /**
   * What this node offers. Default 8 vCPU / 16 GiB with the sim driver; with
   * the qemu driver, the host's CPUs and its memory less 1 GiB for itself
   * (QEMU allocates what it is given: memory offered beyond the host's ends
   * with the kernel killing a VM).
   */
  capacity: Resources
  /** CPU over-commit ratio (≥ 1). Default 1: no over-commit unless the operator asks. Memory is never over-committed. */
  cpuOvercommit: number
  /** Node labels, e.g. zone=edge-paris. Default none. */
  labels: Record<string, string>
  /**
   * The hypervisor: `sim` (default: a model of boot, CPU demand and pre-copy
   * migration, nothing runs) or `qemu` (a QEMU process per VM that outlives
   * the agent; see `qemu`).
   */
  driver: DriverName
  qemu: QemuConfig
  locality: LocalityConfig
  /** Sim driver: time from creating to running. Default 200 ms (local), 1 s otherwise. */
  bootDelayMs: number
  /** File holding a libp2p private-network key: only agents with the same key connect. Default none. */
  swarmKeyFile?: string
  gossip: GossipConfig
  connection: ConnectionConfig
  /**
   * The failure detector (SWIM with Lifeguard, core/failure-detector.ts), which
   * alone decides whether a peer is alive, suspect or dead. Each field is
   * documented with its default per profile and why in
   * core/detector-config.ts (the simulator reads the same profiles). In short:
   * - local (agents sharing 2 cores): a probe every 200 ms up to 20 agents,
   *   then the host's 100 probes a second shared (500 ms at 50), 150 ms to
   *   answer, 3 helpers, suspicion 3 × log10(n) intervals (about 2.5 s at
   *   50) up to 6 ×, each update sent 4 × log10(n + 1) times, health
   *   stretching timeouts up to 8 ×; a stopped or killed agent, seen so by
   *   the process watch, is probed at once and suspected for one interval;
   * - lan: 500 ms / 250 ms, suspicion ×4 (3.4 s at 50 agents);
   * - wan (25–40 ms RTT): 1 s / 600 ms, suspicion ×5 (8.5 s at 50 agents).
   * Death needs 3 accusers we believe alive (after Rapid), so one agent with
   * a one-way fault cannot make the membership flap. In local, each agent
   * probes only the 4 or so peers Rapid's rings give it (`observers`), and
   * only their accusations of it count.
   */
  detector: DetectorConfig
  /** The view: how long a dead peer stays listed (core/cluster-view.ts). Default 5 min (local), 1 h (lan/wan). */
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
  /**
   * How often the agent ticks the view, expires leases and samples its gauges.
   * Default 1 s (local: every tick of every agent is a wake-up of the host,
   * and a lease of 10 s or a peer dead 3 s after its connection closed need
   * no finer step), 250 ms (lan, wan).
   */
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
  driver: 'sim' as DriverName,
  qemu: { accel: 'auto', binary: 'qemu-system-x86_64', imgBinary: 'qemu-img' } as QemuConfig,
  locality: { enabled: true, pingIntervalMs: 30_000 } as LocalityConfig,
  admin: false,
  openSwarm: false,
  mdns: false,
  peerLeases: { ...DEFAULT_PEER_LEASE_BOUND },
  leaseTtlMs: DEFAULT_LEASE_TTL_MS,
  redialMinMs: 250,
  redialMaxMs: 10_000,
  tickIntervalMs: 250,
  placementSample: DEFAULT_PLACEMENT_SAMPLE,
  demand: DEFAULT_DEMAND as DemandConfig | null,
  staticDemand: 0.5,
  seed: 1,
  monitorIntervalMs: 1_000
}

export function defaultLocalConfig (): AgentConfig {
  return {
    ...base,
    qemu: { ...base.qemu },
    rebalance: { ...DEFAULT_REBALANCE },
    migration: { ...DEFAULT_MIGRATION },
    replica: { ...DEFAULT_REPLICA },
    locality: { ...base.locality, pingIntervalMs: 150_000 },
    profile: 'local',
    tickIntervalMs: 1_000,
    bootDelayMs: 200,
    requestTimeoutMs: PROFILE_REQUEST_TIMEOUT_MS.local,
    gossip: { ...PROFILE_GOSSIP.local },
    connection: { pingIntervalMs: 120_000, pingTimeoutMs: 30_000, maxConnections: 10, warmConnections: 4, viewSyncEveryMs: 30_000, gossipHeartbeatMs: 2_000, gossipLazyPeers: 1 },
    detector: { ...DETECTOR_PROFILES.local },
    view: { forgetAfterMs: 300_000 }
  }
}

export function defaultLanConfig (): AgentConfig {
  return {
    ...base,
    qemu: { ...base.qemu },
    locality: { ...base.locality },
    rebalance: { ...DEFAULT_REBALANCE },
    migration: { ...DEFAULT_MIGRATION },
    replica: { ...DEFAULT_REPLICA },
    profile: 'lan',
    listen: '/ip4/0.0.0.0/tcp/4001',
    bootDelayMs: 1_000,
    requestTimeoutMs: PROFILE_REQUEST_TIMEOUT_MS.lan,
    gossip: { ...PROFILE_GOSSIP.lan },
    connection: { pingIntervalMs: 10_000, pingTimeoutMs: 10_000, maxConnections: Infinity, warmConnections: 32, viewSyncEveryMs: 0, gossipHeartbeatMs: 1_000, gossipLazyPeers: PROFILE_GOSSIP.lan.meshDegree },
    detector: { ...DETECTOR_PROFILES.lan },
    view: { forgetAfterMs: 3_600_000 }
  }
}

export function defaultWanConfig (): AgentConfig {
  return {
    ...base,
    qemu: { ...base.qemu },
    locality: { ...base.locality },
    rebalance: { ...DEFAULT_REBALANCE, partitionTimeoutMs: 120_000 },
    migration: { ...DEFAULT_MIGRATION, bandwidthMiBps: 125 },
    replica: { ...DEFAULT_REPLICA },
    profile: 'wan',
    listen: '/ip4/0.0.0.0/tcp/4001',
    bootDelayMs: 1_000,
    requestTimeoutMs: PROFILE_REQUEST_TIMEOUT_MS.wan,
    gossip: { ...PROFILE_GOSSIP.wan },
    connection: { pingIntervalMs: 10_000, pingTimeoutMs: 15_000, maxConnections: Infinity, warmConnections: 32, viewSyncEveryMs: 0, gossipHeartbeatMs: 1_000, gossipLazyPeers: PROFILE_GOSSIP.wan.meshDegree },
    detector: { ...DETECTOR_PROFILES.wan },
    view: { forgetAfterMs: 3_600_000 }
  }
}

export function profileConfig (profile: Profile): AgentConfig {
  return profile === 'local' ? defaultLocalConfig() : profile === 'lan' ? defaultLanConfig() : defaultWanConfig()
}
