// Whether dist/ holds a bundle of the sources as they are now. bin/bundle.js writes the bundle and its stamp;
// bin/discovery.js reads the stamp at every start. Plain JavaScript: it runs before any TypeScript is loaded.
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'

/** Where the bundle goes: two folders deep, as src/cli/ is, so that paths relative to a module still resolve. */
export const BUNDLE = 'dist/cli/discovery.cjs'
export const STAMP = 'dist/cli/stamp.json'

/** Each file's size and modification time (or `missing`): the bundle is current while none of its inputs changed. */
export function fingerprint (root, files) {
  return files.map((file) => {
    try {
      const st = statSync(join(root, file))
      return `${st.size}:${st.mtimeMs}`
    } catch {
      return 'missing'
    }
  })
}

/**
 * The bundle's absolute path if it was built from the files as they are now,
 * else undefined. Only the files of this repository are checked (a hundred
 * stat calls, a few milliseconds), and package-lock.json for the dependencies.
 */
export function currentBundle (root) {
  let stamp
  try {
    stamp = JSON.parse(readFileSync(join(root, STAMP), 'utf8'))
  } catch {
    return undefined
  }
  if (!Array.isArray(stamp?.files) || !Array.isArray(stamp.fingerprint) || stamp.files.length !== stamp.fingerprint.length) return undefined
  const now = fingerprint(root, stamp.files)
  return now.every((v, i) => v === stamp.fingerprint[i]) ? join(root, BUNDLE) : undefined
}
