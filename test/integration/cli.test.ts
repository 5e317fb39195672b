/**
 * The `discovery` command's contract: exit code 0 on success, 1 on a failed
 * operation, 2 on bad usage, a one-line error that says what to do, `--json`.
 * And `npm start`'s foreground cluster: Ctrl-C leaves no agent behind.
 */
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { BIN } from '../../src/cli/cluster.ts'
import { type AgentProcess, runCli, startAgent, tempDir, waitFor } from './helpers.ts'

let agent: AgentProcess
let api: string
const badClusterDir = tempDir('cluster-up-bad')

beforeAll(async () => {
  agent = await startAgent(['--data-dir', tempDir('cli'), '--api', '127.0.0.1:0', '--cpu', '4', '--mem', '8GiB', '--labels', 'zone=paris,rack=r1'])
  api = agent.api.url
})
afterAll(() => { agent.proc.kill('SIGKILL') })

function oneLine (s: string): void {
  expect(s.trim().split('\n')).toHaveLength(1)
  expect(s).toMatch(/^discovery: /)
}

describe('discovery vm and nodes', () => {
  it('creates, lists, shows and deletes a VM, in text and in JSON', async () => {
    const created = await runCli(['vm', 'create', '--cpu', '2', '--mem', '512MiB', '--name', 'web', '--zone', 'paris', '--api', api, '--json'])
    expect(created.code, created.stderr).toBe(0)
    const vm = JSON.parse(created.stdout)
    expect(vm).toMatchObject({ node: agent.peerId, state: 'creating' })
    expect(vm.id).toMatch(/^vm-/)

    const ls = await runCli(['vm', 'ls', '--api', api])
    expect(ls.code).toBe(0)
    expect(ls.stdout).toContain(vm.id)
    expect(ls.stdout).toContain('web')

    const show = await runCli(['vm', 'show', vm.id, '--api', api, '--json'])
    expect(JSON.parse(show.stdout)).toMatchObject({ id: vm.id, name: 'web', cpu: 2, memMiB: 512 })

    const nodes = await runCli(['nodes', '--api', api, '--json'])
    const list = JSON.parse(nodes.stdout)
    expect(list[0]).toMatchObject({ peerId: agent.peerId, capacity: { cpu: 4, memMiB: 8192 }, labels: { zone: 'paris', rack: 'r1' }, state: 'alive' })

    const del = await runCli(['vm', 'delete', vm.id, '--api', api])
    expect(del.code).toBe(0)
    expect(del.stdout).toContain('deleted')
  })

  it.each([
    [['vm', 'create', '--mem', '1GiB'], /--cpu/],
    [['vm', 'create', '--cpu', 'two', '--mem', '1GiB'], /--cpu.*whole number.*`two`/],
    [['vm', 'create', '--cpu', '1', '--mem', 'lots'], /--mem.*512MiB.*`lots`/],
    [['vm', 'create', '--cpu', '1', '--mem', '1GiB', '--label', 'novalue'], /key=value/],
    [['vm', 'frobnicate'], /unknown command/],
    [['agent', '--cpu', '0'], /--cpu.*whole number/],
    [['agent', '--listen', 'not-an-address'], /multiaddr/],
    [['agent', '--driver', 'xen'], /--driver/],
    [['cluster', 'up'], /--nodes/],
    [['cluster', 'up', '--nodes', '-3'], /--nodes/],
    // The flags cluster up passes on to its agents are refused before any agent starts (the dir stays empty: below).
    [['cluster', 'up', '--nodes', '3', '--max-connections', '-1', '--dir', badClusterDir], /--max-connections.*whole number from 2 to 10000.*`-1`/],
    [['cluster', 'up', '--nodes', '3', '--observers', '0', '--dir', badClusterDir], /--observers.*whole number/],
    [['cluster', 'up', '--nodes', '3', '--mem', 'lots', '--dir', badClusterDir], /--mem.*`lots`/],
    [['cluster', 'up', '--nodes', '3', '--driver', 'xen', '--dir', badClusterDir], /--driver/]
  ])('exits 2 with a one-line error on bad usage: %j', async (args, message) => {
    const r = await runCli(args[0] === 'vm' ? [...args, '--api', api] : args)
    expect(r.code).toBe(2)
    oneLine(r.stderr)
    expect(r.stderr).toMatch(message)
    if (args.includes(badClusterDir)) expect(existsSync(join(badClusterDir, 'cluster.json')), 'no agent started').toBe(false)
  })

  it.each([
    [['vm', 'create', '--cpu', '64', '--mem', '1GiB'], /no node can host 64 vCPU.*HTTP 503/],
    [['vm', 'create', '--cpu', '1', '--mem', '1GiB', '--zone', 'tokyo'], /do not match its zone/],
    [['vm', 'show', 'vm-0000000000'], /HTTP 404/],
    [['vm', 'delete', 'vm-0000000000'], /HTTP 404/],
    [['vm', 'migrate', 'vm-0000000000'], /HTTP 404/]
  ])('exits 1 with a one-line error when the operation fails: %j', async (args, message) => {
    const r = await runCli([...args, '--api', api])
    expect(r.code).toBe(1)
    oneLine(r.stderr)
    expect(r.stderr).toMatch(message)
  })

  it('exits 1 and says how to start an agent when none answers', async () => {
    const r = await runCli(['nodes', '--api', 'http://127.0.0.1:9'])
    expect(r.code).toBe(1)
    oneLine(r.stderr)
    expect(r.stderr).toMatch(/cannot reach the agent.*npm start/)
  })
})

