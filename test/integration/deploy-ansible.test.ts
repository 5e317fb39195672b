/**
 * deploy/ansible's site.yml run for real against this machine, in a sandbox:
 * a private mount namespace where /etc, /opt, /usr/local and /var are
 * overlays whose changes land in a temporary folder, so the machine itself is
 * never touched. Node 24 is the repository's (`discovery_node_install=none`:
 * the NodeSource and nodejs.org downloads are not reachable from here) and
 * systemd is not running (`discovery_manage_service=false`); everything else is
 * the real role: the release archive, `npm ci --omit=dev` from the npm
 * registry, the settings, the swarm key, the unit.
 *
 * Checked: a first run installs, a second changes nothing (idempotent); the
 * files are where the unit expects them with the modes it needs; the agent,
 * started from the installed files with exactly the installed unit's command
 * line and settings, comes up with its zone label and token; uninstall.yml
 * leaves none of it. Needs root, `unshare`, overlayfs and ansible-playbook:
 * skipped, saying why, otherwise.
 */
import { spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { copyFileSync, mkdirSync, readFileSync, readlinkSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { afterAll, describe, expect, it } from 'vitest'
import { ApiClient, tempDir } from './helpers.ts'
import { expandCommandLine, parseEnvFile, parseUnit, unitValue, unitValues } from './systemd-unit.ts'

const ROOT = resolve(import.meta.dirname, '../..')
const ANSIBLE = join(ROOT, 'deploy/ansible')
const OVERLAID = ['etc', 'opt', 'usr/local', 'var']

function why (): string | undefined {
  if (process.getuid?.() !== 0) return 'not root (the sandbox mounts overlays in a private mount namespace)'
  if (spawnSync('ansible-playbook', ['--version'], { stdio: 'ignore' }).status !== 0) return '`ansible-playbook` is not on PATH (apt-get install ansible-core)'
  if (spawnSync('unshare', ['--mount', '--propagation', 'private', 'true'], { stdio: 'ignore' }).status !== 0) return '`unshare --mount` does not work here'
  if (spawnSync('npm', ['--version'], { stdio: 'ignore' }).status !== 0) return '`npm` is not on PATH'
  return undefined
}
const skipReason = why()

/** A bash prologue that mounts the overlays (their changes kept in WORK) and puts Node 24 and npm on the service's PATH. */
function sandbox (work: string): string {
  const node = realpathSync(join(ROOT, 'node_modules/.bin/node'))
  const npm = spawnSync('bash', ['-c', 'command -v npm'], { encoding: 'utf8' }).stdout.trim()
  return [
    'set -euo pipefail',
    ...OVERLAID.map(d => {
      const upper = join(work, 'upper', d)
      const scratch = join(work, 'scratch', d)
      return `mkdir -p ${upper} ${scratch} && mount -t overlay overlay -o lowerdir=/${d},upperdir=${upper},workdir=${scratch} /${d}`
    }),
    `ln -sfn ${node} /usr/local/bin/node`,
    `[ -e /usr/local/bin/npm ] || ln -sfn ${realpathSync(npm)} /usr/local/bin/npm`,
    // Ansible's own temporary files stay in WORK too.
    `export ANSIBLE_LOCAL_TEMP=${join(work, 'ansible-local')} ANSIBLE_REMOTE_TEMP=${join(work, 'ansible-remote')} ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0`,
    `cd ${ANSIBLE}`
  ].join('\n')
}

interface Run { code: number | null, stdout: string, stderr: string }

async function inSandbox (work: string, script: string, timeoutMs = 240_000): Promise<Run> {
  return await new Promise((resolve, reject) => {
    const child = spawn('unshare', ['--mount', '--propagation', 'private', 'bash', '-c', `${sandbox(work)}\n${script}`], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => { stdout += String(d) })
    child.stderr.on('data', (d) => { stderr += String(d) })
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`sandbox script took over ${timeoutMs} ms:\n${stdout}\n${stderr}`)) }, timeoutMs)
    child.on('exit', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }) })
  })
}

