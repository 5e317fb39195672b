/**
 * deploy/edge-lab: up.sh builds three sites (network namespaces) joined by the
 * userspace delay line, two `wan` agents each; they must see each other, the
 * round trip between two sites must be what the lab configures (25–40 ms),
 * and down.sh must leave no namespace, device or process. On that lab,
 * locality: the agents measure those round trips; a VM created at a site
 * stays in it when it fits; a rebalancing stays within a site when it can; a
 * site cut off keeps placing VMs on its own and the cluster reconciles after
 * the heal. Root only (network namespaces, TUN devices): skipped, saying so,
 * otherwise.
 */
import { spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { BIN } from '../../src/cli/cluster.ts'
import { metricValue, tempDir } from './helpers.ts'

const LAB = resolve(import.meta.dirname, '../../deploy/edge-lab')

function why (): string | undefined {
  if (process.getuid?.() !== 0) return 'not root (network namespaces and TUN devices need it)'
  if (!existsSync('/dev/net/tun')) return '/dev/net/tun is missing'
  for (const tool of ['ip', 'python3', 'setsid']) {
    if (spawnSync('bash', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status !== 0) return `\`${tool}\` is not on PATH`
  }
  return undefined
}
const skipReason = why()
if (skipReason != null) console.log(`edge-lab.test.ts: SKIPPED the edge lab: ${skipReason}`)

interface Run { code: number | null, stdout: string, stderr: string }

async function run (command: string, args: string[], env: Record<string, string>, timeoutMs: number): Promise<Run> {
  return await new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => { stdout += String(d) })
    child.stderr.on('data', (d) => { stderr += String(d) })
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`${command} ${args.join(' ')} took over ${timeoutMs} ms:\n${stdout}\n${stderr}`)) }, timeoutMs)
    child.on('exit', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }) })
  })
}

/** TCP connection set-up times (one round trip each) from inside a namespace to ADDR:PORT: min and median in ms. */
async function rtt (ns: string, addr: string, port: number, samples: number): Promise<{ min: number, median: number }> {
  const script = `
    const net = require('node:net')
    ;(async () => {
      const out = []
      for (let i = 0; i < ${samples}; i++) {
        const t = process.hrtime.bigint()
        await new Promise((res, rej) => { const s = net.connect(${port}, '${addr}', () => { out.push(Number(process.hrtime.bigint() - t) / 1e6); s.destroy(); res() }); s.on('error', rej) })
      }
      out.sort((a, b) => a - b)
      console.log(JSON.stringify({ min: out[0], median: out[Math.floor(out.length / 2)] }))
    })()`
  const r = await run('ip', ['netns', 'exec', ns, process.execPath, '-e', script], {}, 30_000)
  expect(r.code, r.stderr).toBe(0)
  return JSON.parse(r.stdout)
}

