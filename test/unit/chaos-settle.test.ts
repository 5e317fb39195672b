/** The chaos harness's settle rule for VMs (src/chaos/settle.ts): every agent's cluster view places each VM where it runs. */
import { describe, expect, it } from 'vitest'
import { vmViewsAgree } from '../../src/chaos/settle.ts'

const vm = (id: string, node: string, epoch = 0): { id: string, name: string, state: string, node: string, epoch: number } => ({ id, name: id, state: 'running', node, epoch })

describe('vmViewsAgree', () => {
  it('holds when every view names each VM at the agent that runs it', () => {
    expect(vmViewsAgree([[vm('a', 'n0')], [vm('b', 'n1')]], [[vm('a', 'n0'), vm('b', 'n1')], [vm('b', 'n1'), vm('a', 'n0')]])).toBe(true)
  })

  it('does not hold while a VM runs on two agents (a restarted agent before it fences its old copy)', () => {
    const own = [[vm('a', 'n0', 3)], [vm('a', 'n1', 2)]]
    expect(vmViewsAgree(own, [[vm('a', 'n0', 3)], [vm('a', 'n0', 3)]])).toBe(false)
  })

  it('does not hold while a view misses a VM, places it elsewhere, or keeps one no agent runs, or an agent did not answer', () => {
    const own = [[vm('a', 'n0')], [vm('b', 'n1')]]
    expect(vmViewsAgree(own, [[vm('a', 'n0')], [vm('a', 'n0'), vm('b', 'n1')]])).toBe(false)
    expect(vmViewsAgree(own, [[vm('a', 'n1'), vm('b', 'n1')], [vm('a', 'n0'), vm('b', 'n1')]])).toBe(false)
    expect(vmViewsAgree(own, [[vm('a', 'n0'), vm('b', 'n1'), vm('c', 'n0')], [vm('a', 'n0'), vm('b', 'n1')]])).toBe(false)
    expect(vmViewsAgree([own[0], undefined], [[vm('a', 'n0')], [vm('a', 'n0')]])).toBe(false)
  })
})
