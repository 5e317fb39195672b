/**
 * The VM index: whichever way an agent learns of a VM (its own placement,
 * the owner's answer, gossip listing it again and again), each change is
 * reported once: placed, running, deleted; a move is a placed elsewhere.
 */
import { describe, expect, it } from 'vitest'
import type { VmState } from '../../src/core/messages.ts'
import { VmIndex } from '../../src/core/vm-index.ts'

const vm = (id: string, state: VmState = 'creating') => ({ id, cpu: 1, memMiB: 256, state })

describe('VmIndex', () => {
  it('reports a VM placed then running once, however often a node\'s list repeats it', () => {
    const index = new VmIndex()
    expect(index.observeNode('B', [vm('vm-1')])).toEqual([{ kind: 'placed', id: 'vm-1', node: 'B', cpu: 1, memMiB: 256 }])
    expect(index.observeNode('B', [vm('vm-1')])).toEqual([])
    expect(index.observeNode('B', [vm('vm-1', 'running')])).toEqual([{ kind: 'running', id: 'vm-1', node: 'B' }])
    expect(index.observeNode('B', [vm('vm-1', 'running')])).toEqual([])
    expect(index.observeNode('B', [vm('vm-1', 'migrating')])).toEqual([])
    expect(index.observeNode('B', [vm('vm-1', 'running')])).toEqual([])
  })

  it('reports a VM first seen running as placed and running', () => {
    expect(new VmIndex().observe('B', vm('vm-1', 'running')).map(c => c.kind)).toEqual(['placed', 'running'])
  })

  it('reports a VM gone from its node\'s list as deleted, and forgets it', () => {
    const index = new VmIndex()
    index.observeNode('B', [vm('vm-1'), vm('vm-2')])
    expect(index.observeNode('B', [vm('vm-2')])).toEqual([{ kind: 'deleted', id: 'vm-1', node: 'B' }])
    expect(index.size).toBe(1)
    expect(index.observe('B', { ...vm('vm-2'), state: 'deleted' })).toEqual([{ kind: 'deleted', id: 'vm-2', node: 'B' }])
    expect(index.size).toBe(0)
  })

  it('reports a move as a placement on the new node; the old node dropping it later says nothing', () => {
    const index = new VmIndex()
    index.observeNode('A', [vm('vm-1', 'running')])
    expect(index.observeNode('B', [vm('vm-1', 'running')]).map(c => `${c.kind}@${c.node}`)).toEqual(['placed@B', 'running@B'])
    expect(index.observeNode('A', [])).toEqual([])
    expect(index.node('vm-1')).toBe('B')
  })

  it('forgets a node without reporting its VMs deleted', () => {
    const index = new VmIndex()
    index.observeNode('A', [vm('vm-1'), vm('vm-2')])
    index.forgetNode('A')
    expect(index.size).toBe(0)
    expect(index.observeNode('A', [vm('vm-1')]).map(c => c.kind)).toEqual(['placed'])
  })
})
