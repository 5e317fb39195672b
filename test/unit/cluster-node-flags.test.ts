/**
 * The V8 flags of a local cluster's processes (src/cli/cluster.ts): one agent
 * to a process gets 4 MiB semi-spaces from the start and does all of V8's work
 * on its own thread; a process of K agents 4 MiB an agent,
 * up to 16 MiB (its young generation is shared by the K); every one scavenges
 * the young generation on its own thread. The Node that runs the tests takes them all.
 */
import { spawnSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { AGENT_NODE_FLAGS, groupNodeFlags } from '../../src/cli/cluster.ts'

describe('node flags of a local cluster', () => {
  it('gives one agent 4 MiB semi-spaces from the start and no V8 helper threads, a group 4 MiB an agent up to 16, and scavenges on the agent thread', () => {
    expect(AGENT_NODE_FLAGS).toEqual(['--max-semi-space-size=4', '--min-semi-space-size=4', '--no-parallel-scavenge', '--single-threaded'])
    expect(groupNodeFlags(1)).toEqual(['--max-semi-space-size=4', '--no-parallel-scavenge'])
    expect(groupNodeFlags(2)).toEqual(['--max-semi-space-size=8', '--no-parallel-scavenge'])
    expect(groupNodeFlags(3)).toEqual(['--max-semi-space-size=12', '--no-parallel-scavenge'])
    expect(groupNodeFlags(10)).toEqual(['--max-semi-space-size=16', '--no-parallel-scavenge'])
    expect(groupNodeFlags(100)).toEqual(['--max-semi-space-size=16', '--no-parallel-scavenge'])
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
