/**
 * What every agent process loads before it does anything: Node's fetch
 * implementation (undici, 70 ms of CPU and 11 MiB resident) must not be
 * among it. An ES import of `node:http` reads every export of the module,
 * lazy ones included, and so loads undici; the bundle hoists every such
 * import to its top, so one in any module (the fuzzer's, once) made every
 * agent pay for it. Both the sources and the bundle the agents run are checked.
 */
import { spawnSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { describe, expect, it } from 'vitest'
import { AGENT_NODE_FLAGS } from '../../src/cli/cluster.ts'

const root = fileURLToPath(new URL('../..', import.meta.url))

describe('the modules an agent process loads at start', () => {
  it('no source imports node:http or node:https as an ES module (types aside)', () => {
    const sources = readdirSync(join(root, 'src'), { recursive: true, encoding: 'utf8' }).filter(f => f.endsWith('.ts'))
    expect(sources.length).toBeGreaterThan(100)
    const offenders = sources.filter(f => /^import\s+(?!type\b)[^'"]*?from\s+['"](node:)?https?['"]/m.test(readFileSync(join(root, 'src', f), 'utf8')))
    expect(offenders).toEqual([])
    // The check can fail: it finds such an import.
    expect(/^import\s+(?!type\b)[^'"]*?from\s+['"](node:)?https?['"]/m.test("import { request } from 'node:http'")).toBe(true)
  })

  it('the bundled command starts without loading undici', async () => {
    const { ensureBundle } = await import(pathToFileURL(join(root, 'bin', 'bundle.js')).href) as { ensureBundle: () => Promise<string | undefined> }
    expect(await ensureBundle()).toBeDefined()
    const hook = 'data:text/javascript,process.on("exit",()=>{process.stderr.write("undici:"+process.moduleLoadList.some(m=>m.includes("undici")))})'
    const run = spawnSync(process.execPath, [...AGENT_NODE_FLAGS, '--import', hook, join(root, 'bin', 'discovery.js'), '--version'], { encoding: 'utf8', timeout: 30_000 })
    expect(run.status).toBe(0)
    expect(run.stderr).toContain('undici:false')
  }, 120_000)
})