describe.skipIf(skipReason != null)('the edge lab', () => {
  // A name of its own and a state dir of its own: never the operator's lab, nor another run's.
  const name = `t${randomBytes(2).toString('hex')}`
  const state = join(tempDir('edge-lab'), 'state')
  // Two hosts a site; the admin routes (partitions), over-commit so that demand can overload a host, a fixed demand.
  const env = { LAB_NAME: name, LAB_STATE: state, DISCOVERY_NODE: process.execPath, HOSTS_PER_SITE: '2', AGENT_ARGS: '--admin --cpu-overcommit 2 --demand 0.1 --monitor-interval 500ms' }
  let lab: any
  let token: string
  /** One request to the API of the agent of `ns`, from inside its namespace (a small script: the CLI costs seconds of CPU). */
  const api = async (ns: string, method: string, path: string, body?: unknown): Promise<{ status: number, body: any }> => {
    const script = `const [p, m, b] = process.argv.slice(1)
      const r = await fetch('http://127.0.0.1:7100' + p, { method: m, headers: { authorization: 'Bearer ' + process.env.T, ...(b !== '' ? { 'content-type': 'application/json' } : {}) }, body: b !== '' ? b : undefined })
      const text = await r.text()
      let body = text
      try { body = text === '' ? null : JSON.parse(text) } catch {}
      console.log(JSON.stringify({ status: r.status, body }))`
    const r = await run('ip', ['netns', 'exec', ns, process.execPath, '--input-type=module', '-e', script, path, method, body === undefined ? '' : JSON.stringify(body)], { T: token }, 60_000)
    expect(r.code, r.stderr).toBe(0)
    return JSON.parse(r.stdout)
  }
  const host = (site: number, h: number): any => lab.hosts.find((x: any) => x.site === site && x.ns.endsWith(`h${h}`))
  const siteOf = (peerId: string): number => lab.hosts.find((x: any) => x.peerId === peerId).site
  const until = async <T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> => {
    const end = Date.now() + timeoutMs
    for (;;) {
      const v = await fn()
      if (v !== undefined) return v
      if (Date.now() > end) throw new Error(`edge lab: ${what} did not happen within ${timeoutMs} ms`)
      await new Promise(resolve => setTimeout(resolve, 500))
    }
  }
  afterAll(async () => { await run(join(LAB, 'down.sh'), [], env, 60_000) })

  it('comes up with six agents, two per site, that see each other', async () => {
    const up = await run(join(LAB, 'up.sh'), [], env, 420_000)
    expect(up.code, up.stdout + up.stderr).toBe(0)
    lab = JSON.parse(readFileSync(join(state, 'lab.json'), 'utf8'))
    expect(lab.hosts.map((h: any) => h.site)).toEqual([1, 1, 2, 2, 3, 3])
    token = readFileSync(lab.tokenFile, 'utf8').trim()
    // Asked independently of up.sh: one agent's view through the CLI, every agent's through its API, inside its site.
    const r = await run('ip', ['netns', 'exec', lab.hosts[0].ns, process.execPath, BIN, 'nodes', '--json'], { DISCOVERY_API_TOKEN: token }, 60_000)
    expect(r.code, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout).filter((n: any) => n.state === 'alive')).toHaveLength(6)
    for (const h of lab.hosts) {
      const nodes = (await api(h.ns, 'GET', '/v1/nodes')).body
      expect(nodes.filter((n: any) => n.state === 'alive').map((n: any) => n.peerId).sort()).toEqual(lab.hosts.map((x: any) => x.peerId).sort())
      expect(nodes.map((n: any) => n.labels.zone).sort()).toEqual(['edge-lab-s1', 'edge-lab-s1', 'edge-lab-s2', 'edge-lab-s2', 'edge-lab-s3', 'edge-lab-s3'])
    }
  }, 480_000)

  it('puts 25–40 ms between sites, as configured', async () => {
    const rtts = Object.entries<number>(lab.rttMs.inter)
    expect(rtts).toHaveLength(3)
    for (const [pair, configured] of rtts) {
      expect(configured).toBeGreaterThanOrEqual(25)
      expect(configured).toBeLessThanOrEqual(40)
      const [a, b] = pair.split('-').map(Number)
      const from = lab.hosts.find((h: any) => h.site === a)
      const to = lab.hosts.find((h: any) => h.site === b)
      const measured = await rtt(from.ns, to.addr, 4001, 10)
      console.log(`edge lab: RTT site ${a} -> site ${b}: configured ${configured} ms, measured min ${measured.min.toFixed(1)} ms, median ${measured.median.toFixed(1)} ms`)
      // The delay line can only add to the configured delay; the path is the least of the samples (a loaded machine
      // adds its own scheduling delays to any one of them: a median of 46.5 ms, over the bound, was once measured
      // under npm test's other clusters).
      expect(measured.min).toBeGreaterThanOrEqual(configured - 0.5)
      expect(measured.min).toBeLessThanOrEqual(configured + 10)
    }
  }, 120_000)

  it('the agents measure those round trips with libp2p\'s ping, per peer', async () => {
    const configured = (a: number, b: number): number => a === b ? lab.rttMs.intra : lab.rttMs.inter[`${Math.min(a, b)}-${Math.max(a, b)}`]
    for (const h of lab.hosts) {
      // The least of a few pings: never below the path, and close to it once a few were taken, however busy the machine.
      const nodes = await until(`${h.ns} measuring every peer within 20 ms of the path`, async () => {
        const peers = (await api(h.ns, 'GET', '/v1/nodes')).body.filter((n: any) => n.peerId !== h.peerId)
        return peers.every((n: any) => n.rttMs != null && n.rttMs < configured(h.site, siteOf(n.peerId)) + 20) ? peers : undefined
      }, 90_000)
      for (const n of nodes) expect(n.rttMs, `${h.ns} -> ${n.peerId}`).toBeGreaterThanOrEqual(configured(h.site, siteOf(n.peerId)) - 1)
      console.log(`edge lab: ${h.ns} measured ${nodes.map((n: any) => `site ${siteOf(n.peerId)} ${n.rttMs} ms`).join(', ')}`)
    }
  }, 180_000)

  it('a VM created at a site stays in that site when it fits', async () => {
    for (const site of [1, 2, 3]) {
      for (let i = 0; i < 3; i++) {
        const res = await api(host(site, 1 + i % 2).ns, 'POST', '/v1/vms', { cpu: 1, memMiB: 512, name: `local-${site}-${i}` })
        expect(res.status, JSON.stringify(res.body)).toBe(201)
        expect(siteOf(res.body.node), `created at site ${site}`).toBe(site)
      }
    }
    // A VM that asks for another zone goes there: locality orders the candidates, it does not override the constraints.
    const far = await api(host(1, 1).ns, 'POST', '/v1/vms', { cpu: 1, memMiB: 512, constraints: { zone: 'edge-lab-s3' } })
    expect(far.status).toBe(201)
    expect(siteOf(far.body.node)).toBe(3)
  }, 180_000)

  it('a rebalancing stays within a site when it can', async () => {
    // Six VMs on s2h1 (4 cores, 8 vCPUs with over-commit 2), demand 1 each: overloaded; s2h2 has room.
    const [hot, mate] = [host(2, 1), host(2, 2)]
    const ids: string[] = []
    for (let i = 0; i < 6; i++) {
      const res = await api(hot.ns, 'POST', '/v1/vms', { cpu: 1, memMiB: 512, name: `hot-${i}` })
      expect(res.status).toBe(201)
      if (res.body.node !== hot.peerId) expect((await api(mate.ns, 'POST', `/v1/vms/${res.body.id}/migrate`, { to: hot.peerId })).status).toBe(200)
      ids.push(res.body.id)
    }
    for (const id of ids) expect((await api(hot.ns, 'PUT', `/v1/vms/${id}/demand`, { demand: 1 })).status).toBe(200)
    const done = await until('the overload of s2h1 to be relieved', async () => {
      const nodes = (await api(hot.ns, 'GET', '/v1/nodes')).body
      const me = nodes.find((n: any) => n.peerId === hot.peerId)
      const migrations = (await api(hot.ns, 'GET', '/v1/migrations')).body.filter((m: any) => m.partitionId != null)
      return me.demand <= 4 && migrations.length > 0 && migrations.every((m: any) => m.phase === 'committed' || m.phase === 'aborted') ? migrations : undefined
    }, 120_000)
    const moved = done.filter((m: any) => m.phase === 'committed')
    expect(moved.length).toBeGreaterThan(0)
    for (const m of moved) {
      expect(m.to).toBe(mate.peerId)
      expect(m.interSite).toBe(false)
    }
    const metrics = (await api(hot.ns, 'GET', '/metrics')).body as string
    expect(metricValue(metrics, 'discovery_migrations_total', { result: 'committed' })).toBe(moved.length)
    expect(metrics).toContain('discovery_migrations_inter_site_total{result="committed"} 0')
  }, 240_000)

  it('a site cut off keeps placing VMs on its own, and the cluster reconciles after the heal', async () => {
    const cut = lab.hosts.filter((h: any) => h.site === 3)
    const rest = lab.hosts.filter((h: any) => h.site !== 3)
    // Both ways, on both sides: a clean cut (README, Partitions on demand).
    for (const h of cut) expect((await api(h.ns, 'POST', '/v1/admin/partition', { peers: rest.map((x: any) => x.peerId) })).status).toBe(200)
    for (const h of rest) expect((await api(h.ns, 'POST', '/v1/admin/partition', { peers: cut.map((x: any) => x.peerId) })).status).toBe(200)
    for (const h of [cut[0], rest[0]]) {
      await until(`${h.ns} to see the other side of the cut dead`, async () => {
        const nodes = (await api(h.ns, 'GET', '/v1/nodes')).body
        return nodes.filter((n: any) => n.state === 'alive').length === (h.site === 3 ? 2 : 4) ? true : undefined
      }, 90_000)
    }
    // Site 3 on its own: it places in itself; what only the other sites could take is refused, not left hanging.
    const during: string[] = []
    for (const h of cut) {
      const res = await api(h.ns, 'POST', '/v1/vms', { cpu: 1, memMiB: 512, name: `cut-${h.ns.slice(-4)}` })
      expect(res.status, JSON.stringify(res.body)).toBe(201)
      expect(siteOf(res.body.node)).toBe(3)
      during.push(res.body.id)
    }
    const away = await api(cut[0].ns, 'POST', '/v1/vms', { cpu: 1, memMiB: 512, constraints: { zone: 'edge-lab-s1' } })
    expect(away.status).toBe(503)
    // The other side goes on too.
    const other = await api(rest[0].ns, 'POST', '/v1/vms', { cpu: 1, memMiB: 512, name: 'rest-during-cut' })
    expect(other.status).toBe(201)
    expect(siteOf(other.body.node)).not.toBe(3)
    during.push(other.body.id)

    for (const h of lab.hosts) expect((await api(h.ns, 'POST', '/v1/admin/heal', {})).status).toBe(200)
    // Reconciled: every agent sees all six alive and every VM made on either side.
    for (const h of lab.hosts) {
      await until(`${h.ns} to see the whole cluster again`, async () => {
        const nodes = (await api(h.ns, 'GET', '/v1/nodes')).body
        const vms = (await api(h.ns, 'GET', '/v1/vms?scope=cluster')).body.map((v: any) => v.id)
        return nodes.filter((n: any) => n.state === 'alive').length === 6 && during.every(id => vms.includes(id)) ? true : undefined
      }, 120_000)
    }
    const after = await api(cut[0].ns, 'POST', '/v1/vms', { cpu: 1, memMiB: 512, constraints: { zone: 'edge-lab-s1' } })
    expect(after.status, JSON.stringify(after.body)).toBe(201)
    expect(siteOf(after.body.node)).toBe(1)
  }, 420_000)

  it('goes down leaving no namespace, device or process', async () => {
    const down = await run(join(LAB, 'down.sh'), [], env, 60_000)
    expect(down.code, down.stdout + down.stderr).toBe(0)
    expect(spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout).not.toContain(`${name}-`)
    expect(spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout).not.toContain(`${name}-`)
    for (const pid of [lab.delayLinePid, ...lab.hosts.map((h: any) => h.pid)]) {
      let cmdline = ''
      try { cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8') } catch {}
      expect(cmdline, `process ${pid}`).not.toContain(state)
    }
    expect(existsSync(state)).toBe(false)
  }, 90_000)
})
