/**
 * An agent stopped and started again on the same data dir comes back with
 * the same peer id and the same VMs: identity and VM records are durable.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { type AgentProcess, startAgent, tempDir, waitFor } from './helpers.ts'

const running: AgentProcess[] = []
afterEach(() => { for (const a of running.splice(0)) a.proc.kill('SIGKILL') })

async function start (dataDir: string): Promise<AgentProcess> {
  const agent = await startAgent(['--data-dir', dataDir, '--api', '127.0.0.1:0', '--cpu', '4', '--mem', '4GiB'])
  running.push(agent)
  return agent
}

describe('restart on the same data dir', () => {
  it.each(['SIGTERM', 'SIGKILL'] as const)('keeps its peer id and its VMs after %s', async (signal) => {
    const dataDir = tempDir('restart')
    const first = await start(dataDir)
    const ids: string[] = []
    for (let i = 0; i < 3; i++) {
      const res = await first.api.request('POST', '/v1/vms', { name: `db-${i}`, cpu: 1, memMiB: 512, labels: { tier: 'db' } })
      expect(res.status).toBe(201)
      expect(res.body.node).toBe(first.peerId)
      ids.push(res.body.id)
    }
    first.proc.kill(signal)
    expect(await first.exited).toBe(signal === 'SIGTERM' ? 0 : null)

    const second = await start(dataDir)
    expect(second.peerId).toBe(first.peerId)
    const vms = await second.api.call<any[]>('GET', '/v1/vms')
    expect(vms.map(v => v.id).sort()).toEqual([...ids].sort())
    expect(vms.map(v => v.name).sort()).toEqual(['db-0', 'db-1', 'db-2'])
    await waitFor('the restored VMs to run again', async () => {
      const list = await second.api.call<any[]>('GET', '/v1/vms')
      return list.every(v => v.state === 'running') ? true : undefined
    })
    const nodes = await second.api.call<any[]>('GET', '/v1/nodes')
    expect(nodes.find(n => n.peerId === second.peerId)?.used).toEqual({ cpu: 3, memMiB: 1536 })
    // The restored usage still counts: a 2 vCPU VM no longer fits on 4 vCPU.
    const tooBig = await second.api.request('POST', '/v1/vms', { cpu: 2, memMiB: 512 })
    expect(tooBig.status).toBe(503)
  })
})
