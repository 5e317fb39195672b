/**
 * The V8 flags of a local cluster's processes (src/cli/cluster.ts): one agent
 * to a process gets 4 MiB semi-spaces; a process of K agents 4 MiB an agent,
 * up to 16 MiB (its young generation is shared by the K).
 */
import { describe, expect, it } from 'vitest'
import { AGENT_NODE_FLAGS, groupNodeFlags } from '../../src/cli/cluster.ts'

describe('node flags of a local cluster', () => {
  it('gives one agent 4 MiB semi-spaces, a group 4 MiB an agent up to 16', () => {
    expect(AGENT_NODE_FLAGS).toEqual(['--max-semi-space-size=4'])
    expect(groupNodeFlags(1)).toEqual(['--max-semi-space-size=4'])
    expect(groupNodeFlags(2)).toEqual(['--max-semi-space-size=8'])
    expect(groupNodeFlags(3)).toEqual(['--max-semi-space-size=12'])
    expect(groupNodeFlags(10)).toEqual(['--max-semi-space-size=16'])
    expect(groupNodeFlags(100)).toEqual(['--max-semi-space-size=16'])
  })
})
