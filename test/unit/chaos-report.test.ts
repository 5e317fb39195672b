/**
 * The chaos report's count of repeated restarts (chaos/report.ts
 * `repeatedRestarts`): a restart of a VM at an epoch another restart of it
 * had reached is counted once per repeat; restarts at new epochs, of other
 * VMs, and other events are not.
 */
import { describe, expect, it } from 'vitest'
import { repeatedRestarts } from '../../src/chaos/report.ts'
import type { AgentEvent } from '../../src/chaos/observe.ts'

const restarted = (agent: number, id: string, epoch: number): AgentEvent => ({ agent, type: 'vm.restarted', atMs: agent * 10, data: { id, epoch, ms: 5 } })

describe('repeatedRestarts', () => {
  it('counts each restart at an epoch another restart of the same VM had reached', () => {
    expect(repeatedRestarts([])).toBe(0)
    expect(repeatedRestarts([restarted(0, 'vm-a', 1), restarted(1, 'vm-a', 2), restarted(2, 'vm-b', 1)])).toBe(0)
    expect(repeatedRestarts([
      restarted(0, 'vm-a', 1),
      restarted(1, 'vm-a', 1),
      restarted(2, 'vm-a', 1),
      restarted(3, 'vm-b', 1),
      { agent: 4, type: 'vm.fenced', atMs: 50, data: { id: 'vm-b', epoch: 1 } },
      restarted(5, 'vm-b', 2),
      restarted(6, 'vm-b', 2)
    ])).toBe(3)
  })
})
