/**
 * `bin/discovery.js` started by a Node too old for it (the machine's own, first on a shell's PATH): it runs itself
 * again on the project's Node (node_modules/node), and `cluster up` starts its agents on that one. Ctrl-C still stops
 * everything. Skipped where no Node older than 22 is installed.
 */
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, readFileSync, readlinkSync, realpathSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { BIN } from '../../src/cli/cluster.ts'
import { MIN_NODE_MAJOR } from '../../bin/own-node.js'
import { tempDir, waitFor } from './helpers.ts'

const ROOT = realpathSync(new URL('../..', import.meta.url))
const OWN = realpathSync(join(ROOT, 'node_modules', 'node', 'bin', 'node'))

function oldNode (): string | undefined {
  for (const candidate of ['/usr/bin/node', '/usr/local/bin/node', '/bin/node']) {
    if (!existsSync(candidate)) continue
    try {
      const v = execFileSync(candidate, ['-p', 'process.versions.node'], { encoding: 'utf8' }).trim()
      if (Number(v.split('.')[0]) < MIN_NODE_MAJOR) return candidate
    } catch {}
  }
  return undefined
}
const OLD = oldNode()
if (OLD == null) console.log(`own-node.test: no Node older than ${MIN_NODE_MAJOR} on this machine; skipped`)

describe.skipIf(OLD == null)('the command started on a Node older than 22', () => {
  it('runs on the project\'s own Node, and so do the agents of its cluster; Ctrl-C to it stops them all', async () => {
    const version = execFileSync(OLD!, [BIN, '--version'], { encoding: 'utf8' }).trim()
    expect(version).toMatch(/^\d+\.\d+\.\d+$/)

    const dir = tempDir('own-node')
    const child = spawn(OLD!, [BIN, 'cluster', 'up', '--nodes', '2', '--foreground', '--dir', dir, '--base-port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d) => { out += String(d) })
    child.stderr.on('data', (d) => { out += String(d) })
    const exited = new Promise<number | null>(resolve => child.on('exit', (code) => { resolve(code) }))
    try {
      await waitFor('the live table', () => /discovery local cluster/.test(out) ? true : undefined, 60_000)
      const pids = (JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8')) as { nodes: Array<{ pid: number }> }).nodes.map(n => n.pid)
      expect(pids).toHaveLength(2)
      for (const pid of pids) expect(readlinkSync(`/proc/${pid}/exe`)).toBe(OWN)
      // The Node that was started only waits for the one that runs the command.
      expect(readlinkSync(`/proc/${child.pid}/exe`)).toBe(realpathSync(OLD!))
      child.kill('SIGINT')
      expect(await exited, out).toBe(0)
      expect(out).toContain('all agents stopped')
      for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow()
    } finally {
      child.kill('SIGKILL')
    }
  })
})
