#!/usr/bin/env node
// The `discovery` command. Node ≥ 22 runs the TypeScript sources directly (type stripping). When dist/ holds a
// bundle of the sources as they are now (bin/bundle.js: built by `npm install`, and again by `cluster up` and the
// tests after a change), it runs that instead: one file to parse instead of hundreds of modules to resolve, read
// and strip, for the same code, with V8's code cache of the functions it ran (bin/bundle-run.js).
// DISCOVERY_NO_BUNDLE=1 runs the sources whatever dist/ holds.
import module from 'node:module'
import { fileURLToPath } from 'node:url'
import { currentBundle } from './bundle-stamp.js'
import { ownNode, runOn } from './own-node.js'

const root = fileURLToPath(new URL('..', import.meta.url))
// A Node too old for the command (`./bin/discovery.js` on a machine whose own Node is older): the project's own runs it.
const other = ownNode(root)
if (other instanceof Error) {
  process.stderr.write(`${other.message}\n`)
  process.exit(1)
} else if (other != null) {
  await runOn(other, fileURLToPath(import.meta.url))
} else {
  await run()
}

async function run () {
  // V8's compiled code, kept on disk between runs ($NODE_COMPILE_CACHE, else a folder of the system's temporary
  // one): for this file and, without the bundle, for the sources.
  module.enableCompileCache?.()
  const bundle = process.env.DISCOVERY_NO_BUNDLE === '1' ? undefined : currentBundle(root)
  if (bundle != null) {
    const { runBundle } = await import('./bundle-run.js')
    await runBundle(bundle)
  } else {
    const { main } = await import('../src/cli/main.ts')
    await main()
  }
  // The command has started (an agent: it answers its API). Node writes the cache only at exit, and an agent may
  // never exit cleanly (SIGKILL): write it now.
  module.flushCompileCache?.()
}
