/**
 * deploy/: what can be checked on a machine without systemd as PID 1, without
 * a Docker engine and without edge hosts.
 * - The unit: `systemd-analyze verify` (no warning at all) and `security`; its
 *   ExecStart refers only to variables the environment file sets.
 * - The unit's rules against the real agent: the agent started with exactly
 *   the unit's command line, under strace, makes only system calls of
 *   @system-service, opens only the address families the unit allows and
 *   writes only in its state and cache directories; it joins a second agent
 *   with the same swarm key, not a third with another, and stops cleanly.
 * - compose.yaml, the Dockerfile: parsed, their structure checked.
 * - The playbook: `ansible-playbook --syntax-check`; its env template writes
 *   the same variables as deploy/systemd/discovery.env.
 * A check whose tool is missing is skipped, saying which tool.
 */
import { spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { afterAll, describe, expect, it } from 'vitest'
import { parse as parseYaml } from 'yaml'
import { BIN } from '../../src/cli/cluster.ts'
import { ApiClient, startAgent, tempDir, waitFor, type AgentProcess } from './helpers.ts'
import { expandCommandLine, parseEnvFile, parseUnit, referencedVariables, unitValue, unitValues } from './systemd-unit.ts'

const ROOT = resolve(import.meta.dirname, '../..')
const DEPLOY = join(ROOT, 'deploy')
const UNIT_FILE = join(DEPLOY, 'systemd/discovery.service')
const ENV_FILE = join(DEPLOY, 'systemd/discovery.env')
const UNIT_TEXT = readFileSync(UNIT_FILE, 'utf8')
const UNIT = parseUnit(UNIT_TEXT)
const ENV = parseEnvFile(readFileSync(ENV_FILE, 'utf8'))
/** The program the unit runs: a link to bin/discovery.js once installed. */
const INSTALLED_BIN = '/usr/local/bin/discovery'

function has (tool: string, args = ['--version']): boolean {
  const r = spawnSync(tool, args, { stdio: 'ignore' })
  return r.error == null && r.status === 0
}

const hasSystemdAnalyze = has('systemd-analyze')
const hasStrace = has('strace', ['-V'])
const hasAnsible = has('ansible-playbook')
const hasCompose = has('docker', ['compose', 'version'])

function skipping (tool: string, what: string): void {
  console.log(`deploy.test.ts: SKIPPED ${what}: \`${tool}\` is not on PATH (apt-get install ${tool === 'ansible-playbook' ? 'ansible-core' : tool === 'systemd-analyze' ? 'systemd' : tool})`)
}

/** The unit with its ExecStart pointing at a program that exists here, as systemd-analyze checks that it does. */
function unitForHere (dir: string): string {
  const path = join(dir, 'discovery.service')
  expect(UNIT_TEXT).toContain(`ExecStart=${INSTALLED_BIN} agent`)
  writeFileSync(path, UNIT_TEXT.replace(`ExecStart=${INSTALLED_BIN} `, `ExecStart=${BIN} `))
  return path
}

describe('the systemd unit', () => {
  it('passes systemd-analyze verify without a single warning', (ctx) => {
    if (!hasSystemdAnalyze) { skipping('systemd-analyze', 'systemd-analyze verify'); ctx.skip() }
    const unit = unitForHere(tempDir('unit'))
    const r = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8' })
    expect(r.stderr + r.stdout).toBe('')
    expect(r.status).toBe(0)
    // The check can fail: a unit with an unknown key is reported.
    const bad = join(tempDir('unit'), 'bad.service')
    writeFileSync(bad, readFileSync(unit, 'utf8').replace('Restart=on-failure', 'Restart=on-failure\nRestartt=always'))
    expect(spawnSync('systemd-analyze', ['verify', bad], { encoding: 'utf8' }).stderr).toMatch(/Unknown key 'Restartt'/)
  })

  it('has an exposure level of at most 2.0 in systemd-analyze security', (ctx) => {
    if (!hasSystemdAnalyze) { skipping('systemd-analyze', 'systemd-analyze security'); ctx.skip() }
    const r = spawnSync('systemd-analyze', ['security', '--offline=true', '--no-pager', unitForHere(tempDir('unit'))], { encoding: 'utf8' })
    const m = /Overall exposure level for discovery\.service: ([\d.]+)/.exec(r.stdout)
    expect(m, r.stdout + r.stderr).not.toBeNull()
    expect(Number(m![1])).toBeLessThanOrEqual(2.0)
  })

  it('is hardened as deploy/README.md says, and leaves W^X memory to V8', () => {
    const service = (key: string): string | undefined => unitValue(UNIT, 'Service', key)
    expect(service('DynamicUser')).toBe('yes')
    expect(service('StateDirectory')).toBe('discovery')
    expect(service('ProtectSystem')).toBe('strict')
    expect(service('ProtectHome')).toBe('yes')
    expect(service('PrivateTmp')).toBe('yes')
    expect(service('NoNewPrivileges')).toBe('yes')
    expect(service('CapabilityBoundingSet')).toBe('')
    expect(service('Restart')).toBe('on-failure')
    expect(service('RestartSec')).toMatch(/^\d+s$/)
    expect(Number(service('LimitNOFILE'))).toBeGreaterThanOrEqual(65536)
    // The agent gives itself 10 s to stop (src/cli/agent-command.ts) before it exits anyway.
    expect(Number(service('TimeoutStopSec')!.replace(/s$/, ''))).toBeGreaterThan(10)
    expect(service('SystemCallFilter')).toBe('@system-service')
    expect(service('SystemCallErrorNumber')).toBe('EPERM')
    expect(service('RestrictAddressFamilies')!.split(/\s+/).sort()).toEqual(['AF_INET', 'AF_INET6', 'AF_NETLINK', 'AF_UNIX'])
    expect(service('MemoryDenyWriteExecute')).toBeUndefined()
    expect(unitValues(UNIT, 'Service', 'LoadCredential')).toEqual(['swarm.key:/etc/discovery/swarm.key', 'api.token:/etc/discovery/api.token'])
    // No secret on the command line (every user's `ps` shows it) nor in the environment file.
    expect(unitValue(UNIT, 'Service', 'ExecStart')).not.toMatch(/--api-token |TOKEN/)
    expect([...ENV.keys()].filter(k => /TOKEN|KEY/.test(k))).toEqual([])
  })

  it('refers in ExecStart only to variables discovery.env sets, and the env file sets nothing the unit ignores', () => {
    const execStart = unitValue(UNIT, 'Service', 'ExecStart')!
    const used = referencedVariables(execStart)
    expect(used.filter(v => !ENV.has(v))).toEqual([])
    expect([...ENV.keys()].filter(v => !used.includes(v))).toEqual([])
    // Every variable is documented, with its default.
    const text = readFileSync(ENV_FILE, 'utf8')
    for (const name of ENV.keys()) {
      const before = text.slice(0, text.indexOf(`\n${name}=`))
      const comment = before.slice(before.lastIndexOf('\n\n'))
      expect(comment, name).toMatch(/Default:/)
    }
  })

  it('turns the environment file into the agent\'s flags as systemd expands them', () => {
    const env = new Map(ENV)
    env.set('DISCOVERY_EXTRA_ARGS', '--cpu-overcommit 2  --consolidate')
    const argv = expandCommandLine(unitValue(UNIT, 'Service', 'ExecStart')!, env, { S: '/var/lib', C: '/var/cache', d: '/run/credentials/discovery.service' })
    expect(argv.slice(0, 2)).toEqual([INSTALLED_BIN, 'agent'])
    const flag = (name: string): string => argv[argv.indexOf(name) + 1]
    expect(flag('--data-dir')).toBe('/var/lib/discovery')
    expect(flag('--swarm-key')).toBe('/run/credentials/discovery.service/swarm.key')
    expect(flag('--api-token-file')).toBe('/run/credentials/discovery.service/api.token')
    expect(argv).not.toContain('--api-token')
    expect(flag('--bootstrap')).toBe('') // an empty DISCOVERY_BOOTSTRAP is one empty argument: no peers
    expect(argv.slice(-3)).toEqual(['--cpu-overcommit', '2', '--consolidate'])
  })
})

/** Every system call a filter allows, from `systemd-analyze syscall-filter` (groups expanded). */
function allowedSyscalls (filter: string[]): Set<string> {
  const text = spawnSync('systemd-analyze', ['syscall-filter', '--no-pager'], { encoding: 'utf8' }).stdout
  const groups = new Map<string, string[]>()
  let current: string[] | undefined
  for (const line of text.split('\n')) {
    if (/^@[\w-]+$/.test(line)) { current = []; groups.set(line, current); continue }
    const item = line.trim()
    if (current != null && item !== '' && !item.startsWith('#')) current.push(item)
  }
  const out = new Set<string>()
  const add = (item: string, seen: Set<string>): void => {
    if (!item.startsWith('@')) { out.add(item); return }
    if (seen.has(item)) return
    seen.add(item)
    for (const x of groups.get(item) ?? []) add(x, seen)
  }
  for (const item of filter) add(item, new Set())
  return out
}

interface Trace { syscalls: Set<string>, families: Set<string>, writes: Set<string> }

const WRITE_FLAGS = /O_WRONLY|O_RDWR|O_CREAT|O_TRUNC/
const PATH_CALLS = /^(mkdir|mkdirat|unlink|unlinkat|rename|renameat|renameat2|rmdir|truncate|symlink|symlinkat|link|linkat|chmod|fchmodat|chown|fchownat)$/

function readTrace (file: string): Trace {
  const trace: Trace = { syscalls: new Set(), families: new Set(), writes: new Set() }
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^\d+\s+(?:<\.\.\. )?([a-z0-9_]+)(?:\(| resumed>)/.exec(line)
    if (m == null) continue
    const call = m[1]
    trace.syscalls.add(call)
    const family = /^\d+\s+socket\((AF_[A-Z0-9]+)/.exec(line)
    if (family != null) trace.families.add(family[1])
    const path = /"([^"]*)"/.exec(line)?.[1]
    if (path == null) continue
    if ((call === 'open' || call === 'openat' || call === 'creat') && (call === 'creat' || WRITE_FLAGS.test(line))) trace.writes.add(path)
    else if (PATH_CALLS.test(call)) trace.writes.add(path)
  }
  return trace
}

