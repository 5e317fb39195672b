/**
 * The one byte encoding of what is signed: JSON with the keys of every object
 * sorted and no whitespace, so that two agents that build the same value sign
 * and check the same bytes whatever order its fields were written in. Fields
 * set to `undefined` are left out, as `JSON.stringify` does. And signatures
 * as base64 text, for the JSON wire. Pure: no I/O.
 */

export function canonicalJson (value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value)) throw new RangeError(`cannot encode ${value}: not a finite number`)
    return JSON.stringify(value)
  }
  if (Array.isArray(value)) return `[${value.map(v => canonicalJson(v === undefined ? null : v)).join(',')}]`
  const parts: string[] = []
  for (const key of Object.keys(value).sort()) {
    const v = (value as Record<string, unknown>)[key]
    if (v === undefined) continue
    parts.push(`${JSON.stringify(key)}:${canonicalJson(v)}`)
  }
  return `{${parts.join(',')}}`
}

const encoder = new TextEncoder()

export function canonicalBytes (value: unknown): Uint8Array {
  return encoder.encode(canonicalJson(value))
}

export function toBase64 (bytes: Uint8Array): string {
  let s = ''
  for (const b of bytes) s += String.fromCharCode(b)
  return btoa(s)
}

/** Base64 text back to bytes; undefined when it is not base64. */
export function fromBase64 (text: string): Uint8Array | undefined {
  let s: string
  try {
    s = atob(text)
  } catch {
    return undefined
  }
  const out = new Uint8Array(s.length)
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i)
  return out
}
