/**
 * The agent's dialling, made from its config (net/redialer.ts does the
 * work): its bootstrap peers until one is reached, a few connections kept
 * warm, and with a bounded fan-out (`--max-connections`) the idle ones
 * beyond the bound closed with a bye. What it tells the operator: a warning
 * while no bootstrap peer has been reached.
 */
import type { Libp2p } from '@libp2p/interface'
import type { Logger } from 'pino'
import { type AgentConfig, boundedFanout } from '../config.ts'
import type { Clock } from '../core/clock.ts'
import { type Farewell, Redialer, STATE_TOPIC, StreamActivity } from '../net/index.ts'

export interface RedialerSetup {
  config: AgentConfig
  libp2p: Libp2p
  clock: Clock
  log: Logger
  farewell: Farewell
  /** Addresses of the peers in the agent's view. */
  known: () => readonly string[]
  /** Peers whose connections are kept (the replica ring's neighbours). */
  keep: () => readonly string[]
}

export function createRedialer ({ config, libp2p, clock, log, farewell, known, keep }: RedialerSetup): Redialer {
  return new Redialer({
    libp2p,
    clock,
    bootstrap: config.bootstrap,
    known,
    minConnections: Math.min(4, Math.max(1, config.bootstrap.length)),
    minMs: config.redialMinMs,
    maxMs: config.redialMaxMs,
    checkEveryMs: 1_000,
    onDialError: (addr, err) => { log.debug({ component: 'discovery:dial', addr, err: err.message }, 'dial failed') },
    // Alone, an agent places VMs only on itself: say so at once, and every minute while it lasts (the dials go on).
    onBootstrapUnreached: (r) => {
      log.warn({ component: 'discovery:dial', bootstrap: r.addrs, failures: r.failures, forS: Math.round(r.forMs / 1000), lastAddr: r.lastAddr, lastError: r.lastError, connections: r.connections },
        `no bootstrap peer reached yet (${r.failures} failed dials to ${r.addrs}); still trying`)
    },
    onBootstrapReached: (addr) => { log.info({ component: 'discovery:dial', addr }, 'bootstrap peer reached') },
    warmConnections: config.connection.warmConnections,
    ...(boundedFanout(config.connection)
      ? {
          maxConnections: config.connection.maxConnections,
          close: async (peerId) => { await farewell.close(peerId) },
          lastActivity: StreamActivity.installed(libp2p, () => clock.now()).lastMs,
          inMesh: (peerId) => (libp2p as any).services.pubsub.mesh?.get(STATE_TOPIC)?.has(peerId) === true,
          // A peer that closed a connection with us has enough of them: warm others for a minute.
          avoid: (peerId) => farewell.saidBye(peerId, 60_000),
          keep
        }
      : {})
  })
}