describe('the agent under the unit\'s rules', () => {
  const started: Array<{ kill: (s: NodeJS.Signals) => void }> = []
  const scratch: string[] = []
  afterAll(() => {
    for (const p of started) p.kill('SIGKILL')
    // strace's log is several MB.
    for (const d of scratch) rmSync(d, { recursive: true, force: true })
  })

  it('runs with the unit\'s command line, makes only allowed system calls and writes only its own directories', async (ctx) => {
    if (!hasStrace || !hasSystemdAnalyze) { skipping(hasStrace ? 'systemd-analyze' : 'strace', 'the agent under strace'); ctx.skip() }
    const dir = tempDir('unit-run')
    scratch.push(dir)
    // What systemd would set up: the state, cache and credentials directories.
    const dirs = { S: join(dir, 'state'), C: join(dir, 'cache'), d: join(dir, 'credentials') }
    for (const d of [join(dirs.S, 'discovery'), join(dirs.C, 'discovery'), dirs.d]) mkdirSync(d, { recursive: true, mode: 0o700 })
    // A swarm key made as deploy/README.md says (openssl rand -hex 32).
    const swarmKey = (hex: string): string => `/key/swarm/psk/1.0.0/\n/base16/\n${hex}\n`
    writeFileSync(join(dirs.d, 'swarm.key'), swarmKey(randomBytes(32).toString('hex')), { mode: 0o600 })
    const token = randomBytes(16).toString('hex')
    writeFileSync(join(dirs.d, 'api.token'), token + '\n', { mode: 0o600 })
    const env = new Map(ENV)
    // Port 0 for both (tests never bind fixed ports); 0.0.0.0 as in production, which is what needs AF_NETLINK.
    env.set('DISCOVERY_LISTEN', '/ip4/0.0.0.0/tcp/0')
    env.set('DISCOVERY_API_LISTEN', '127.0.0.1:0')
    env.set('DISCOVERY_LABELS', 'zone=unit-test')
    env.set('DISCOVERY_EXTRA_ARGS', '--json')
    const argv = expandCommandLine(unitValue(UNIT, 'Service', 'ExecStart')!, env, dirs)
    expect(argv[0]).toBe(INSTALLED_BIN)
    // The process environment systemd gives: the env file, the unit's Environment= lines, a PATH.
    const processEnv: Record<string, string> = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', ...Object.fromEntries(env) }
    for (const line of unitValues(UNIT, 'Service', 'Environment')) {
      const [k, v] = expandCommandLine(line, env, dirs)[0].split(/=(.*)/s)
      processEnv[k] = v
    }
    const traceFile = join(dir, 'trace.log')
    const strace = spawn('strace', ['-f', '-qq', '-o', traceFile, process.execPath, BIN, ...argv.slice(1)], { cwd: '/', env: processEnv, stdio: ['ignore', 'pipe', 'pipe'] })
    started.push(strace)
    let stderr = ''
    strace.stderr.on('data', (d) => { stderr = (stderr + String(d)).slice(-4000) })
    const exited = new Promise<number | null>(resolve => strace.on('exit', resolve))
    const ready = await new Promise<any>((resolve, reject) => {
      createInterface({ input: strace.stdout }).once('line', (line) => { resolve(JSON.parse(line)) })
      void exited.then(code => { reject(new Error(`agent exited with ${code}: ${stderr}`)) })
    })
    const agentPid = Number(readFileSync(`/proc/${strace.pid}/task/${strace.pid}/children`, 'utf8').trim().split(/\s+/)[0])
    expect(agentPid).toBeGreaterThan(0)
    // Killing strace would leave the agent running, detached: if the test fails, kill the agent itself.
    started.unshift({ kill: (signal) => { try { process.kill(agentPid, signal) } catch {} } })
    expect(ready.dataDir).toBe(join(dirs.S, 'discovery'))

    // The API wants the token; the labels came through.
    expect((await new ApiClient(ready.api, undefined).request('GET', '/v1/nodes')).status).toBe(401)
    const api = new ApiClient(ready.api, token)
    const self = (await api.call<any[]>('GET', '/v1/nodes')).find(n => n.peerId === ready.peerId)
    expect(self).toMatchObject({ labels: { zone: 'unit-test' }, capacity: { cpu: Number(ENV.get('DISCOVERY_CPU')) } })

    // A peer with the same key joins; one with another key does not.
    const addr = ready.addrs.find((a: string) => a.startsWith('/ip4/127.0.0.1/'))
    const keyFile = (name: string, content: string): string => { const f = join(dir, name); writeFileSync(f, content, { mode: 0o600 }); return f }
    const same = await startAgent(['--data-dir', join(dir, 'same'), '--api', '127.0.0.1:0', '--bootstrap', addr, '--swarm-key', keyFile('same.key', readFileSync(join(dirs.d, 'swarm.key'), 'utf8'))])
    started.push(same.proc)
    const other: AgentProcess = await startAgent(['--data-dir', join(dir, 'other'), '--api', '127.0.0.1:0', '--bootstrap', addr, '--log-level', 'debug', '--swarm-key', keyFile('other.key', swarmKey(randomBytes(32).toString('hex')))])
    started.push(other.proc)
    let otherLog = ''
    other.proc.stderr!.on('data', (d) => { otherLog += String(d) })
    await waitFor('the agent with the same key in the view', async () => {
      const nodes = await api.call<any[]>('GET', '/v1/nodes')
      return nodes.some(n => n.peerId === same.peerId && n.state === 'alive') ? true : undefined
    }, 60_000)
    await waitFor('the agent with another key failing to dial', () => /dial failed/.test(otherLog) ? true : undefined, 60_000)
    expect((await api.call<any[]>('GET', '/v1/nodes')).map(n => n.peerId)).not.toContain(other.peerId)
    expect((await other.api.call<any[]>('GET', '/v1/nodes')).map(n => n.peerId)).toEqual([other.peerId])

    // A VM: the store writes in the state directory.
    const vm = await api.call('POST', '/v1/vms', { cpu: 1, memMiB: 256, constraints: { zone: 'unit-test' } })
    expect(vm.node).toBe(ready.peerId)

    // systemd's stop: SIGTERM, then SIGKILL after TimeoutStopSec.
    const stopStart = Date.now()
    process.kill(agentPid, 'SIGTERM')
    expect(await exited).toBe(0)
    expect(Date.now() - stopStart).toBeLessThan(Number(unitValue(UNIT, 'Service', 'TimeoutStopSec')!.replace(/s$/, '')) * 1000)

    const trace = readTrace(traceFile)
    const allowed = allowedSyscalls(unitValues(UNIT, 'Service', 'SystemCallFilter').flatMap(v => v.split(/\s+/)))
    expect(allowed.size).toBeGreaterThan(100)
    expect(trace.syscalls.size).toBeGreaterThan(30)
    expect([...trace.syscalls].filter(s => !allowed.has(s)).sort()).toEqual([])
    const families = unitValue(UNIT, 'Service', 'RestrictAddressFamilies')!.split(/\s+/)
    expect(trace.families).toContain('AF_INET')
    expect(trace.families).toContain('AF_NETLINK') // why the unit allows it: Node lists the interfaces for 0.0.0.0
    expect([...trace.families].filter(f => !families.includes(f))).toEqual([])
    const writable = [join(dirs.S, 'discovery'), join(dirs.C, 'discovery'), '/dev/null']
    expect([...trace.writes].filter(p => !writable.some(w => p === w || p.startsWith(w + '/'))).sort()).toEqual([])
    expect([...trace.writes].some(p => p.startsWith(join(dirs.S, 'discovery') + '/'))).toBe(true)
    expect(readdirSync(join(dirs.C, 'discovery')).length).toBeGreaterThan(0)
  }, 180_000)
})

