/**
 * The length of `JSON.stringify(value)` without building the string, and
 * without going on once it passes `max`.
 *
 * A grown array of the fuzzer holds one value many times over, and growing a
 * field inside an earlier grown array multiplies the whole: the text can run to
 * gigabytes (or past what a string can hold) while the value itself stays
 * small. Each distinct object is measured once (its length is remembered and
 * added again wherever it recurs), so the cost follows the value's size, not
 * its text's. Stringifying it whole to compare with a bound took seconds a
 * draw (test/unit/fuzz-mutate.test.ts: 40 draws, 50 s).
 */

/** `JSON.stringify(value).length` when that is at most `max`, else Infinity (also when stringify would throw); 0 where stringify gives undefined. */
export function jsonLength (value: unknown, max: number): number {
  const sizes = new Map<object, number>()
  const visiting = new Set<object>()
  try {
    const n = measure(value, max, sizes, visiting, false)
    return n === undefined ? 0 : n > max ? Infinity : n
  } catch {
    return Infinity
  }
}

/**
 * Characters `value` takes in its parent's text; undefined where JSON.stringify leaves a property out
 * (undefined, a function, a symbol). `inArray`: such values are written `null` there.
 */
function measure (value: unknown, max: number, sizes: Map<object, number>, visiting: Set<object>, inArray: boolean): number | undefined {
  if (value === null || typeof value !== 'object') {
    if (value === undefined || typeof value === 'function' || typeof value === 'symbol') return inArray ? 4 : undefined
    // Strings (escapes), numbers (NaN and Infinity as null), booleans, bigint (throws, as stringify does).
    return (JSON.stringify(value) as string).length
  }
  const known = sizes.get(value)
  if (known !== undefined) return known
  // A toJSON (a Date, a Buffer) decides its own text: measured as stringify writes it.
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function') {
    const text = JSON.stringify(value)
    const n = text === undefined ? (inArray ? 4 : undefined) : text.length
    if (n !== undefined) sizes.set(value, n)
    return n
  }
  // A cycle: stringify throws, and so does this.
  if (visiting.has(value)) throw new TypeError('Converting circular structure to JSON')
  visiting.add(value)
  let n = 2
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      n += (measure(value[i], max, sizes, visiting, true) as number) + (i > 0 ? 1 : 0)
      if (n > max) return stop(value, sizes, visiting)
    }
  } else {
    let first = true
    for (const key of Object.keys(value)) {
      const v = measure((value as Record<string, unknown>)[key], max, sizes, visiting, false)
      if (v === undefined) continue
      n += (JSON.stringify(key)).length + 1 + v + (first ? 0 : 1)
      first = false
      if (n > max) return stop(value, sizes, visiting)
    }
  }
  visiting.delete(value)
  sizes.set(value, n)
  return n
}

function stop (value: object, sizes: Map<object, number>, visiting: Set<object>): number {
  visiting.delete(value)
  sizes.set(value, Infinity)
  return Infinity
}
