/**
 * A create whose owner stops answering after it took the request: the
 * placing agent asks the commit again until the owner answers, and the
 * answer is final — the VM is placed exactly once, or not at all, and the
 * client never gets `504 placement_uncertain` for a pause shorter than two
 * lease lifetimes. Real processes; the owner is paused with SIGSTOP for
 * longer than two request timeouts (10 s each in the local profile), which
 * a single retry of the commit would not survive.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { type AgentProcess, metricValue, startAgent, tempDir, waitFor } from './helpers.ts'

const PAUSE_MS = 22_000

const running: AgentProcess[] = []
afterEach(() => {
  for (const a of running.splice(0)) {
    a.proc.kill('SIGCONT')
    a.proc.kill('SIGKILL')
  }
})

describe('a commit whose answer is lost', () => {
  it('is asked again until the paused owner answers: placed once, never 504', async () => {
    const owner = await startAgent(['--data-dir', tempDir('retry-owner'), '--api', '127.0.0.1:0', '--cpu', '8', '--mem', '8GiB'])
    running.push(owner)
    // The placing agent has room for no 2-vCPU VM itself: every such create goes to the owner.
    const placer = await startAgent(['--data-dir', tempDir('retry-placer'), '--api', '127.0.0.1:0', '--cpu', '1', '--mem', '8GiB', '--bootstrap', owner.addrs[0]])
    running.push(placer)
    await waitFor('the placing agent to see the owner alive', async () => {
      const nodes = await placer.api.call<Array<{ peerId: string, state: string }>>('GET', '/v1/nodes')
      return nodes.some(n => n.peerId === owner.peerId && n.state === 'alive') ? true : undefined
    })
    // A first create opens the placing agent's request stream to the owner.
    const first = await placer.api.request('POST', '/v1/vms', { name: 'warm', cpu: 2, memMiB: 512 })
    expect(first.status, JSON.stringify(first.body)).toBe(201)
    expect(first.body.node).toBe(owner.peerId)

    owner.proc.kill('SIGSTOP')
    const t0 = Date.now()
    const creating = placer.api.request('POST', '/v1/vms', { name: 'paused', cpu: 2, memMiB: 512 })
    await new Promise(resolve => setTimeout(resolve, PAUSE_MS))
    owner.proc.kill('SIGCONT')
    const res = await creating
    const tookMs = Date.now() - t0

    expect(res.status, JSON.stringify(res.body)).not.toBe(504)
    expect([201, 503]).toContain(res.status)
    expect(tookMs).toBeGreaterThanOrEqual(PAUSE_MS)
    // The answer is final: the owner holds the VM exactly when the create said so, and no reservation is left.
    const settled = await waitFor('the owner to settle: no reservation left', async () => {
      const nodes = await owner.api.call<Array<{ peerId: string, reserved: { cpu: number }, used: { cpu: number } }>>('GET', '/v1/nodes')
      return nodes.find(n => n.peerId === owner.peerId)?.reserved.cpu === 0 ? nodes : undefined
    }, 30_000)
    const ownerNode = settled.find(n => n.peerId === owner.peerId)!
    // What the owner's ledger holds is exactly the VMs it runs: the warm one, and the paused one when the create said 201.
    expect(ownerNode.used.cpu).toBe(res.status === 201 ? 4 : 2)
    const vms = await owner.api.call<Array<{ id: string, name: string }>>('GET', '/v1/vms')
    const paused = vms.filter(v => v.name === 'paused')
    if (res.status === 201) expect(paused.map(v => v.id)).toEqual([res.body.id])
    else expect(paused).toEqual([])
    const metrics = await (await fetch(`${placer.api.url}/metrics`)).text()
    expect(metricValue(metrics, 'discovery_placements_total', { result: 'failed' })).toBe(0)
  }, 90_000)
})