describe('the compose file', () => {
  const compose = parseYaml(readFileSync(join(DEPLOY, 'docker/compose.yaml'), 'utf8'), { merge: true })
  const services = Object.entries<any>(compose.services)
  const argv = (s: any): string[] => [...(s.entrypoint ?? []), ...(s.command ?? [])].map(String)
  const flag = (s: any, name: string): string | undefined => { const a = argv(s); const i = a.indexOf(name); return i < 0 ? undefined : a[i + 1] }

  it('runs N >= 3 agents, each with its own volume for its data dir', () => {
    expect(services.length).toBeGreaterThanOrEqual(3)
    const volumes = services.map(([, s]) => {
      const dataDir = flag(s, '--data-dir')
      const mount = (s.volumes as string[]).find(v => v.endsWith(`:${dataDir}`))
      expect(mount, 'a volume on the data dir').toBeDefined()
      return mount!.split(':')[0]
    })
    expect(new Set(volumes).size).toBe(services.length)
    for (const v of volumes) expect(compose.volumes).toHaveProperty(v)
  })

  it('bootstraps every agent but the first to the first', () => {
    const [[first, firstService], ...rest] = services
    expect(flag(firstService, '--bootstrap')).toBeUndefined()
    const port = flag(firstService, '--listen')!.split('/').at(-1)
    for (const [, s] of rest) expect(flag(s, '--bootstrap')).toBe(`/dns4/${first}/tcp/${port}`)
  })

  it('publishes APIs on loopback only, each on its own port, all behind a token and a swarm key', () => {
    const hostPorts = services.flatMap(([, s]) => (s.ports ?? []).map((p: string) => {
      expect(p).toMatch(/^127\.0\.0\.1:\d+:\d+$/)
      return p.split(':')[1]
    }))
    expect(hostPorts.length).toBe(services.length)
    expect(new Set(hostPorts).size).toBe(services.length)
    for (const [, s] of services) {
      expect(argv(s)).not.toContain('--api-token')
      const secret = (source: string): string => s.secrets.find((x: any) => x.source === source).target
      expect(flag(s, '--api-token-file')).toBe(secret('api_token'))
      expect(flag(s, '--swarm-key')).toBe(secret('swarm_key'))
    }
  })

  it('passes docker compose config', (ctx) => {
    if (!hasCompose) { console.log('deploy.test.ts: SKIPPED docker compose config: the docker compose plugin is not installed'); ctx.skip() }
    const r = spawnSync('docker', ['compose', '-f', join(DEPLOY, 'docker/compose.yaml'), 'config', '--quiet'], { encoding: 'utf8', env: process.env })
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
  })
})

