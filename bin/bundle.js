#!/usr/bin/env node
// Builds dist/cli/discovery.cjs: the whole `discovery` command and its dependencies in one CommonJS script
// (rolldown, a devDependency). npm runs it after `npm install` and `npm ci` (the `prepare` script);
// `cluster up` and the tests run it again when a source changed since. bin/discovery.js runs the bundle
// when it is current and the sources otherwise, so the bundle is only ever a faster way to run the same code:
// an agent answers its API after about 0.5 s of CPU instead of 1.7 s (hundreds of modules resolved,
// read and stripped of their types), and holds 50 MiB less (docs/architecture.md, "Start-up").
//
//   node bin/bundle.js [--if-stale] [--quiet]
//
// Without rolldown (`npm install --omit=dev`) it says so and exits 0: the agent runs from its sources.
// Plain JavaScript, so that it runs on whatever Node npm has.
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join, relative, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { BUNDLE, currentBundle, fingerprint, STAMP } from './bundle-stamp.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const args = new Set(process.argv.slice(2))
const quiet = args.has('--quiet')
const say = (line) => { if (!quiet) process.stderr.write(`bundle: ${line}\n`) }

// libp2p's peer store sorts addresses, protocols and metadata keys with String.prototype.localeCompare, which runs
// ICU's collation: its code and data paged in, 2.3 MiB more of the Node binary resident in each agent (a `localeCompare`
// alone in an otherwise empty Node process), for strings that are all ASCII and only need an order that is always the
// same. In those modules, `x.localeCompare(y)` becomes a comparison of UTF-16 code units. Whatever the pattern does not
// match stays as it was (test/integration/code-cache.test.ts counts what was replaced).
const CODE_UNIT_ORDER = '__discoveryCodeUnitOrder'
const COLLATED = /[\\/]node_modules[\\/]@libp2p[\\/](peer-store|utils)[\\/]/
const OPERAND = '[A-Za-z_$][\\w$]*(?:\\.[A-Za-z_$][\\w$]*)*(?:\\(\\))?'
const LOCALE_COMPARE = new RegExp(`(${OPERAND})\\.localeCompare\\((${OPERAND})\\)`, 'g')
const codeUnitOrder = {
  name: 'code-unit-order',
  transform (code, id) {
    if (!COLLATED.test(id) || !code.includes('.localeCompare(')) return null
    const out = code.replace(LOCALE_COMPARE, `${CODE_UNIT_ORDER}($1, $2)`)
    return out === code ? null : { code: `${out}\nfunction ${CODE_UNIT_ORDER} (a, b) { return a < b ? -1 : a > b ? 1 : 0 }\n`, map: null }
  }
}

export async function build () {
  let rolldown
  try {
    rolldown = await import('rolldown')
  } catch {
    say('rolldown is not installed (npm install --omit=dev?): the command runs from its sources')
    return undefined
  }
  const t0 = performance.now()
  const out = join(root, BUNDLE)
  const tmp = `${out}.${process.pid}.tmp`
  mkdirSync(dirname(out), { recursive: true })
  const result = await rolldown.build({
    input: join(root, 'src/cli/main.ts'),
    platform: 'node',
    plugins: [codeUnitOrder],
    logLevel: 'silent',
    write: true,
    output: {
      file: tmp,
      // CommonJS, not an ES module: bin/bundle-run.js runs it as a vm.Script, whose code cache can be taken after
      // it ran (an ES module's only before). It exports `main` (src/cli/main.ts), which bin/discovery.js calls.
      format: 'cjs',
      // ASCII only (non-ASCII characters escaped): V8 keeps the source of a script for as long as it runs, one byte
      // a character when every character is ASCII, two otherwise. 857 characters among 3 MB made it 6 MB in every
      // agent's heap, 3 MB with this.
      charset: 'ascii',
      // A build kept on this machine (out of git, made from node_modules, which keep their licences): no comments,
      // the one legal comment among them (formdata-polyfill's) not ASCII.
      comments: false,
      // Whitespace and dead code only: names are kept, so stack traces and `err.name` read as in the sources.
      // Half the text to parse and to keep in memory (13 MiB less resident per agent than unminified).
      // READABLE=1 keeps the whitespace: a CPU profile then names a line per statement, not per module.
      minify: { compress: { keepNames: { function: true, class: true } }, mangle: false, codegen: { removeWhitespace: process.env.READABLE !== '1' } },
      codeSplitting: false,
      // A source map beside the bundle (discovery.cjs.map), not named in it: nothing loads it when an agent runs.
      // It is for reading a CPU profile of the bundle (the placement benchmark's --profile): without it every
      // function is "discovery.cjs", with it the package or source file it came from. Positions only, no sources.
      sourcemap: 'hidden',
      sourcemapExcludeSources: true
    }
  })
  const chunk = result.output.find(o => o.type === 'chunk')
  const files = [...new Set([...(chunk?.moduleIds ?? [])]
    .filter(id => id.startsWith(root) && !id.includes(`${sep}node_modules${sep}`))
    .map(id => relative(root, id))), 'package-lock.json', 'bin/bundle.js'].sort()
  // The stamp is taken before the rename: a file edited during the build makes the bundle stale, never wrongly current.
  const stamp = { builtAt: new Date().toISOString(), files, fingerprint: fingerprint(root, files) }
  renameSync(tmp, out)
  // The map of this build, or none: never the map of an earlier one, which would name the wrong places in a profile.
  if (existsSync(`${tmp}.map`)) renameSync(`${tmp}.map`, `${out}.map`)
  else rmSync(`${out}.map`, { force: true })
  // The code caches of the bundle replaced (bin/bundle-run.js) and the ES module of builds before 2026-12-02.
  rmSync(join(dirname(out), 'v8-cache'), { recursive: true, force: true })
  rmSync(join(dirname(out), 'discovery.mjs'), { force: true })
  writeFileSync(join(root, STAMP), JSON.stringify(stamp, null, 1) + '\n')
  say(`${relative(root, out)} built from ${files.length} files in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
  return out
}

/** Builds the bundle unless it is current; resolves to its path, or undefined without rolldown. */
export async function ensureBundle () {
  return currentBundle(root) ?? await build()
}

if (process.argv[1] != null && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    if (args.has('--if-stale') && currentBundle(root) != null) say('current')
    else await build()
  } catch (err) {
    // Never fatal: without the bundle the command runs from its sources.
    rmSync(join(root, `${BUNDLE}.${process.pid}.tmp`), { force: true })
    rmSync(join(root, `${BUNDLE}.${process.pid}.tmp.map`), { force: true })
    say(`not built (${err?.message ?? err}): the command runs from its sources`)
  }
}
