/**
 * libp2p's logger while its debug output is off. libp2p writes its own logs
 * only for the namespaces `DEBUG` names (the `debug` convention); off, each
 * of its loggers still costs: @libp2p/logger builds three `debug` instances
 * per logger, and yamux makes a logger for every stream (`newScope`), so
 * every probe, placement and sync stream paid for three. The 61st agent
 * joining 60 spent 5.4 % of its CPU creating loggers (`--cpu-prof`, its first
 * 20 s, 2026-12-01). With `DEBUG` set (non-empty), libp2p's own logger is
 * used, and its output is as libp2p documents.
 */
import type { ComponentLogger, Logger } from '@libp2p/interface'

const noop = (): void => {}
const quiet: Logger = Object.assign((): void => {}, { error: noop, trace: noop, enabled: false, newScope: (): Logger => quiet })

/** Every component's logger: one that writes nothing, whose scopes are itself. */
export const quietLogger: ComponentLogger = { forComponent: () => quiet }

/** The logger to give libp2p: none (its own) when `DEBUG` names something, else the quiet one. */
export function libp2pLogger (env: NodeJS.ProcessEnv = process.env): ComponentLogger | undefined {
  return env.DEBUG != null && env.DEBUG.trim() !== '' ? undefined : quietLogger
}