describe('the Dockerfile', () => {
  const lines = readFileSync(join(DEPLOY, 'docker/Dockerfile'), 'utf8').replace(/\\\n/g, ' ').split('\n').map(l => l.trim()).filter(l => l !== '' && !l.startsWith('#'))
  const instructions = lines.map(l => { const [op, ...rest] = l.split(/\s+/); return { op: op.toUpperCase(), arg: rest.join(' ') } })
  const all = (op: string): string[] => instructions.filter(i => i.op === op).map(i => i.arg)

  it('builds on node:24-slim and installs production dependencies with the image\'s Node', () => {
    expect(all('FROM')).toEqual(['node:24-slim'])
    expect(all('RUN').join(' ')).toMatch(/npm ci --omit=dev/)
  })

  it('runs as a user other than root, with the agent as its entrypoint', () => {
    const user = all('USER').at(-1)
    expect(user).toBeDefined()
    expect(['root', '0']).not.toContain(user!.split(':')[0])
    const entrypoint = JSON.parse(all('ENTRYPOINT').at(-1)!)
    expect(entrypoint).toEqual(['node', '/opt/discovery/bin/discovery.js'])
  })

  it('copies only what exists in the repository, and the dockerignore lets it through', () => {
    const copied = all('COPY').flatMap(a => a.split(/\s+/).slice(0, -1))
    expect(copied.sort()).toEqual(['bin', 'package-lock.json', 'package.json', 'src'])
    for (const c of copied) expect(existsSync(join(ROOT, c)), c).toBe(true)
    const ignore = readFileSync(join(DEPLOY, 'docker/Dockerfile.dockerignore'), 'utf8')
    for (const c of copied) expect(ignore).toContain(`!${c}`)
  })
})

