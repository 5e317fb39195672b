/**
 * The view syncs an agent asks and answers are counted in /metrics: a newcomer
 * asks the peer it connects to in its first minute (`why="join"`), that peer
 * counts the answer; the states answers bring are counted by how they merged
 * (with two agents, gossip may have brought the peer's state first: stale).
 */
import { afterAll, describe, expect, it } from 'vitest'
import { type AgentProcess, metricValue, startAgent, tempDir, waitFor } from './helpers.ts'

const running: AgentProcess[] = []
afterAll(() => { for (const a of running) a.proc.kill('SIGKILL') })

describe('view sync metrics', () => {
  it('counts the join sync on both sides and the states it brought', async () => {
    const a = await startAgent(['--data-dir', tempDir('vsm-a'), '--api', '127.0.0.1:0', '--listen', '/ip4/127.0.0.1/tcp/0'])
    running.push(a)
    const b = await startAgent(['--data-dir', tempDir('vsm-b'), '--api', '127.0.0.1:0', '--listen', '/ip4/127.0.0.1/tcp/0', '--bootstrap', a.addrs[0]])
    running.push(b)
    const metrics = async (x: AgentProcess): Promise<string> => await (await fetch(`${x.api.url}/metrics`)).text()
    const asked = await waitFor('the newcomer\'s join sync counted', async () => {
      const text = await metrics(b)
      return metricValue(text, 'discovery_view_syncs_total', { why: 'join' }) >= 1 ? text : undefined
    }, 30_000)
    expect(asked).toContain('# TYPE discovery_view_sync_states_total counter')
    const merged = ['new', 'updated', 'stale'].map(result => metricValue(asked, 'discovery_view_sync_states_total', { result }))
    expect(metricValue(asked, 'discovery_view_sync_states_total')).toBe(merged[0] + merged[1] + merged[2])
    const answered = await waitFor('the peer\'s answer counted', async () => {
      const text = await metrics(a)
      return metricValue(text, 'discovery_view_syncs_answered_total') >= 1 ? text : undefined
    }, 30_000)
    expect(metricValue(answered, 'discovery_view_syncs_answered_total')).toBeGreaterThanOrEqual(1)
  }, 90_000)
})
