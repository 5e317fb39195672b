/**
 * The flags of one agent, defined once: `discovery agent` takes them on its
 * command line, and `discovery agents` (several agents in one process,
 * agent-group.ts) parses each agent's own list with the same definition.
 */
import { Command } from 'commander'
import type { AgentFlags } from './agent-command.ts'
import { UsageError } from './errors.ts'

const collect = (value: string, prev: string[] = []): string[] => [...prev, value]

/** Adds every agent flag to `cmd`. */
export function agentOptions (cmd: Command): Command {
  return cmd
  .option('--listen <multiaddr>', 'libp2p listen address (default /ip4/127.0.0.1/tcp/0)')
  .option('--bootstrap <multiaddr...>', 'peers to join (repeat, or comma-separate)')
  .option('--api <host:port>', 'HTTP API address (default 127.0.0.1:7100)')
  .option('--data-dir <dir>', 'durable state: identity, VM records (default ./.discovery/agent)')
  .option('--cpu <n>', 'vCPUs this node offers (default 8)')
  .option('--mem <size>', 'memory this node offers, e.g. 16GiB (default 16GiB)')
  .option('--labels <k=v,...>', 'node labels, e.g. zone=paris,rack=r1', collect)
  .option('--driver <name>', 'hypervisor driver: sim (default) or qemu (a QEMU process per VM, outliving the agent)')
  .option('--qemu-accel <accel>', 'qemu driver: auto (default: KVM when it works here, TCG otherwise), kvm or tcg')
  .option('--qemu-binary <path>', 'qemu driver: the QEMU to run (default qemu-system-x86_64)')
  .option('--images-dir <dir>', 'qemu driver: where the base images a VM\'s --image names live (default DATA_DIR/images)')
  .option('--migration-host <host>', 'qemu driver: address incoming migrations listen on (default: the --listen address)')
  .option('--migration-advertise <host>', 'qemu driver: address sources are told to send migrations to (default: the migration host, or the first non-loopback address)')
  .option('--migration-deadline <duration>', 'a live migration not converged after this long is cancelled, with the reason (default 5m)')
  .option('--max-downtime <duration>', 'longest pause of a VM at a live migration\'s switch-over (default 30ms)')
  .option('--locality <on|off>', 'prefer this node\'s zone, then the nearest ones, to place VMs and grow rebalancing partitions (default on)')
  .option('--swarm-key <file>', 'private-network key (discovery keygen): only agents with the same key connect; it is what guards the cluster')
  .option('--open-swarm', 'allow listening beyond loopback with no swarm key: any process that reaches the port joins')
  .option('--api-token-file <file>', 'file holding the bearer token the API requires (or $DISCOVERY_API_TOKEN)')
  .option('--api-token <token>', 'bearer token the API requires (visible in the process list: prefer --api-token-file)')
  .option('--admin', 'serve the admin routes (partitions, for tests and chaos); needs an API token')
  .option('--mdns', 'find peers on the local network segment by multicast DNS (default off)')
  .option('--peer-lease-limit <n>', 'reservations one peer may hold on this node at once (default 64)')
  .option('--peer-lease-share <f>', 'share of this node one peer\'s reservations may cover, 0.01 to 1 (default 0.5)')
  .option('--profile <name>', 'timer profile: local (default), lan or wan')
  .option('--cpu-overcommit <ratio>', 'CPU over-commit ratio, ≥ 1 (default 1)')
  .option('--boot-delay <duration>', 'sim driver: time from creating to running (default 200ms)')
  .option('--demand <model>', 'sim driver: VM CPU demand, `trace` (VMPlaceS-like, default) or a fixed fraction like 0.5')
  .option('--seed <n>', 'sim driver: seed of the demand traces (default 1)')
  .option('--rng-seed <n>', 'seed of this agent\'s decisions (placement sampling, refresh jitter); default a fresh one, logged at start to replay a run')
  .option('--migration-bandwidth <MiB/s>', 'live-migration bandwidth: what the sim driver models, what the qemu driver allows a migration (default 1250, wan 125)')
  .option('--consolidate', 'rebalancing: also evacuate nearly empty nodes when others can take their VMs')
  .option('--monitor-interval <duration>', 'rebalancing: how often the node checks for overload (default 1s)')
  .option('--max-connections <n|none>', 'close idle connections beyond N, dial peers on demand (default 10 in the local profile, none in lan and wan)')
  .option('--process-check <ms|none>', 'failure detection: how often to ask the kernel whether the processes of observed peers on this host are stopped or gone (default 250; none: off)')
  .option('--observers <k|none>', 'failure detection: each agent observed by about K peers on K rings, so it talks to about 2K (default 4 in the local profile; none: every agent probes every other)')
  .option('--replicas <k>', 'how many peers after this one on the ring hold each of its VMs\' records (default 2)')
  .option('--restart-quorum', 'restart a dead owner\'s VM only when a majority of its replica set confirms the death (a minority side of a partition restarts nothing)')
  .option('--log-level <level>', 'trace, debug, info, warn, error (default info, or $DISCOVERY_LOG)')
  .option('--json', 'print the ready line as JSON')
}

/** One agent's flags from its argument list (`['--listen', …]`, without `agent`), as `discovery agent` would take them. */
export function parseAgentArgv (argv: string[]): AgentFlags {
  const cmd = agentOptions(new Command('agent')).exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} }).allowExcessArguments(false)
  try {
    cmd.parse(argv, { from: 'user' })
  } catch (err: any) {
    throw new UsageError(`an agent's flags in the spec do not parse: ${String(err.message).replace(/^error: /, '')}`)
  }
  return cmd.opts() as AgentFlags
}
