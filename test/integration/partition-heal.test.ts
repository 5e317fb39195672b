/**
 * A partition and its heal, with six real agents and the admin route: the
 * three agents of side L and the three of side R refuse every connection
 * with the other side (the connection gater, both ways, on both sides). Each side declares the other dead and
 * restarts the VMs it holds records of; VMs are created and deleted on both
 * sides — among them a VM deleted on one side while the other side runs its
 * restarted copy. On heal, exactly one copy of each VM that should exist
 * remains (the higher epoch wins, with its proof) and no deleted VM comes
 * back (tombstones reach the copies of the other side).
 */
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { replicaSet } from '../../src/core/replica-rule.ts'
import { Ring } from '../../src/core/ring.ts'
import { type AgentProcess, metricValue, startAgent, tempDir, waitFor } from './helpers.ts'

const token = randomBytes(16).toString('hex')
const dir = tempDir('partition')
const tokenFile = join(dir, 'api.token')
writeFileSync(tokenFile, token + '\n', { mode: 0o600 })
const N = 6
/** How long an agent may take to start: seconds on a quiet machine, tens of them when npm test runs other clusters beside. */
const STARTUP_MS = 90_000
const VMS = 36
let agents: AgentProcess[] = []

interface Vm { id: string, node: string, state: string, epoch: number }

const args = (i: number, bootstrap?: AgentProcess): string[] => [
  '--admin', '--api-token-file', tokenFile, '--data-dir', join(dir, `agent-${i}`), '--api', '127.0.0.1:0',
  '--cpu', '32', '--mem', '32GiB', '--boot-delay', '50ms', ...(bootstrap != null ? ['--bootstrap', bootstrap.addrs[0]] : [])
]

