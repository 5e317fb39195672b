/**
 * `discovery cluster restart I`: a killed agent of a local cluster is started
 * again with the command line `cluster up` recorded (same data dir, same
 * peer id, same addresses), cluster.json keeps its new pid, and `cluster
 * down` stops it.
 */
import { afterAll, describe, expect, it } from 'vitest'
import { alive } from '../../src/cli/cluster.ts'
import { ApiClient, readCluster, runCli, tempDir, waitFor } from './helpers.ts'

const dir = tempDir('cluster-restart')

afterAll(async () => {
  await runCli(['cluster', 'down', '--dir', dir, '--purge'])
})

describe('cluster restart', () => {
  it('restarts a killed agent on its data dir, keeps cluster.json current, and cluster down stops it', async () => {
    const up = await runCli(['cluster', 'up', '--nodes', '3', '--dir', dir, '--base-port', '0', '--cpu', '4', '--admin', '--json'], 120_000)
    expect(up.code, up.stderr).toBe(0)
    const before = readCluster(dir)
    expect(before.tokenFile).toBeTypeOf('string')
    for (const m of before.nodes) {
      expect(m.argv).toContain(m.dataDir)
      // The ports the system picked, pinned: a restart comes back on the same addresses.
      expect(m.argv?.join(' ')).toContain(`--api ${m.api.replace('http://', '')}`)
      expect(m.argv?.join(' ')).toContain(`--listen ${m.listen}`)
    }
    const token = (await import('node:fs')).readFileSync(before.tokenFile!, 'utf8').trim()
    const api = (i: number): ApiClient => new ApiClient(readCluster(dir).nodes[i].api, token, 5_000)
    const peerId = (await api(1).call('GET', '/v1/health')).peerId
    expect((await new ApiClient(before.nodes[1].api, undefined, 5_000).request('GET', '/v1/nodes')).status).toBe(401)

    process.kill(before.nodes[1].pid, 'SIGKILL')
    await waitFor('agent 1 gone', () => alive(before.nodes[1].pid) ? undefined : true, 10_000)
    const restart = await runCli(['cluster', 'restart', '1', '--dir', dir, '--json'], 90_000)
    expect(restart.code, restart.stderr).toBe(0)
    const after = readCluster(dir)
    const m = after.nodes[1]
    expect(m.pid).not.toBe(before.nodes[1].pid)
    expect(m.pid).toBe(JSON.parse(restart.stdout).pid)
    expect(alive(m.pid)).toBe(true)
    // Same identity, same address: it is the same member coming back, and the others see it alive again.
    expect(m.api).toBe(before.nodes[1].api)
    expect((await api(1).call('GET', '/v1/health')).peerId).toBe(peerId)
    await waitFor('agents 0 and 2 see agent 1 alive', async () => {
      const views = await Promise.all([0, 2].map(async i => await api(i).call<Array<{ peerId: string, state: string }>>('GET', '/v1/nodes')))
      return views.every(v => v.find(n => n.peerId === peerId)?.state === 'alive') ? true : undefined
    }, 30_000, 250)

    const status = await runCli(['cluster', 'status', '--dir', dir, '--json'])
    expect(status.code, status.stdout).toBe(0)
    expect(JSON.parse(status.stdout).every((r: { up: boolean }) => r.up)).toBe(true)

    const down = await runCli(['cluster', 'down', '--dir', dir, '--json'], 60_000)
    expect(down.code).toBe(0)
    expect(JSON.parse(down.stdout).stopped).toBe(3)
    await waitFor('every agent stopped, the restarted one too', () => after.nodes.every(n => !alive(n.pid)) ? true : undefined, 15_000)
  })
})
