/**
 * The bundle's code cache (bin/bundle-run.js): a process that finds none
 * writes one after it ran, holding the functions it compiled along the way
 * (not only the top level, as Node's own compile cache); the next process
 * uses it; a cache made for other source or flags, or damaged, is refused and
 * replaced, never trusted; and the real bundle runs through it.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import vm from 'node:vm'
import { describe, expect, it } from 'vitest'
import { AGENT_NODE_FLAGS } from '../../src/cli/cluster.ts'
import { tempDir } from './helpers.ts'

const root = fileURLToPath(new URL('../..', import.meta.url))
const runner = pathToFileURL(join(root, 'bin', 'bundle-run.js')).href
const { cacheFile } = await import(runner) as { cacheFile: (bundle: string, execArgv?: string[], nodeOptions?: string, dir?: string) => string }

/** A CommonJS script whose `main` calls a function big enough to weigh in a cache, then says it ran. */
function script (dir: string, tag = 'a'): string {
  const body = Array.from({ length: 400 }, (_, i) => `  s += ${i} * x + ${JSON.stringify(tag + i)}.length`).join('\n')
  const file = join(dir, 'script.cjs')
  writeFileSync(file, `function work (x) {\n  let s = 0\n${body}\n  return s\n}\nexports.work = work\nexports.main = async () => { process.stdout.write('ran ' + work(2) + '\\n') }\n`)
  return file
}

/** The flags of the process `run` starts: the cache's name depends on them. */
const CHILD_FLAGS = ['--input-type=module', '-e', `const { runBundle } = await import(${JSON.stringify(runner)}); const o = await runBundle(process.argv[1]); process.stderr.write('outcome:' + o)`]
const childCache = (file: string, dir?: string): string => cacheFile(file, CHILD_FLAGS, '', dir)

/** Runs `file` through runBundle in a new process (with $NODE_COMPILE_CACHE when given); its stdout and the cache's outcome. */
function run (file: string, compileCache?: string): { out: string, outcome: string } {
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_OPTIONS: '' }
  delete env.NODE_COMPILE_CACHE
  if (compileCache != null) env.NODE_COMPILE_CACHE = compileCache
  const r = spawnSync(process.execPath, [...CHILD_FLAGS, file], { encoding: 'utf8', timeout: 30_000, env })
  expect(r.status, r.stderr).toBe(0)
  return { out: r.stdout, outcome: /outcome:(\w+)/.exec(r.stderr)?.[1] ?? r.stderr }
}