function recap (out: string): Record<string, number> {
  const line = out.split('\n').find(l => /^sandbox\s+:\s+ok=/.test(l))
  if (line == null) throw new Error(`no PLAY RECAP in:\n${out}`)
  return Object.fromEntries([...line.matchAll(/(\w+)=(\d+)/g)].map(m => [m[1], Number(m[2])]))
}

describe.skipIf(skipReason != null)('site.yml in a sandbox of this machine', () => {
  const work = tempDir('ansible')
  const token = randomBytes(16).toString('hex')
  const swarmKey = randomBytes(32).toString('hex')
  const inventory = join(work, 'hosts.yml')
  const extraVars = JSON.stringify({
    discovery_node_install: 'none',
    discovery_manage_service: false,
    discovery_wait_for_fleet: false,
    discovery_swarm_key: swarmKey,
    discovery_api_token: token,
    discovery_zone: 'sandbox',
    discovery_labels: { rack: 'r1' },
    discovery_bootstrap_hosts: [],
    discovery_extra_args: '--json',
    // Tests never bind fixed ports.
    discovery_p2p_port: 0,
    discovery_api_listen: '127.0.0.1:0',
    discovery_pack_dir: join(work, 'pack')
  })
  const playbook = (file: string): string => `ansible-playbook -i ${inventory} ${file} -e '${extraVars}'`
  const upper = (path: string): string => join(work, 'upper', path)
  const started: Array<{ kill: (s: NodeJS.Signals) => void }> = []
  afterAll(() => {
    for (const p of started) p.kill('SIGKILL')
    // The sandbox's changes include a release's node_modules (about 80 MB).
    rmSync(work, { recursive: true, force: true })
  })

  it('installs on the first run and changes nothing on the second', async () => {
    mkdirSync(work, { recursive: true })
    writeFileSync(inventory, [
      'all:',
      '  children:',
      '    discovery:',
      '      children:',
      '        site_sandbox:',
      '          hosts:',
      '            sandbox: { ansible_connection: local, ansible_python_interpreter: /usr/bin/python3 }'
    ].join('\n') + '\n')
    const first = await inSandbox(work, playbook('site.yml'))
    expect(first.code, first.stdout + first.stderr).toBe(0)
    expect(recap(first.stdout).changed).toBeGreaterThan(5)
    const second = await inSandbox(work, playbook('site.yml'))
    expect(second.code, second.stdout + second.stderr).toBe(0)
    expect(recap(second.stdout), second.stdout).toMatchObject({ changed: 0, failed: 0 })
  }, 300_000)

  it('puts each file where the unit expects it, secrets readable by root alone', () => {
    expect(readFileSync(upper('etc/systemd/system/discovery.service'), 'utf8')).toBe(readFileSync(join(ROOT, 'deploy/systemd/discovery.service'), 'utf8'))
    for (const secret of ['etc/discovery/discovery.env', 'etc/discovery/swarm.key', 'etc/discovery/api.token']) {
      const st = statSync(upper(secret))
      expect((st.mode & 0o777).toString(8), secret).toBe('600')
      expect(st.uid).toBe(0)
    }
    expect(readFileSync(upper('etc/discovery/swarm.key'), 'utf8')).toBe(`/key/swarm/psk/1.0.0/\n/base16/\n${swarmKey}\n`)
    expect(readFileSync(upper('etc/discovery/api.token'), 'utf8')).toBe(`${token}\n`)
    // The token is in its own file only, not in the settings.
    expect(readFileSync(upper('etc/discovery/discovery.env'), 'utf8')).not.toContain(token)
    expect(readlinkSync(upper('usr/local/bin/discovery'))).toBe('/opt/discovery/current/bin/discovery.js')
    const release = readlinkSync(upper('opt/discovery/current'))
    expect(release).toMatch(/^\/opt\/discovery\/releases\/\d+\.\d+\.\d+-[0-9a-f]{12}$/)
    expect(statSync(upper(join(release, 'bin/discovery.js'))).mode & 0o111).not.toBe(0)
    // Production dependencies only: no `node` package, no vitest.
    expect(() => statSync(upper(join(release, 'node_modules/libp2p/package.json')))).not.toThrow()
    expect(() => statSync(upper(join(release, 'node_modules/vitest')))).toThrow()
    expect(() => statSync(upper(join(release, 'node_modules/node')))).toThrow()
  })

  it('gives an agent that starts with the installed unit\'s command line and settings', async () => {
    const unit = parseUnit(readFileSync(upper('etc/systemd/system/discovery.service'), 'utf8'))
    const env = parseEnvFile(readFileSync(upper('etc/discovery/discovery.env'), 'utf8'))
    expect(env.get('DISCOVERY_LABELS')).toBe('zone=sandbox,rack=r1')
    // What systemd would provide: the state and cache directories, the key in the credentials directory.
    const dirs = { S: join(work, 'state'), C: join(work, 'cache'), d: join(work, 'credentials') }
    for (const d of [join(dirs.S, 'discovery'), join(dirs.C, 'discovery'), dirs.d]) mkdirSync(d, { recursive: true, mode: 0o700 })
    copyFileSync(upper('etc/discovery/swarm.key'), join(dirs.d, 'swarm.key'))
    copyFileSync(upper('etc/discovery/api.token'), join(dirs.d, 'api.token'))
    const argv = expandCommandLine(unitValue(unit, 'Service', 'ExecStart')!, env, dirs)
    const exports = [...env, ...unitValues(unit, 'Service', 'Environment').map(l => expandCommandLine(l, env, dirs)[0].split(/=(.*)/s) as [string, string])]
      .map(([k, v]) => `export ${k}='${v.replace(/'/g, "'\\''")}'`)
    const quoted = argv.map(a => `'${a.replace(/'/g, "'\\''")}'`).join(' ')
    // systemd's environment: the service's PATH and the env file, nothing of ours.
    const child = spawn('unshare', ['--mount', '--propagation', 'private', 'env', '-i', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      'bash', '-c', `${sandbox(work)}\ncd /\n${exports.join('\n')}\nexec ${quoted}`], { stdio: ['ignore', 'pipe', 'pipe'] })
    started.push(child)
    let stderr = ''
    child.stderr.on('data', (d) => { stderr = (stderr + String(d)).slice(-4000) })
    const exited = new Promise<number | null>(resolve => child.on('exit', resolve))
    const ready = await new Promise<any>((resolve, reject) => {
      createInterface({ input: child.stdout }).once('line', (line) => { resolve(JSON.parse(line)) })
      void exited.then(code => { reject(new Error(`agent exited with ${code}: ${stderr}`)) })
    })
    expect(ready.dataDir).toBe(join(dirs.S, 'discovery'))
    expect((await new ApiClient(ready.api, undefined).request('GET', '/v1/nodes')).status).toBe(401)
    const [self] = await new ApiClient(ready.api, token).call<any[]>('GET', '/v1/nodes')
    // Capacity from the host's facts: all its vCPUs.
    expect(self).toMatchObject({ peerId: ready.peerId, labels: { zone: 'sandbox', rack: 'r1' }, capacity: { cpu: cpus().length } })
    child.kill('SIGTERM')
    expect(await exited).toBe(0)
  }, 120_000)

  it('leaves nothing behind after uninstall.yml', async () => {
    const paths = ['/etc/discovery', '/etc/systemd/system/discovery.service', '/opt/discovery', '/usr/local/bin/discovery']
    const run = await inSandbox(work, `${playbook('uninstall.yml')}\nfor p in ${paths.join(' ')}; do if [ -e "$p" ] || [ -L "$p" ]; then echo "LEFT $p"; fi; done`)
    expect(run.code, run.stdout + run.stderr).toBe(0)
    expect(run.stdout).not.toMatch(/LEFT/)
    expect(recap(run.stdout).failed).toBe(0)
  }, 120_000)
})

if (skipReason != null) console.log(`deploy-ansible.test.ts: SKIPPED site.yml in a sandbox: ${skipReason}`)
