/**
 * What a driver is made from: the hypervisor's own settings, not the agent's
 * config (the agent maps its flags onto these). Validated once, here.
 */
import { DiscoveryError } from '../core/errors.ts'
import { join, resolve } from 'node:path'
import type { Clock } from '../core/clock.ts'
import type { AccelPreference } from './accel.ts'
import type { SimDriverInit } from './sim-driver.ts'

export type HypervisorName = 'sim' | 'qemu'

export interface DriverInit {
  /** The agent's data dir: the qemu driver keeps each VM's files (QMP socket, pid, log, disk) in `<dataDir>/qemu/<id>/`. Made absolute. */
  dataDir: string
  /** Times migrations, deadlines and CPU-demand samples. */
  clock: Clock
  /** `auto` (default) tries KVM once and falls back to TCG; `kvm` or `tcg` force one. Both ends of a migration must use the same. */
  accel?: AccelPreference
  /** Default `qemu-system-x86_64` (found on PATH). */
  qemuBinary?: string
  /** Default `qemu-img`: makes the disks' qcow2 overlays. */
  qemuImgBinary?: string
  /** Where the base images named by a VM's `image` live. Default `<dataDir>/images`. */
  imagesDir?: string
  /** Longest pause at a migration's switch-over when the transfer does not say. Default 30 ms (QEMU's historical default; the precopy model uses the same). */
  maxDowntimeMs?: number
  /** Migration bandwidth when the transfer does not say, MiB/s. Default 1,250 (10 Gbit/s). */
  bandwidthMiBps?: number
  /** A migration not converged after this long is cancelled with the reason. Default 5 min: shorter than the destination's 10-min lease. */
  migrationDeadlineMs?: number
  /** Address an incoming migration listens on. Default 127.0.0.1; set the agent's address on a real network. */
  migrationHost?: string
  /** Address the source is told to connect to, when it is not `migrationHost` (e.g. that is 0.0.0.0). */
  migrationAdvertiseHost?: string
  /** How often each VM's CPU time is sampled for its demand. Default 1 s (the overload monitor's default interval). */
  sampleIntervalMs?: number
  /** The sim driver's model. */
  sim?: SimDriverInit
}

export interface ResolvedQemuInit {
  dataDir: string
  clock: Clock
  accel: AccelPreference
  qemuBinary: string
  qemuImgBinary: string
  imagesDir: string
  maxDowntimeMs: number
  bandwidthMiBps: number
  migrationDeadlineMs: number
  migrationHost: string
  migrationAdvertiseHost: string
  sampleIntervalMs: number
}

/** A driver option is not what it must be: says which, what was expected and what came. */
export class DriverInitError extends DiscoveryError {
  static name = 'DriverInitError'
  static defaultMessage = 'invalid driver options'
}

export function resolveQemuInit (init: DriverInit): ResolvedQemuInit {
  if (typeof init?.dataDir !== 'string' || init.dataDir === '') throw bad('dataDir', 'a non-empty path', init?.dataDir)
  if (typeof init.clock?.now !== 'function') throw bad('clock', 'a Clock (an object with now())', init.clock)
  const accel = init.accel ?? 'auto'
  if (!['auto', 'kvm', 'tcg'].includes(accel)) throw bad('accel', 'one of auto, kvm, tcg', accel)
  const dataDir = resolve(init.dataDir)
  const imagesDir = init.imagesDir != null ? resolve(init.imagesDir) : join(dataDir, 'images')
  const host = init.migrationHost ?? '127.0.0.1'
  return {
    dataDir,
    clock: init.clock,
    accel,
    qemuBinary: nonEmpty('qemuBinary', init.qemuBinary ?? 'qemu-system-x86_64'),
    qemuImgBinary: nonEmpty('qemuImgBinary', init.qemuImgBinary ?? 'qemu-img'),
    imagesDir,
    maxDowntimeMs: number('maxDowntimeMs', init.maxDowntimeMs ?? 30, '>= 1', v => v >= 1),
    bandwidthMiBps: number('bandwidthMiBps', init.bandwidthMiBps ?? 1250, '> 0', v => v > 0),
    migrationDeadlineMs: number('migrationDeadlineMs', init.migrationDeadlineMs ?? 300_000, '> 0', v => v > 0),
    migrationHost: nonEmpty('migrationHost', host),
    migrationAdvertiseHost: nonEmpty('migrationAdvertiseHost', init.migrationAdvertiseHost ?? host),
    sampleIntervalMs: number('sampleIntervalMs', init.sampleIntervalMs ?? 1000, '>= 10', v => v >= 10)
  }
}

function number (field: string, v: unknown, expected: string, ok: (v: number) => boolean): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) throw bad(field, `a finite number ${expected}`, v)
  return v
}

function nonEmpty (field: string, v: unknown): string {
  if (typeof v !== 'string' || v === '') throw bad(field, 'a non-empty string', v)
  return v
}

function bad (field: string, expected: string, got: unknown): DriverInitError {
  return new DriverInitError(`Expected \`${field}\` to be ${expected}, got \`${String(got)}\` (${typeof got})`)
}