describe('the bundle code cache', () => {
  it('V8 caches the functions a script ran when asked after it ran: more than before', () => {
    const file = script(tempDir('cc-v8'))
    const s = new vm.Script(readFileSync(file, 'utf8'), { filename: file })
    const before = s.createCachedData().length
    const m: { exports: { work?: (x: number) => number } } = { exports: {} }
    const fn = new vm.Script(`(function (exports, module) {${readFileSync(file, 'utf8')}\n})`, { filename: file })
    const beforeWrapped = fn.createCachedData().length
    fn.runInThisContext()(m.exports, m)
    expect(m.exports.work!(2)).toBeGreaterThan(0)
    const after = fn.createCachedData().length
    process.stdout.write(`code cache: ${beforeWrapped} bytes before the script ran, ${after} after (top level alone: ${before})\n`)
    expect(after).toBeGreaterThan(beforeWrapped * 1.5)
  })

  it('the first process writes a cache at exit, the next uses it and leaves it as is', () => {
    const file = script(tempDir('cc-first'))
    const cache = childCache(file)
    expect(statSync(cache, { throwIfNoEntry: false })).toBeUndefined()
    const first = run(file)
    expect(first.out).toContain('ran ')
    expect(first.outcome).toBe('none')
    const written = statSync(cache)
    expect(written.size).toBeGreaterThan(0)
    const second = run(file)
    expect(second.out).toBe(first.out)
    expect(second.outcome).toBe('accepted')
    expect(statSync(cache).mtimeMs).toBe(written.mtimeMs)
  }, 60_000)

  it('a cache is per V8 flags and per build of the bundle', () => {
    const file = script(tempDir('cc-key'))
    const plain = cacheFile(file, [])
    expect(cacheFile(file, AGENT_NODE_FLAGS)).not.toBe(plain)
    expect(cacheFile(file, [], '--max-old-space-size=100')).not.toBe(plain)
    // A new build renames a new file into place: another modification time, another cache.
    const t = new Date(Date.now() + 5_000)
    utimesSync(file, t, t)
    expect(cacheFile(file, [])).not.toBe(plain)
  })

  it('goes under $NODE_COMPILE_CACHE when set (a deployed install folder is read-only), where a new build removes the old one\'s', () => {
    const shared = join(tempDir('cc-shared'), 'cache')
    const dir = join(shared, 'discovery-bundle')
    const file = script(tempDir('cc-shared-build'))
    expect(run(file, shared).outcome).toBe('none')
    const old = childCache(file, dir)
    expect(readdirSync(dir)).toEqual([basename(old)])
    expect(existsSync(join(dirname(file), 'v8-cache'))).toBe(false)
    expect(run(file, shared).outcome).toBe('accepted')
    // A new build of the same script: its own cache, and the old build's is gone.
    const t = new Date(Date.now() + 5_000)
    utimesSync(file, t, t)
    expect(run(file, shared).outcome).toBe('none')
    expect(readdirSync(dir)).toEqual([basename(childCache(file, dir))])
    expect(childCache(file, dir)).not.toBe(old)
  }, 60_000)

  it('a damaged cache, or one made for another build put under this one\'s name, is never used, and is replaced', () => {
    const dir = tempDir('cc-bad')
    const file = script(dir)
    const own = run(file).out
    const cache = childCache(file)
    // Damaged: V8 would run it (and crash); the file's hash keeps it from V8.
    const bytes = readFileSync(cache)
    bytes.fill(0x5a, Math.floor(bytes.length / 2), Math.floor(bytes.length / 2) + 64)
    writeFileSync(cache, bytes)
    const damaged = run(file)
    expect(damaged.out).toBe(own)
    expect(damaged.outcome).toBe('damaged')
    expect(run(file).outcome).toBe('accepted')
    // Another script's cache (made for other source), put where this one's goes.
    const other = script(tempDir('cc-other'), 'longer-tag')
    run(other)
    writeFileSync(cache, readFileSync(childCache(other)))
    const swapped = run(file)
    expect(swapped.out).toBe(own)
    expect(run(other).out).not.toBe(own)
    expect(swapped.outcome).toBe('damaged')
    expect(run(file).outcome).toBe('accepted')
  }, 60_000)

  it('the bundled command runs through its cache: written once, then used', async () => {
    const { ensureBundle } = await import(pathToFileURL(join(root, 'bin', 'bundle.js')).href) as { ensureBundle: () => Promise<string | undefined> }
    const bundle = await ensureBundle()
    expect(bundle).toBeDefined()
    // Flags of our own so that this test's cache is its own.
    const flags = [...AGENT_NODE_FLAGS, '--stack-size=900']
    const cache = cacheFile(bundle!, flags)
    const version = (): string => {
      const r = spawnSync(process.execPath, [...flags, join(root, 'bin', 'discovery.js'), '--version'], { encoding: 'utf8', timeout: 30_000 })
      expect(r.status, r.stderr).toBe(0)
      return r.stdout.trim()
    }
    const first = version()
    expect(first).toMatch(/\d+\.\d+\.\d+/)
    const written = statSync(cache)
    expect(written.size).toBeGreaterThan(100_000)
    expect(version()).toBe(first)
    expect(statSync(cache).mtimeMs).toBe(written.mtimeMs)
    // The script runs without a loader for import(): the one the bundle holds is cluster up's rebuild of the
    // bundle, which returns at once when it runs from the bundle (src/cli/cluster-up.ts, FROM_BUNDLE).
    const text = readFileSync(bundle!, 'utf8')
    const calls = [...text.matchAll(/[^\w$.]import\s*\(/g)].map(m => text.slice(text.lastIndexOf('function ', m.index), m.index))
    expect(calls.length).toBeGreaterThan(0)
    for (const call of calls) expect(call).toMatch(/^function freshBundle\(/)
    // ASCII only (bin/bundle.js, charset): V8 keeps a script's source as long as it runs, two bytes a character
    // once one character is not ASCII. The escapes keep the strings: the command's own help still says ≥.
    const wide = [...text].filter(c => c.charCodeAt(0) > 127)
    expect(wide.slice(0, 10)).toEqual([])
    const help = spawnSync(process.execPath, [join(root, 'bin', 'discovery.js'), 'agent', '--help'], { encoding: 'utf8', timeout: 30_000 })
    expect(help.stdout).toContain('≥')
    // libp2p's peer store orders by code units, not ICU's collation (bin/bundle.js, code-unit-order): its four sorts.
    const uses = [...text.matchAll(/(function )?__discoveryCodeUnitOrder(\$\d+)?\(/g)].filter(m => m[1] == null)
    expect(uses.length).toBeGreaterThanOrEqual(4)
    expect(text).not.toMatch(/multiaddr\.toString\(\)\.localeCompare/)
  }, 120_000)
})
