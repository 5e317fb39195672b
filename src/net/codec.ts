/** JSON on the wire, with the size bound checked before parsing. */
import { DiscoveryError } from '../core/errors.ts'
import type { z } from 'zod'
import { describeIssues, LIMITS } from '../core/messages.ts'

export class InvalidMessageError extends DiscoveryError {
  static name = 'InvalidMessageError'
  static defaultMessage = 'the message does not match its schema'
}

export class MessageTooLargeError extends DiscoveryError {
  static name = 'MessageTooLargeError'
  static defaultMessage = `the message is larger than ${LIMITS.maxMessageBytes} bytes`
}

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

export function encode (value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value))
}

/** Size bound, UTF-8 and JSON only: for a caller that validates the value itself. */
export function parseJson (bytes: Uint8Array): unknown {
  if (bytes.byteLength > LIMITS.maxMessageBytes) throw new MessageTooLargeError()
  try {
    return JSON.parse(decoder.decode(bytes))
  } catch {
    throw new InvalidMessageError('not UTF-8 JSON')
  }
}

/** Decodes and validates one message; throws InvalidMessageError or MessageTooLargeError with the reason. */
export function decode<T extends z.ZodType> (schema: T, bytes: Uint8Array): z.infer<T> {
  const raw = parseJson(bytes)
  const parsed = schema.safeParse(raw)
  if (!parsed.success) throw new InvalidMessageError(describeIssues(parsed.error))
  return parsed.data
}
