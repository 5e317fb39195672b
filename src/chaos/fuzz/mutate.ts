/**
 * Hostile variants of valid messages, drawn with fast-check from a seed: a
 * message taken whole from a corpus of valid-shaped ones, then one to three
 * mutations of its fields (removed, wrong type, huge, negative, fractional,
 * NaN-like strings, unknown keys, a wrong protocol version, arrays grown past
 * their bound, deep nesting), then what goes on the wire: the JSON as it is,
 * or its text damaged (cut short, a byte flipped, invalid UTF-8, a literal
 * JSON does not have, nested 20,000 deep), and the frame whole, truncated, announcing more than
 * the limit, or really over it. Unmutated messages are replayed.
 */
import fc from 'fast-check'
import { jsonLength } from './json-length.ts'

/** Values that are wrong for nearly every field of every schema. */
const HOSTILE: readonly unknown[] = Object.freeze([
  null, true, false, 0, -1, -0.5, 1.5, 1e308, -1e308, 2 ** 53 + 2, Number.MAX_SAFE_INTEGER, -(2 ** 31), 2 ** 32, 1e-320,
  '', 'NaN', 'Infinity', '-Infinity', '1e999', '0x10', ' 1', '\u0000', '__proto__', 'constructor', '../../etc/passwd', '%00',
  'vm-', 'vm-UPPERCASE', '12D3KooW', 'é'.repeat(40), '\uD800', 'x'.repeat(5_000), [], [null], [[[]]], {},
  // Own keys named like the prototype's, as JSON.parse makes them.
  JSON.parse('{"__proto__":{"polluted":1}}'), JSON.parse('{"constructor":{"prototype":{"polluted":1}}}')
] as unknown[])

export type MutationKind = 'remove' | 'retype' | 'extra' | 'version' | 'grow' | 'nest'

export interface Mutation { kind: MutationKind, pick: number, value: unknown }

export type TextDamage = 'none' | 'cut' | 'flip' | 'utf8' | 'literal' | 'garbage' | 'deep'
export type FrameKind = 'whole' | 'truncated' | 'announced-oversize' | 'oversize' | 'empty'

export interface Draw {
  /** Index into the corpus of base messages. */
  base: number
  mutations: Mutation[]
  text: TextDamage
  frame: FrameKind
  /** Where text damage or a truncation cuts, as a fraction of the bytes. */
  at: number
  /** How many times the message is sent (a replay when more than one). */
  times: number
  garbage: Uint8Array
}

const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...HOSTILE) },
  { weight: 1, arbitrary: fc.double({ noNaN: true }) },
  { weight: 1, arbitrary: fc.integer() },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) }
)

const mutation: fc.Arbitrary<Mutation> = fc.record({
  kind: fc.constantFrom<MutationKind>('remove', 'retype', 'retype', 'retype', 'extra', 'version', 'grow', 'nest'),
  pick: fc.nat(),
  value: hostileValue
})

/** A draw: mostly mutated JSON in a whole frame; some damaged text, broken frames and plain replays. */
export function drawArbitrary (bases: number): fc.Arbitrary<Draw> {
  return fc.record({
    base: fc.nat({ max: bases - 1 }),
    mutations: fc.oneof({ weight: 1, arbitrary: fc.constant<Mutation[]>([]) }, { weight: 9, arbitrary: fc.array(mutation, { minLength: 1, maxLength: 3 }) }),
    text: fc.oneof({ weight: 12, arbitrary: fc.constant<TextDamage>('none') }, { weight: 3, arbitrary: fc.constantFrom<TextDamage>('cut', 'flip', 'utf8', 'literal', 'garbage', 'deep') }),
    frame: fc.oneof({ weight: 40, arbitrary: fc.constant<FrameKind>('whole') }, { weight: 6, arbitrary: fc.constantFrom<FrameKind>('truncated', 'announced-oversize', 'empty') }, { weight: 1, arbitrary: fc.constant<FrameKind>('oversize') }),
    at: fc.double({ min: 0, max: 1, noNaN: true }),
    times: fc.oneof({ weight: 5, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.integer({ min: 2, max: 3 }) }),
    garbage: fc.uint8Array({ minLength: 1, maxLength: 64 })
  })
}

/** `count` draws for one entry point, the same for the same seed. */
export function sampleDraws (bases: number, count: number, seed: number): Draw[] {
  return fc.sample(drawArbitrary(bases), { seed, numRuns: count })
}

type Json = unknown

const GROWN = [17, 33, 49, 65, 129, 1_001, 4_001]
interface Slot { parent: Record<string, Json> | Json[], key: string | number }

/** Every field and element of a JSON value, depth first (not inside what a mutation nested or grew: the first 12 levels and 2,000 slots). */
function slots (value: Json, out: Slot[] = [], depth = 0): Slot[] {
  if (depth > 12 || out.length > 2_000) return out
  if (Array.isArray(value)) {
    value.forEach((v, i) => { out.push({ parent: value, key: i }); slots(v, out, depth + 1) })
  } else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) { out.push({ parent: value as Record<string, Json>, key: k }); slots(v, out, depth + 1) }
  }
  return out
}

function set (slot: Slot, v: Json): void {
  (slot.parent as any)[slot.key] = v
}

