/**
 * Who may join, end to end with real processes: `discovery keygen` writes a
 * key file (0600, the pnet format) and never over one; a malformed key file
 * stops the agent with an error naming the file and the format; an agent
 * that listens beyond loopback refuses to start without a key unless told
 * `--open-swarm`; an agent with another key cannot join; the API token comes
 * from a file or `$DISCOVERY_API_TOKEN`, never shows in the process list, and
 * a request without it or with a wrong one gets 401.
 */
import { randomBytes } from 'node:crypto'
import { readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { ApiClient, type AgentProcess, runCli, startAgent, tempDir, waitFor } from './helpers.ts'

const dir = tempDir('join')
const running: AgentProcess[] = []
afterAll(() => { for (const a of running) a.proc.kill('SIGKILL') })
const start = async (args: string[], opts: { env?: Record<string, string>, token?: string } = {}): Promise<AgentProcess> => {
  const a = await startAgent(['--api', '127.0.0.1:0', ...args], 30_000, opts)
  running.push(a)
  return a
}

describe('discovery keygen', () => {
  it('writes a key file of mode 0600 in the pnet format, refuses to overwrite one, and prints one without --out', async () => {
    const file = join(dir, 'swarm.key')
    const made = await runCli(['keygen', '--out', file])
    expect(made.code, made.stderr).toBe(0)
    expect(statSync(file).mode & 0o777).toBe(0o600)
    expect(readFileSync(file, 'utf8')).toMatch(/^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}\n$/)
    const again = await runCli(['keygen', '--out', file])
    expect(again.code).toBe(1)
    expect(again.stderr).toMatch(/exists already/)
    const printed = await runCli(['keygen'])
    expect(printed.stdout).toMatch(/^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}\n$/)
    expect(printed.stdout).not.toBe(readFileSync(file, 'utf8'))
  })
})

describe('the agent at start', () => {
  it('refuses a malformed key file, naming the file and the format expected', async () => {
    const bad = join(dir, 'bad.key')
    writeFileSync(bad, `/key/swarm/psk/1.0.0/\n/base16/\n${'ab'.repeat(16)}\n`, { mode: 0o600 })
    const r = await runCli(['agent', '--swarm-key', bad, '--data-dir', join(dir, 'bad'), '--api', '127.0.0.1:0'])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain(bad)
    expect(r.stderr).toMatch(/expected three lines: `\/key\/swarm\/psk\/1\.0\.0\/`, `\/base16\/`, then 64 hexadecimal digits/)
  })

  it('refuses to listen beyond loopback without a swarm key, unless told --open-swarm', async () => {
    const args = ['agent', '--listen', '/ip4/0.0.0.0/tcp/0', '--data-dir', join(dir, 'open'), '--api', '127.0.0.1:0']
    const r = await runCli(args)
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/reachable from other machines and there is no swarm key.*--open-swarm/)
    const lan = await runCli(['agent', '--profile', 'lan', '--data-dir', join(dir, 'lan'), '--api', '127.0.0.1:0'])
    expect(lan.code).toBe(2)
    const open = await start(['--listen', '/ip4/0.0.0.0/tcp/0', '--open-swarm', '--data-dir', join(dir, 'open')])
    expect((await open.api.call('GET', '/v1/health')).status).toBe('ok')
  })
})

describe('a cluster guarded by its swarm key', () => {
  it('lets in an agent with the same key and never one with another', async () => {
    const key = join(dir, 'swarm.key')
    const other = join(dir, 'other.key')
    expect((await runCli(['keygen', '--out', other])).code).toBe(0)
    const a = await start(['--swarm-key', key, '--data-dir', join(dir, 'a')])
    const b = await start(['--swarm-key', key, '--data-dir', join(dir, 'b'), '--bootstrap', a.addrs[0]])
    const rogue = await start(['--swarm-key', other, '--data-dir', join(dir, 'rogue'), '--bootstrap', a.addrs[0], '--log-level', 'debug'])
    let rogueLog = ''
    rogue.proc.stderr!.on('data', (d) => { rogueLog += String(d) })
    await waitFor('a and b to see each other', async () => {
      const nodes = await a.api.call<any[]>('GET', '/v1/nodes')
      return nodes.some(n => n.peerId === b.peerId && n.state === 'alive') ? true : undefined
    }, 30_000)
    await waitFor('the agent with another key to fail to dial', () => /dial failed/.test(rogueLog) ? true : undefined, 30_000)
    expect((await a.api.call<any[]>('GET', '/v1/nodes')).map(n => n.peerId)).not.toContain(rogue.peerId)
    expect((await rogue.api.call<any[]>('GET', '/v1/nodes')).map(n => n.peerId)).toEqual([rogue.peerId])
    // Nothing the rogue asks reaches the cluster: a create through it finds no node but itself.
    const vm = await rogue.api.call('POST', '/v1/vms', { cpu: 1, memMiB: 64 })
    expect(vm.node).toBe(rogue.peerId)
  }, 60_000)
})

describe('the API token', () => {
  const token = randomBytes(18).toString('base64url')
  const check = async (agent: AgentProcess): Promise<void> => {
    for (const t of [undefined, '', 'wrong-token-of-some-length', token.slice(1), token + 'x']) {
      const r = await new ApiClient(agent.api.url, t ?? '').request('GET', '/v1/nodes')
      expect(r.status, `token ${JSON.stringify(t)}`).toBe(401)
      expect(r.body).toMatchObject({ error: 'unauthorized' })
    }
    expect((await new ApiClient(agent.api.url, token).request('GET', '/v1/nodes')).status).toBe(200)
    // Never in the process list.
    expect(readFileSync(`/proc/${agent.proc.pid}/cmdline`, 'utf8')).not.toContain(token)
  }

  it('comes from --api-token-file', async () => {
    const file = join(dir, 'api.token')
    writeFileSync(file, token + '\n', { mode: 0o600 })
    await check(await start(['--api-token-file', file, '--data-dir', join(dir, 't1')], { token }))
  })

  it('comes from $DISCOVERY_API_TOKEN', async () => {
    await check(await start(['--data-dir', join(dir, 't2')], { env: { DISCOVERY_API_TOKEN: token }, token }))
  })

  it('refuses a token file that is missing or too short, and two sources at once', async () => {
    const short = join(dir, 'short.token')
    writeFileSync(short, 'abc\n', { mode: 0o600 })
    for (const [args, what] of [
      [['--api-token-file', join(dir, 'missing.token')], /cannot be read \(ENOENT\)/],
      [['--api-token-file', short], /at least 8 characters, got 3/],
      [['--api-token-file', short, '--api-token', 'x'.repeat(16)], /give one/]
    ] as const) {
      const r = await runCli(['agent', ...args, '--data-dir', join(dir, 't3'), '--api', '127.0.0.1:0'])
      expect(r.code).toBe(2)
      expect(r.stderr).toMatch(what)
    }
  })
})
