/**
 * `cluster up --per-process K`: several agents in one process, each its own
 * libp2p node, store, API port and log. Nine agents with K = 4 run in fewer
 * processes than agents, every agent sees nine alive, VMs created through
 * every API are placed on agents of several processes and show in every
 * view; each agent's replica holders are in two other processes, so a
 * SIGKILL of a whole process loses none of its VMs; `cluster restart` of one
 * of them is refused (it shares its process), and `cluster down` stops every
 * process (the one killed too).
 */
import { readFileSync } from 'node:fs'
import { afterAll, describe, expect, it } from 'vitest'
import { alive, type ClusterFile } from '../../src/cli/cluster.ts'
import { ApiClient, metricValue, runCli, tempDir, waitFor } from './helpers.ts'

const N = 9
const K = 4
const VMS = 18
const dir = tempDir('per-process')
let file: ClusterFile | undefined

afterAll(async () => {
  if (file != null) await runCli(['cluster', 'down', '--dir', dir, '--purge'])
})

describe('cluster up --per-process', () => {
  it('nine agents in processes of up to four: all alive everywhere, VMs placed across processes and in every view; one is not restarted alone; down stops them all', async () => {
    const up = await runCli(['cluster', 'up', '--nodes', String(N), '--per-process', String(K), '--dir', dir, '--base-port', '0', '--cpu', '8', '--mem', '16GiB', '--wait', '120s', '--json'], 200_000)
    expect(up.code, up.stderr).toBe(0)
    file = JSON.parse(up.stdout) as ClusterFile
    const pids = [...new Set(file.nodes.map(m => m.pid))]
    // The first agent alone (the others need its address), then the rest in processes of up to K.
    expect(pids.length).toBeLessThan(N)
    expect(pids.length).toBeGreaterThanOrEqual(1 + Math.ceil((N - 1) / K))
    for (const pid of pids) {
      const shared = file.nodes.filter(m => m.pid === pid)
      expect(shared.length).toBeLessThanOrEqual(K)
      // Each its own port, data dir and log, the same group.
      expect(new Set(shared.map(m => m.api)).size).toBe(shared.length)
      expect(new Set(shared.map(m => m.dataDir)).size).toBe(shared.length)
      expect(new Set(shared.map(m => m.group)).size).toBe(1)
      expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8')).toContain('agents')
    }
    const apis = file.nodes.map(m => new ApiClient(m.api))
    const views = await Promise.all(apis.map(async a => await a.call<Array<{ state: string }>>('GET', '/v1/nodes')))
    for (const v of views) expect(v.filter(n => n.state === 'alive')).toHaveLength(N)

    const placed = await Promise.all(Array.from({ length: VMS }, async (_, i) => {
      const res = await apis[i % N].request('POST', '/v1/vms', { name: `pp-${i}`, cpu: 1, memMiB: 256 })
      expect(res.status, JSON.stringify(res.body)).toBe(201)
      return res.body as { id: string, node: string }
    }))
    const ids = await Promise.all(apis.map(async a => (await a.call('GET', '/v1/health')).peerId as string))
    const pidOf = (peer: string): number => file!.nodes[ids.indexOf(peer)].pid
    expect(new Set(placed.map(p => pidOf(p.node))).size).toBeGreaterThan(1)
    await waitFor('every VM in every agent\'s view', async () => {
      const all = await Promise.all(apis.map(async a => await a.call<Array<{ id: string }>>('GET', '/v1/vms?scope=cluster')))
      return all.every(v => placed.every(p => v.some(x => x.id === p.id))) ? true : undefined
    }, 60_000, 250)

    // A VM's holders are taken from other processes than its owner's (its failure domain): each agent's last
    // `replica holders changed` line names two peers of two other processes (three processes: agent 0's and two of K).
    const lastHolders = (log: string): string[] | undefined => readFileSync(log, 'utf8').split('\n').filter(l => l.includes('"replica holders changed"')).map(l => JSON.parse(l).holders as string[]).at(-1)
    await waitFor('every agent\'s holders in two other processes', async () => file!.nodes.every((m, i) => {
      const h = lastHolders(m.log)
      return h != null && h.length === 2 && h.every(p => pidOf(p) !== pidOf(ids[i])) && pidOf(h[0]) !== pidOf(h[1])
    }) ? true : undefined, 30_000, 250)
    await waitFor('every record with its holders', async () => {
      const pending = await Promise.all(file!.nodes.map(async m => metricValue(await (await fetch(`${m.api}/metrics`)).text(), 'discovery_replicas_pending')))
      return pending.every(v => v === 0) ? true : undefined
    }, 30_000, 250)
    // SIGKILL a whole process of K agents: with the default two holders, none of its VMs is lost.
    const victim = file.nodes.find(m => m.group != null && m.group !== m.index)!.pid
    const killed = new Set(file.nodes.filter(m => m.pid === victim).map(m => ids[file!.nodes.indexOf(m)]))
    const onVictim = placed.filter(p => killed.has(p.node)).length
    process.kill(victim, 'SIGKILL')
    const live = apis.filter((_, i) => !killed.has(ids[i]))
    await waitFor('every VM running exactly once on a live agent', async () => {
      const lists = await Promise.all(live.map(async a => await a.call<Array<{ id: string }>>('GET', '/v1/vms')))
      const runs = lists.flat()
      return placed.every(p => runs.filter(r => r.id === p.id).length === 1) ? true : undefined
    }, 90_000, 250)
    process.stdout.write(`per-process: a process of ${killed.size} agents SIGKILLed with ${onVictim} of ${VMS} VMs; all ${VMS} running again once\n`)
    expect(onVictim).toBeGreaterThan(0)

    const restart = await runCli(['cluster', 'restart', '2', '--dir', dir])
    expect(restart.code).toBe(1)
    expect(restart.stderr).toMatch(/runs in one process with agents/)

    const down = await runCli(['cluster', 'down', '--dir', dir, '--json'])
    expect(down.code, down.stderr).toBe(0)
    expect(JSON.parse(down.stdout).stopped).toBe(N - killed.size)
    file = undefined
    expect(pids.filter(alive)).toEqual([])
  }, 400_000)
})