describe('the Ansible playbook', () => {
  const ansible = join(DEPLOY, 'ansible')

  it('passes ansible-playbook --syntax-check', (ctx) => {
    if (!hasAnsible) { skipping('ansible-playbook', 'ansible-playbook --syntax-check'); ctx.skip() }
    for (const playbook of ['site.yml', 'uninstall.yml']) {
      const r = spawnSync('ansible-playbook', ['--syntax-check', playbook], { cwd: ansible, encoding: 'utf8', env: { ...process.env, ANSIBLE_NOCOLOR: '1' } })
      expect(r.status, r.stdout + r.stderr).toBe(0)
      expect(r.stderr).not.toMatch(/WARNING|ERROR/)
    }
  })

  it('writes the same variables as deploy/systemd/discovery.env', () => {
    const template = readFileSync(join(ansible, 'roles/discovery/templates/discovery.env.j2'), 'utf8')
    const written = new Set([...template.matchAll(/^([A-Z_]+)=/gm)].map(m => m[1]))
    for (const name of ENV.keys()) expect(written, name).toContain(name)
  })

  it('has an example inventory of three sites, each with its zone and a bootstrap host', () => {
    const inventory = parseYaml(readFileSync(join(ansible, 'inventory/hosts.yml'), 'utf8'))
    const sites = inventory.all.children.discovery.children
    expect(Object.keys(sites)).toHaveLength(3)
    const fleet = parseYaml(readFileSync(join(ansible, 'inventory/group_vars/discovery/main.yml'), 'utf8'))
    for (const [site, group] of Object.entries<any>(sites)) {
      const vars = parseYaml(readFileSync(join(ansible, `inventory/group_vars/${site}.yml`), 'utf8'))
      expect(vars.discovery_zone).toMatch(/^[a-z0-9-]+$/)
      expect(fleet.discovery_bootstrap_hosts.filter((h: string) => h in group.hosts)).toHaveLength(1)
    }
  })
})
