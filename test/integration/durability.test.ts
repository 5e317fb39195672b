/**
 * Nothing acknowledged is lost: an agent SIGKILLed in the middle of a burst of
 * creates — many in flight through another agent and through itself, all for
 * it to host — restarts on its data dir with every VM that got a 201, and with
 * none that was refused (503). Creates whose answer never came (the agent's
 * own API died with it, or the other agent answered 504) may go either way.
 *
 * Refusals happen during the burst too: the creates come in pairs of one
 * spread group (two VMs of a group never share a node), one through each
 * agent, and the victim is the only node they may use, so one of each pair is
 * refused while the other is being written.
 */
import { afterAll, describe, expect, it } from 'vitest'
import { type AgentProcess, startAgent, tempDir, waitFor } from './helpers.ts'

const running: AgentProcess[] = []
afterAll(() => { for (const a of running) a.proc.kill('SIGKILL') })

const TOTAL = 240
const IN_FLIGHT = 32
/** The victim dies once this many creates were acknowledged. */
const KILL_AFTER = 50

interface Outcome { name: string, status: number | 'no-answer', id?: string, node?: string }

describe('SIGKILL in the middle of a burst of creates', () => {
  it('restarts with every VM it acknowledged, and none it refused', async () => {
    const other = await startAgent(['--data-dir', tempDir('durable-other'), '--api', '127.0.0.1:0', '--labels', 'role=other'])
    running.push(other)
    const victimArgs = ['--data-dir', tempDir('durable-victim'), '--api', '127.0.0.1:0', '--labels', 'role=victim', '--cpu', '512', '--mem', '512GiB', '--bootstrap', other.addrs[0]]
    const victim = await startAgent(victimArgs)
    running.push(victim)
    await waitFor('each agent to see the other', async () => {
      const views = await Promise.all([other, victim].map(async x => await x.api.call<any[]>('GET', '/v1/nodes')))
      return views.every(v => v.filter(n => n.state === 'alive').length === 2) ? true : undefined
    }, 30_000)

    const outcomes: Outcome[] = []
    let acked = 0
    let killed = false
    const createOne = async (i: number): Promise<void> => {
      const name = `burst-${i}`
      // Pairs: i and i ^ 1 share a spread group and go through different agents.
      const via = i % 2 === 0 ? victim : other
      const body = { name, cpu: 1, memMiB: 64, constraints: { labels: { role: 'victim' }, spread: `pair-${i >> 1}` } }
      try {
        const r = await via.api.request('POST', '/v1/vms', body)
        outcomes.push({ name, status: r.status, id: r.body?.id, node: r.body?.node })
        if (r.status === 201 && ++acked === KILL_AFTER && !killed) {
          killed = true
          victim.proc.kill('SIGKILL')
        }
      } catch {
        outcomes.push({ name, status: 'no-answer' })
      }
    }
    let next = 0
    await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
      while (next < TOTAL) await createOne(next++)
    }))
    expect(killed).toBe(true)
    expect(await victim.exited).toBeNull()

    const acknowledged = outcomes.filter(o => o.status === 201)
    const refused = outcomes.filter(o => o.status === 503)
    const byStatus = Object.fromEntries([...new Set(outcomes.map(o => o.status))].map(s => [s, outcomes.filter(o => o.status === s).length]))
    console.log(`durability: ${JSON.stringify(byStatus)} over ${TOTAL} creates, victim killed after ${KILL_AFTER} acknowledgements`)
    expect(acknowledged.length).toBeGreaterThanOrEqual(KILL_AFTER)
    expect(refused.length).toBeGreaterThan(0)
    for (const o of acknowledged) expect(o.node).toBe(victim.peerId)
    // Some creates were still in flight when it died.
    expect(outcomes.length).toBe(TOTAL)

    const again = await startAgent(victimArgs)
    running.push(again)
    expect(again.peerId).toBe(victim.peerId)
    const stored = await again.api.call<any[]>('GET', '/v1/vms')
    const storedIds = new Set(stored.map(v => v.id))
    const storedNames = new Set(stored.map(v => v.name))
    const lost = acknowledged.filter(o => !storedIds.has(o.id))
    expect(lost, 'acknowledged with 201, missing after the restart').toEqual([])
    const resurrected = refused.filter(o => storedNames.has(o.name))
    expect(resurrected, 'refused with 503, present after the restart').toEqual([])
    // A spread group still never has two VMs on the node.
    const groups = stored.map(v => v.spread).filter(g => g != null)
    expect(new Set(groups).size).toBe(groups.length)
  }, 120_000)
})
