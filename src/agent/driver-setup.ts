/**
 * The agent's hypervisor driver, made from its config: `sim`, or `qemu`
 * checked before the agent joins anyone (QEMU installed, the accelerator
 * this host gives) with the address incoming migrations listen on worked
 * out from where libp2p listens, so that a migration goes where the agents'
 * own traffic goes.
 */
import type { Libp2p } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import type { Logger } from 'pino'
import type { AgentConfig } from '../config.ts'
import type { Clock } from '../core/clock.ts'
import { DiscoveryError } from '../core/errors.ts'
import { createDriver, type Driver, QemuDriver } from '../hypervisor/index.ts'

/** `--driver qemu` on a host where QEMU cannot run VMs. */
export class HypervisorUnavailableError extends DiscoveryError {
  static name = 'HypervisorUnavailableError'
  static defaultMessage = 'the hypervisor cannot run VMs here'
}

export async function startDriver (config: AgentConfig, clock: Clock, libp2p: Libp2p, log: Logger): Promise<Driver> {
  const common = {
    dataDir: config.dataDir,
    clock,
    maxDowntimeMs: config.migration.maxDowntimeMs,
    bandwidthMiBps: config.migration.bandwidthMiBps
  }
  if (config.driver === 'sim') {
    return createDriver('sim', { ...common, sim: { bootDelayMs: config.bootDelayMs, demand: config.demand, staticDemand: config.staticDemand, seed: config.seed } })
  }
  const q = config.qemu
  const { host, advertise } = migrationHosts(config.listen, libp2p.getMultiaddrs().map(a => a.toString()), q.migrationHost, q.migrationAdvertiseHost)
  const driver = createDriver('qemu', {
    ...common,
    accel: q.accel,
    qemuBinary: q.binary,
    qemuImgBinary: q.imgBinary,
    ...(q.imagesDir != null ? { imagesDir: q.imagesDir } : {}),
    migrationDeadlineMs: config.migration.deadlineMs,
    migrationHost: host,
    migrationAdvertiseHost: advertise,
    sampleIntervalMs: config.monitorIntervalMs
  })
  try {
    const { version, accel } = await (driver as QemuDriver).preflight()
    log.info({ component: 'discovery:qemu', version, accel: accel.accel, ...(accel.reason != null ? { why: accel.reason } : {}), migrationHost: host, migrationAdvertise: advertise }, 'qemu driver ready')
  } catch (err: any) {
    await driver.stop()
    throw new HypervisorUnavailableError(`--driver qemu: ${err.message}`)
  }
  return driver
}

/**
 * Where incoming migrations listen, and the address sources are told:
 * what the operator said, else the address `--listen` names; for a wildcard
 * (0.0.0.0, ::), every address, advertised as the first non-loopback
 * address libp2p listens on (loopback when it has none).
 */
export function migrationHosts (listen: string, libp2pAddrs: string[], host?: string, advertise?: string): { host: string, advertise: string } {
  const wildcard = (h: string): boolean => h === '0.0.0.0' || h === '::'
  let listenHost = '127.0.0.1'
  try {
    listenHost = multiaddr(listen).toOptions().host
  } catch {}
  const chosen = host ?? (listenHost === 'localhost' ? '127.0.0.1' : listenHost)
  if (advertise != null) return { host: chosen, advertise }
  if (!wildcard(chosen)) return { host: chosen, advertise: chosen }
  const routable = libp2pAddrs.map(a => {
    try {
      return multiaddr(a).toOptions().host
    } catch {
      return undefined
    }
  }).filter((h): h is string => h != null && !wildcard(h) && !h.startsWith('127.') && h !== '::1')
  return { host: chosen, advertise: routable.find(h => !h.includes(':')) ?? routable[0] ?? '127.0.0.1' }
}
