/**
 * The V8 flags of a local cluster's processes (src/cli/cluster.ts): one agent
 * to a process gets 4 MiB semi-spaces from the start and does all of V8's work
 * on its own thread; a process of K agents 4 MiB an agent,
 * up to 16 MiB (its young generation is shared by the K); every one scavenges
 * the young generation on its own thread. The Node that runs the tests takes them all.
 */
import { spawnSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { AGENT_NODE_FLAGS, groupNodeFlags, V8_WORK_ON_AGENT_THREAD } from '../../src/cli/cluster.ts'

describe('node flags of a local cluster', () => {
  it('gives one agent 4 MiB semi-spaces from the start and no V8 helper threads, a group 4 MiB an agent up to 16, and scavenges on the agent thread', () => {
    expect(AGENT_NODE_FLAGS).toEqual(['--max-semi-space-size=4', '--min-semi-space-size=4', '--no-parallel-scavenge', ...V8_WORK_ON_AGENT_THREAD])
    expect(groupNodeFlags(1)).toEqual(['--max-semi-space-size=4', '--no-parallel-scavenge'])
    expect(groupNodeFlags(2)).toEqual(['--max-semi-space-size=8', '--no-parallel-scavenge'])
    expect(groupNodeFlags(3)).toEqual(['--max-semi-space-size=12', '--no-parallel-scavenge'])
    expect(groupNodeFlags(10)).toEqual(['--max-semi-space-size=16', '--no-parallel-scavenge'])
    expect(groupNodeFlags(100)).toEqual(['--max-semi-space-size=16', '--no-parallel-scavenge'])
  })

  it('leave V8 no work for a helper thread, as --single-threaded does (WebAssembly aside)', () => {
    const values = (flags: string[]): Map<string, string> => {
      const run = spawnSync(process.execPath, [...flags, '--print-flag-values', '-e', '0'], { encoding: 'utf8' })
      return new Map(run.stdout.split('\n').filter(l => l.startsWith('--')).map(l => {
        const eq = l.indexOf('=')
        return eq > 0 ? [l.slice(2, eq), l.slice(eq + 1)] : [l.replace(/^--(no-)?/, ''), l.startsWith('--no-') ? 'false' : 'true']
      }))
    }
    const ours = values(AGENT_NODE_FLAGS)
    const single = values(['--max-semi-space-size=4', '--min-semi-space-size=4', '--single-threaded'])
    expect(single.size).toBeGreaterThan(100)
    const differ = [...single].filter(([name, value]) => ours.get(name) !== value).map(([name]) => name)
    expect(differ.sort()).toEqual(['single-threaded', 'wasm-async-compilation', 'wasm-num-compilation-tasks', 'wasm-tier-up'])
  })

  it('keep the code cache of Node\'s own modules usable (--single-threaded made Node compile each from source)', () => {
    const run = (flags: string[]): string => spawnSync(process.execPath, [...flags, '-e', 'require("http"); require("crypto")'], { encoding: 'utf8', env: { ...process.env, NODE_DEBUG_NATIVE: 'CODE_CACHE' } }).stderr
    const ours = run(AGENT_NODE_FLAGS)
    expect(ours).toMatch(/Code cache of http \(.*\) is accepted/)
    expect(ours).not.toMatch(/is rejected/)
    // The check can fail: the flag it replaces is seen rejecting the cache.
    expect(run(['--single-threaded'])).toMatch(/Code cache of http \(.*\) is rejected/)
  })

  it('are flags this Node accepts', () => {
    for (const flags of [AGENT_NODE_FLAGS, groupNodeFlags(10)]) {
      const run = spawnSync(process.execPath, [...flags, '-e', 'process.stdout.write("ok")'], { encoding: 'utf8' })
      expect(run.stderr).toBe('')
      expect(run.status).toBe(0)
      expect(run.stdout).toBe('ok')
    }
  })
})
