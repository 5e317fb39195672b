/** Parsers for command-line values: each says what was expected and what came. */
import { UsageError } from './errors.ts'

const SIZE = /^(\d+)\s*(MiB|GiB|TiB|M|G|T|MB|GB)?$/i

/** A memory size in MiB: `512`, `512MiB`, `4GiB` (binary units; MB/GB read as MiB/GiB). */
export function parseSize (flag: string, value: string): number {
  const m = SIZE.exec(value.trim())
  if (m == null) throw new UsageError(`Expected ${flag} to be a size like 512MiB or 4GiB, got \`${value}\``)
  const n = Number(m[1])
  const unit = (m[2] ?? 'MiB').toUpperCase()
  const mib = unit.startsWith('T') ? n * 1024 * 1024 : unit.startsWith('G') ? n * 1024 : n
  if (!Number.isSafeInteger(mib) || mib <= 0) throw new UsageError(`Expected ${flag} to be a positive size, got \`${value}\``)
  return mib
}

export function parseInteger (flag: string, value: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = Number(value)
  if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`Expected ${flag} to be a whole number from ${min} to ${max}, got \`${value}\``)
  }
  return n
}

export function parseRatio (flag: string, value: string, min: number, max: number): number {
  const n = Number(value)
  if (value.trim() === '' || !Number.isFinite(n) || n < min || n > max) throw new UsageError(`Expected ${flag} to be a number from ${min} to ${max}, got \`${value}\``)
  return n
}

/** `k=v,k2=v2` (or repeated flags) into a record. */
export function parseLabels (flag: string, values: string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (const item of values.flatMap(v => v.split(',')).map(s => s.trim()).filter(s => s !== '')) {
    const eq = item.indexOf('=')
    if (eq <= 0) throw new UsageError(`Expected ${flag} to be key=value pairs like zone=paris,rack=r1, got \`${item}\``)
    out[item.slice(0, eq)] = item.slice(eq + 1)
  }
  return out
}

/** A duration: `500ms`, `30s`, `5m`, `1h`, or a bare number of seconds. */
export function parseDuration (flag: string, value: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim())
  if (m == null) throw new UsageError(`Expected ${flag} to be a duration like 500ms, 30s, 5m or 1h, got \`${value}\``)
  const n = Number(m[1])
  const ms = m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : m[2] === 'h' ? n * 3_600_000 : n * 1000
  return Math.round(ms)
}

/** `HOST:PORT` with a port from 0 to 65535. */
export function parseHostPort (flag: string, value: string): { host: string, port: number } {
  const m = /^(.+):(\d{1,5})$/.exec(value.trim())
  if (m == null) throw new UsageError(`Expected ${flag} to be HOST:PORT like 127.0.0.1:7100, got \`${value}\``)
  const port = Number(m[2])
  if (port > 65535) throw new UsageError(`Expected the port of ${flag} to be at most 65535, got ${port}`)
  return { host: m[1].replace(/^\[|\]$/g, ''), port }
}