async function metric (a: AgentProcess, name: string): Promise<number> {
  return metricValue(await (await fetch(`${a.api.url}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text(), name)
}

/** id → the copies that run, across `among`. */
async function copies (among: AgentProcess[]): Promise<Map<string, Vm[]>> {
  const out = new Map<string, Vm[]>()
  for (const list of await Promise.all(among.map(async a => await a.api.call<Vm[]>('GET', '/v1/vms')))) {
    for (const vm of list) out.set(vm.id, [...(out.get(vm.id) ?? []), vm])
  }
  return out
}

async function sees (a: AgentProcess, others: AgentProcess[], status: string): Promise<boolean> {
  const nodes = await a.api.call<Array<{ peerId: string, state: string }>>('GET', '/v1/nodes')
  return others.every(o => nodes.find(n => n.peerId === o.peerId)?.state === status)
}

beforeAll(async () => {
  const first = await startAgent(args(0), STARTUP_MS, { token })
  agents = [first, ...await Promise.all(Array.from({ length: N - 1 }, async (_, i) => await startAgent(args(i + 1, first), STARTUP_MS, { token })))]
  await waitFor('every agent to see the six alive', async () => (await Promise.all(agents.map(async a => await sees(a, agents, 'alive')))).every(Boolean) ? true : undefined, 60_000)
}, 240_000)

afterAll(() => { for (const a of agents) a.proc.kill('SIGKILL') })

describe('a partition into two sides of three, and its heal', () => {
  it('leaves exactly one copy of each VM that should exist, and none of the deleted ones', async () => {
    const ids = agents.map(a => a.peerId)
    const ring = new Ring(ids)
    // Three neighbours on the ring on each side: some VMs have both holders on their owner's side, some one or two across.
    const byRing = ring.ids().map(id => agents[ids.indexOf(id)])
    const L = byRing.slice(0, 3)
    const R = byRing.slice(3)
    const owners = new Map<string, string>()
    await Promise.all(Array.from({ length: VMS }, async (_, i) => {
      const res = await agents[i % N].api.request('POST', '/v1/vms', { name: `p-${i}`, cpu: 1, memMiB: 256 })
      expect(res.status, JSON.stringify(res.body)).toBe(201)
      owners.set(res.body.id, res.body.node)
    }))
    await waitFor('every record held by two peers', async () => {
      const held = await Promise.all(agents.map(async a => await metric(a, 'discovery_replicas_held')))
      return held.reduce((a, b) => a + b, 0) === 2 * VMS ? true : undefined
    }, 30_000)

    // Which side restarts what: a VM whose owner is on one side is restarted on the other if one of its holders is there.
    const side = (peer: string): AgentProcess[] => L.some(a => a.peerId === peer) ? L : R
    const restartedOn = (id: string): AgentProcess[] | undefined => {
      const owner = owners.get(id)!
      const other = side(owner) === L ? R : L
      return replicaSet(ring, owner, 2).some(h => other.some(a => a.peerId === h)) ? other : undefined
    }
    const crossing = [...owners.keys()].filter(id => restartedOn(id) != null)
    expect(crossing.length).toBeGreaterThan(0)

    // Both sides block: a side blocked by the other alone still sees its redialer's connections open and close (README, Partitions on demand).
    for (const a of L) expect((await a.api.request('POST', '/v1/admin/partition', { peers: R.map(r => r.peerId) })).status).toBe(200)
    for (const a of R) expect((await a.api.request('POST', '/v1/admin/partition', { peers: L.map(l => l.peerId) })).status).toBe(200)
    // A holder sees its owner dead 3 s after their connection closes; a second holder that was not connected to the
    // first one waits for the view to declare that one dead by silence (60 s) before it takes over: hence the deadline.
    const t1 = Date.now()
    await waitFor('each side to run the VMs it restarted from the other', async () => {
      const [onL, onR] = await Promise.all([copies(L), copies(R)])
      return crossing.every(id => (restartedOn(id) === L ? onL : onR).get(id)?.length === 1) ? true : undefined
    }, 120_000, 250)
    const restartedMs = Date.now() - t1

    // Deletes on both sides: a restarted copy (its original runs on the other side), an original whose
    // restarted copy runs on the other side, and a VM that never crossed.
    const deleted: string[] = []
    // Through the agent of that side that runs it (another agent of the side may not have its gossip yet).
    const del = async (among: AgentProcess[], id: string): Promise<void> => {
      const runner = (await copies(among)).get(id)?.[0].node
      const via = among.find(a => a.peerId === runner)
      expect(via, `${id} runs on this side`).toBeDefined()
      const res = await via!.api.request('DELETE', `/v1/vms/${id}`)
      expect(res.status, JSON.stringify(res.body)).toBe(200)
      deleted.push(id)
    }
    const restartedOnR = crossing.filter(id => restartedOn(id) === R)
    const restartedOnL = crossing.filter(id => restartedOn(id) === L)
    const stayed = [...owners.keys()].filter(id => restartedOn(id) == null)
    if (restartedOnR.length > 0) await del(R, restartedOnR[0])
    if (restartedOnR.length > 1) await del(L, restartedOnR[1])
    if (restartedOnL.length > 0) await del(L, restartedOnL[0])
    if (restartedOnL.length > 1) await del(R, restartedOnL[1])
    await del(side(owners.get(stayed[0])!), stayed[0])
    expect(deleted.length).toBeGreaterThanOrEqual(3)
    // Creates on both sides.
    const made: string[] = []
    for (const via of [L[0], R[0], L[2], R[2]]) {
      const res = await via.api.request('POST', '/v1/vms', { cpu: 1, memMiB: 256 })
      expect(res.status, JSON.stringify(res.body)).toBe(201)
      made.push(res.body.id)
    }

    const t0 = Date.now()
    for (const a of agents) expect((await a.api.request('POST', '/v1/admin/heal', {})).status).toBe(200)
    const want = [...owners.keys(), ...made].filter(id => !deleted.includes(id)).sort()
    await waitFor('exactly one copy of each VM that should exist, none of the deleted', async () => {
      const now = await copies(agents)
      return want.every(id => now.get(id)?.length === 1) && now.size === want.length ? true : undefined
    }, 60_000, 250)
    const onceMs = Date.now() - t0
    await waitFor('every view to agree: six agents alive, each VM on the agent that runs it', async () => {
      const now = await copies(agents)
      const views = await Promise.all(agents.map(async a => await a.api.call<Vm[]>('GET', '/v1/vms?scope=cluster')))
      const alive = await Promise.all(agents.map(async a => await sees(a, agents.filter(o => o !== a), 'alive')))
      return alive.every(Boolean) && views.every(v => v.length === want.length && v.every(vm => now.get(vm.id)?.[0].node === vm.node)) ? true : undefined
    }, 60_000, 250)
    const fenced = (await Promise.all(agents.map(async a => await metric(a, 'discovery_vms_fenced_total')))).reduce((a, b) => a + b, 0)
    process.stdout.write(`partition: ${crossing.length} of ${VMS} VMs restarted across within ${restartedMs} ms, ${deleted.length} deleted and ${made.length} created during it; after the heal each VM once within ${onceMs} ms, views agreeing within ${Date.now() - t0} ms; ${fenced} copies fenced\n`)
    expect(fenced).toBeGreaterThan(0)
    // Its waits add up to more than the default 120 s: up to 120 s for the restarts across (a death by silence takes
    // 60 s), then up to 60 s each for the heal and the views.
  }, 330_000)
})