describe('the foreground cluster of `npm start`', () => {
  it('shows its agents and stops every one of them on Ctrl-C', async () => {
    const dir = tempDir('foreground')
    const child = spawn(process.execPath, [BIN, 'cluster', 'up', '--nodes', '3', '--foreground', '--dir', dir, '--base-port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    child.stdout.on('data', (d) => { stdout += String(d) })
    const exited = new Promise<number | null>(resolve => child.on('exit', (code) => { resolve(code) }))
    try {
      await waitFor('the live table', () => /discovery local cluster/.test(stdout) ? true : undefined, 60_000)
      const file = JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8')) as { nodes: Array<{ pid: number, api: string }> }
      // Ports picked by the system, recorded in the cluster's file and shown.
      for (const n of file.nodes) expect(n.api).toMatch(/^http:\/\/127\.0\.0\.1:[1-9]\d*$/)
      expect(stdout).toContain(`api ${file.nodes[0].api}`)
      const pids = file.nodes.map(n => n.pid)
      expect(pids).toHaveLength(3)
      child.kill('SIGINT')
      expect(await exited).toBe(0)
      expect(stdout).toContain('all agents stopped')
      for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow()
      expect(existsSync(join(dir, 'cluster.json'))).toBe(false)
    } finally {
      child.kill('SIGKILL')
    }
  })
})

describe('discovery sim', () => {
  it('prints the same report for the same seed, and compares the three algorithms on it', async () => {
    const args = ['sim', '--nodes', '48', '--duration', '900s', '--seed', '3', '--central-delay', '500ms', '--json']
    const [a, b] = await Promise.all([runCli(args), runCli(args)])
    expect(a.code, a.stderr).toBe(0)
    const strip = (s: string): unknown => JSON.parse(s, (k, v) => k === 'wallS' || k === 'centralComputeMeanMs' ? undefined : v)
    expect(strip(a.stdout)).toEqual(strip(b.stdout))
    const report = JSON.parse(a.stdout)
    expect(report.results.map((r: { algorithm: string }) => r.algorithm)).toEqual(['none', 'centralized', 'dvms'])
    const text = await runCli(['sim', '--nodes', '48', '--duration', '900s', '--seed', '3'])
    expect(text.code).toBe(0)
    expect(text.stdout).toMatch(/cumulated overload time/)
    const bad = await runCli(['sim', '--nodes', '48', '--scenario', 'nope'])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/--scenario.*vmplaces/)
  })

  it('--scenario placement reports its fields by these names, the same for a seed', async () => {
    const args = ['sim', '--scenario', 'placement', '--nodes', '60', '--seed', '4', '--json']
    const [a, b] = await Promise.all([runCli(args), runCli([...args, '--latency', 'wan'])])
    expect(a.code, a.stderr).toBe(0)
    expect(b.code, b.stderr).toBe(0)
    const report = JSON.parse(a.stdout)
    for (const field of ['placed', 'refused', 'falseRefusals', 'attemptsMean', 'overcommits', 'stalenessP99Ms', 'msgsPerNodePerS', 'wallS', 'simulatedS']) expect(report).toHaveProperty(field)
    expect(report).toMatchObject({ scenario: 'placement', nodes: 60, overcommits: 0, falseRefusals: 0 })
    expect(JSON.parse(b.stdout).profile).toBe('wan')
    const text = await runCli(['sim', '--scenario', 'placement', '--nodes', '60'])
    expect(text.stdout).toMatch(/state messages received per node per second/)
    const wrong = await runCli(['sim', '--scenario', 'placement', '--nodes', '60', '--algorithms', 'dvms'])
    expect(wrong.code).toBe(2)
    expect(wrong.stderr).toMatch(/--algorithms is not read by --scenario placement/)
  })
})