/** The base message with the draw's mutations applied (a deep copy: the base is kept). */
export function mutate (base: Json, mutations: readonly Mutation[]): Json {
  const root = structuredClone(base)
  for (const drawn of mutations) {
    // A fresh copy of the hostile value: the same constant is drawn many times, and a later mutation may write into it.
    const m = { ...drawn, value: drawn.value === undefined ? null : JSON.parse(JSON.stringify(drawn.value)) }
    const all = slots(root)
    if (all.length === 0) continue
    const slot = all[m.pick % all.length]
    const current = (slot.parent as any)[slot.key]
    switch (m.kind) {
      case 'remove':
        if (Array.isArray(slot.parent)) slot.parent.splice(slot.key as number, 1)
        else delete slot.parent[slot.key as string]
        break
      case 'retype': set(slot, m.value); break
      case 'extra': {
        const obj = (root !== null && typeof root === 'object' && !Array.isArray(root)) ? root as Record<string, Json> : undefined
        const target = current !== null && typeof current === 'object' && !Array.isArray(current) ? current as Record<string, Json> : obj
        if (target != null) Object.defineProperty(target, m.pick % 3 === 0 ? '__proto__' : `x${m.pick % 97}`, { value: m.value, enumerable: true, writable: true, configurable: true })
        break
      }
      case 'version': {
        const versioned = slots(root).find(s => s.key === 'v')
        if (versioned != null) set(versioned, [0, 2, '1', 1.0001, -1, null, 1e9][m.pick % 7])
        break
      }
      case 'grow': {
        // Just past one of the schemas' array bounds (16 links, 32 labels or updates, 48 records, 64 migrations, 128 members, 1,000 or 4,000 VMs), within 256 kB.
        const bound = GROWN[m.pick % GROWN.length]
        const item = Array.isArray(current) && current.length > 0 ? current[0] : m.value
        const size = (JSON.stringify(item) ?? 'null').length + 1
        set(slot, Array.from({ length: Math.max(2, Math.min(bound, Math.floor(256_000 / size))) }, () => item))
        // The items are one shared value: growing a slot inside an earlier grown array multiplies the whole. Past the
        // bound of a message, undone (a frame over the limit is the frame damage's to send, not this one's).
        if (!withinBytes(root, MAX_MUTATED_CHARS)) set(slot, current)
        break
      }
      case 'nest': {
        let v: Json = current
        for (let i = 0; i < 20 + (m.pick % 400); i++) v = [v]
        set(slot, v)
        break
      }
    }
  }
  return root
}

const encoder = new TextEncoder()

/** A mutated message stays under this many characters of JSON: four times the largest frame an agent takes. */
const MAX_MUTATED_CHARS = 4_000_000

function withinBytes (json: Json, max: number): boolean {
  return jsonLength(json, max) <= max
}

/** The message's bytes after the draw's text damage. */
export function damage (json: Json, draw: Draw): Uint8Array {
  const text = JSON.stringify(json) ?? 'null'
  const cut = Math.floor(draw.at * text.length)
  switch (draw.text) {
    case 'none': return encoder.encode(text)
    case 'cut': return encoder.encode(text.slice(0, Math.max(0, cut - 1)))
    case 'flip': {
      const b = encoder.encode(text)
      if (b.length > 0) b[Math.min(cut, b.length - 1)] ^= 1 << (draw.garbage[0] % 7)
      return b
    }
    case 'utf8': return concat(encoder.encode(text.slice(0, cut)), new Uint8Array([0xff, 0xfe, 0xc3]), encoder.encode(text.slice(cut)))
    case 'literal': return encoder.encode(text.replace(/-?\d+(\.\d+)?/, ['NaN', 'Infinity', '-Infinity', 'undefined', '0x1f', '1_000', '.5', '01'][draw.garbage[0] % 8]))
    case 'garbage': return draw.garbage
    // Deeper than any value can be built (and stringified) here: a parser that recurses must not fall over.
    case 'deep': return encoder.encode('['.repeat(20_000 + cut) + text + ']'.repeat(20_000 + cut))
  }
}

export function concat (...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0))
  let at = 0
  for (const p of parts) { out.set(p, at); at += p.byteLength }
  return out
}

/** An unsigned varint (it-length-prefixed's length prefix). */
export function varint (n: number): Uint8Array {
  const out: number[] = []
  while (n >= 0x80) { out.push((n % 0x80) | 0x80); n = Math.floor(n / 0x80) }
  out.push(n)
  return Uint8Array.from(out)
}

/** One oversized frame per limit, built once: its bytes are the same every time. */
const oversized = new Map<number, Uint8Array>()

/**
 * The frame for `bytes` on a length-prefixed stream whose limit is `limit`:
 * whole, cut short (its length says more than comes), announcing more than
 * the limit, really over it (JSON padded past the limit), or empty.
 */
export function frame (bytes: Uint8Array, kind: FrameKind, at: number, limit: number): Uint8Array {
  switch (kind) {
    case 'whole': return concat(varint(bytes.byteLength), bytes)
    case 'truncated': return concat(varint(bytes.byteLength + 1), bytes.subarray(0, Math.floor(at * bytes.byteLength)))
    case 'announced-oversize': return concat(varint(limit + 1 + Math.floor(at * 1e9)), bytes.subarray(0, 64))
    case 'oversize': {
      let f = oversized.get(limit)
      if (f == null) {
        const pad = encoder.encode(JSON.stringify({ pad: 'p'.repeat(limit + 16) }))
        f = concat(varint(pad.byteLength), pad)
        oversized.set(limit, f)
      }
      return f
    }
    case 'empty': return varint(0)
  }
}
