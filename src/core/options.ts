/**
 * Options validated once, where a component takes them, with an error that
 * says what was expected and what came (p-queue's style):
 * ``Expected `timeoutMs` to be a finite number > 0, got `-1` (number)``.
 */
import { DiscoveryError } from './errors.ts'

export class InvalidOptionError extends DiscoveryError {
  static name = 'InvalidOptionError'
  static defaultMessage = 'an option has a value out of its range'
}

export interface NumberBounds {
  /** Smallest value allowed (inclusive). */
  min?: number
  /** Smallest value allowed, exclusive: for a duration that must not be zero. */
  above?: number
  /** Largest value allowed (inclusive). */
  max?: number
  integer?: boolean
}

function describe (value: unknown): string {
  let shown: string
  try {
    shown = typeof value === 'string' || typeof value === 'number' ? String(value) : JSON.stringify(value) ?? String(value)
  } catch {
    shown = String(value)
  }
  return `\`${shown}\` (${value === null ? 'null' : typeof value})`
}

/** Returns `value` when it is a finite number within the bounds; throws InvalidOptionError otherwise. */
export function expectNumber (name: string, value: unknown, bounds: NumberBounds = {}): number {
  const { min, above, max, integer = false } = bounds
  const ok = typeof value === 'number' && Number.isFinite(value) &&
    (!integer || Number.isInteger(value)) &&
    (min == null || value >= min) && (above == null || value > above) && (max == null || value <= max)
  if (ok) return value
  const parts = [integer ? 'an integer' : 'a finite number']
  if (min != null) parts.push(`>= ${min}`)
  if (above != null) parts.push(`> ${above}`)
  if (max != null) parts.push(`<= ${max}`)
  throw new InvalidOptionError(`Expected \`${name}\` to be ${parts.join(' ')}, got ${describe(value)}`)
}
