// Runs the bundle (dist/cli/discovery.cjs) with V8's code cache of the functions it ran, kept beside it (or under
// $NODE_COMPILE_CACHE when set: see cacheDir).
//
// Node's own compile cache (module.enableCompileCache) is taken when a module is compiled, before it runs: it
// holds the top level of each module and none of the functions compiled later, when first called. An agent calls
// a few thousand of them as it starts and joins, and compiled each one in every agent: 12.5 % of a joining agent's
// CPU over its first 16 s (`perf`, 60 agents). V8 can also cache a script after it ran (vm.Script's
// createCachedData), with every function compiled by then: this file runs the bundle as such a script, and the
// first process of its kind that finds no cache it can use writes one once it has run for SAVE_AFTER_MS (an agent
// has started and joined by then) or when it exits, whichever comes first. The next ones start with those
// functions already compiled (docs/many-agents.md).
//
// A cache belongs to one bundle and one way of running it: its name hashes the bundle's size and modification time
// (every build renames a new file into place), Node's version and the V8 flags (`cluster up` gives agents flags of
// their own). The file starts with a SHA-256 of its name and the cache: V8 does not check a cache's content
// (a damaged one crashed the process), only its source's length and the flags, so a file that does not match its
// hash, or that was made for another build, is never handed to it. Plain JavaScript, as bin/discovery.js.
import { createHash } from 'node:crypto'
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { basename, dirname, join, resolve } from 'node:path'
import vm from 'node:vm'

/** When a process that found no usable cache writes one, ms after it started the bundle. */
export const SAVE_AFTER_MS = 15_000
const WRAPPER = '(function (exports, require, module, __filename, __dirname) {\n'

/**
 * Where the caches go: under $NODE_COMPILE_CACHE when it is set (a deployed agent's install folder is read-only,
 * and its unit or image names a cache folder there), else beside the bundle.
 */
export function cacheDir (bundle, env = process.env) {
  const shared = env.NODE_COMPILE_CACHE
  return shared != null && shared !== '' ? join(resolve(shared), 'discovery-bundle') : join(dirname(bundle), 'v8-cache')
}

const digest = (value) => createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 20)

/** The cache file for `bundle` run by this process (its Node, its flags): `<build>-<run>.bin`. */
export function cacheFile (bundle, execArgv = process.execArgv, nodeOptions = process.env.NODE_OPTIONS ?? '', dir = cacheDir(bundle)) {
  const st = statSync(bundle)
  return join(dir, `${digest([st.size, st.mtimeMs])}-${digest([process.version, process.arch, execArgv, nodeOptions])}.bin`)
}

const HASH_BYTES = 32

/** SHA-256 of the cache file's name and the cache: what the file starts with. */
function seal (file, data) {
  return createHash('sha256').update(basename(file)).update(data).digest()
}

/**
 * The cache held in `file`: `none` when there is none (or it cannot be read), `damaged` when it does not match
 * the hash it starts with (the script then compiles as usual).
 */
export function readCache (file) {
  let bytes
  try {
    bytes = readFileSync(file)
  } catch {
    return { state: 'none' }
  }
  const data = bytes.subarray(HASH_BYTES)
  if (bytes.length <= HASH_BYTES || !seal(file, data).equals(bytes.subarray(0, HASH_BYTES))) return { state: 'damaged' }
  return { state: 'read', data }
}

/** Writes the script's code cache unless another process wrote one since `since` (ms); never throws. */
export function saveCache (script, file, since) {
  try {
    if (statSync(file, { throwIfNoEntry: false })?.mtimeMs > since) return false
    const data = script.createCachedData()
    mkdirSync(dirname(file), { recursive: true })
    const tmp = `${file}.${process.pid}.tmp`
    writeFileSync(tmp, Buffer.concat([seal(file, data), data]))
    renameSync(tmp, file)
    removeOtherBuilds(file)
    return true
  } catch {
    rmSync(`${file}.${process.pid}.tmp`, { force: true })
    return false
  }
}

/**
 * Removes the caches of other builds beside `file`: a shared folder outlives builds (a rebuild empties only
 * dist/cli/v8-cache). Two builds run at once with one $NODE_COMPILE_CACHE replace each other's: a cache miss, no more.
 */
function removeOtherBuilds (file) {
  const build = basename(file).split('-')[0]
  try {
    for (const name of readdirSync(dirname(file))) {
      if (name.endsWith('.bin') && !name.startsWith(`${build}-`)) rmSync(join(dirname(file), name), { force: true })
    }
  } catch {}
}

/**
 * Loads the bundle (a CommonJS script) through the cache and runs its `main`. Resolves to what happened to the
 * cache: `accepted`, `rejected` (by V8: made for other source or flags), `damaged` or `none`; in all but the first
 * the process writes one.
 */
export async function runBundle (bundle) {
  const started = Date.now()
  const file = cacheFile(bundle)
  const cache = readCache(file)
  const cachedData = cache.data
  const script = new vm.Script(WRAPPER + readFileSync(bundle, 'utf8') + '\n})', {
    filename: bundle,
    lineOffset: -1,
    // No importModuleDynamically: Node's own loader there is experimental and says so on stderr at every start.
    // The bundle imports nothing dynamically once running (test/integration/code-cache.test.ts checks).
    cachedData
  })
  const outcome = cachedData == null ? cache.state : script.cachedDataRejected === true ? 'rejected' : 'accepted'
  if (outcome !== 'accepted') {
    let saved = false
    const save = () => { if (!saved) { saved = true; saveCache(script, file, started) } }
    setTimeout(save, SAVE_AFTER_MS).unref()
    process.once('exit', save)
  }
  const module = { exports: {} }
  script.runInThisContext()(module.exports, createRequire(bundle), module, bundle, dirname(bundle))
  await module.exports.main()
  return outcome
}
