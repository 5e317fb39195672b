/**
 * An agent whose bootstrap peer was not up yet when it started, and that was
 * then dialled by a later agent, keeps dialling its bootstrap peer until it
 * reaches it, and the two groups' views merge (a peer connected and still
 * unknown 2 s later is asked for its states). Before, the agent stopped at the
 * first connection whoever opened it: local agents each given the one before
 * as bootstrap, started in waves, split into groups that never met.
 */
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { afterAll, describe, expect, it } from 'vitest'
import { type AgentProcess, startAgent, tempDir, waitFor } from './helpers.ts'

const running: AgentProcess[] = []
afterAll(() => { for (const a of running) a.proc.kill('SIGKILL') })

/** A TCP port free now (the system's pick, released). */
async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port
      server.close(() => { resolve(port) })
    })
  })
}

describe('bootstrap reach', () => {
  it('an agent dialled by another before its bootstrap peer was up still joins that peer, and all three views meet', async () => {
    const port = await freePort()
    const xLog = `${tempDir('reach-logs')}/x.log`
    const start = async (name: string, extra: string[]): Promise<AgentProcess> => {
      const a = await startAgent(['--data-dir', tempDir(`reach-${name}`), '--api', '127.0.0.1:0', ...extra], 30_000, name === 'x' ? { logFile: xLog } : {})
      running.push(a)
      return a
    }
    // x's bootstrap peer (a, on `port`) is not up yet: x's first dials fail.
    const x = await start('x', ['--listen', '/ip4/127.0.0.1/tcp/0', '--bootstrap', `/ip4/127.0.0.1/tcp/${port}`])
    // Alone, it says so: a warning in its log, naming the failed dials, and `joined: false` in its health.
    const warning = await waitFor('x warns that no bootstrap peer was reached', async () => {
      const line = readFileSync(xLog, 'utf8').split('\n').find(l => l.includes('no bootstrap peer reached yet'))
      return line != null ? JSON.parse(line) : undefined
    }, 20_000)
    expect(warning).toMatchObject({ level: 40, bootstrap: 1, lastAddr: `/ip4/127.0.0.1/tcp/${port}` })
    expect(warning.failures).toBeGreaterThanOrEqual(1)
    expect(warning.lastError).toMatch(/ECONNREFUSED|refused/i)
    expect(await x.api.call<{ joined: boolean }>('GET', '/v1/health')).toMatchObject({ status: 'ok', joined: false })
    // y dials x: x has a connection, from a peer that knows no more than x.
    const y = await start('y', ['--listen', '/ip4/127.0.0.1/tcp/0', '--bootstrap', x.addrs[0]])
    await waitFor('x and y see each other', async () => {
      const nodes = await x.api.call<Array<{ peerId: string }>>('GET', '/v1/nodes')
      return nodes.some(n => n.peerId === y.peerId) ? true : undefined
    }, 30_000)
    const a = await start('a', ['--listen', `/ip4/127.0.0.1/tcp/${port}`])
    const all = [a.peerId, x.peerId, y.peerId].sort()
    for (const agent of [a, x, y]) {
      const seen = await waitFor('every agent sees all three alive', async () => {
        const nodes = await agent.api.call<Array<{ peerId: string, state: string }>>('GET', '/v1/nodes')
        const alive = nodes.filter(n => n.state === 'alive').map(n => n.peerId).sort()
        return alive.length === 3 ? alive : undefined
      }, 45_000)
      expect(seen).toEqual(all)
    }
    // x reached a at last: said in its log and its health.
    expect(await x.api.call<{ joined: boolean }>('GET', '/v1/health')).toMatchObject({ joined: true })
    expect(readFileSync(xLog, 'utf8')).toContain('bootstrap peer reached')
    expect(await a.api.call<{ joined: boolean }>('GET', '/v1/health')).toMatchObject({ joined: true })
  }, 150_000)
})
