/**
 * The edge lab part of `bench edge`: deploy/edge-lab with three sites of two
 * agents (sim driver, over-commit 2, a fixed demand of 0.1), five VMs on
 * every host; then, host after host, its VMs' demand is set to 1 (5 of its 4
 * cores: an overload) until the agents' rebalancing has relieved it, and set
 * back. Counted: the migrations the rebalancing made, and how many crossed
 * sites — with `--locality off` (the token walks the ring of hashed ids) and
 * `on` (it goes to the nearest peer first).
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const LAB = fileURLToPath(new URL('../../deploy/edge-lab/', import.meta.url))
const VMS_PER_HOST = 5

export interface LabResult {
  locality: 'on' | 'off'
  waves: number
  /** Committed migrations ordered by rebalancing, all agents. */
  migrations: number
  interSite: number
  /** Per wave: from the demand set to the host's demand back within its cores, ms. */
  reliefMs: number[]
}

interface Host { ns: string, site: number, peerId: string }

async function run (cmd: string, args: string[], env: Record<string, string>, timeoutMs: number): Promise<{ code: number | null, stdout: string, stderr: string }> {
  return await new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`${cmd} took over ${timeoutMs} ms: ${stderr}`)) }, timeoutMs)
    child.on('exit', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }) })
  })
}

export async function labInterSite (locality: 'on' | 'off', waves: number, log: (s: string) => void): Promise<LabResult> {
  const state = join(mkdtempSync(join(tmpdir(), 'discovery-bench-lab-')), 'state')
  const env = {
    LAB_NAME: `b${locality}`,
    LAB_STATE: state,
    DISCOVERY_NODE: process.execPath,
    HOSTS_PER_SITE: '2',
    AGENT_ARGS: `--cpu-overcommit 2 --demand 0.1 --monitor-interval 500ms --locality ${locality}`
  }
  log(`edge lab, locality ${locality}: up…`)
  try {
    const up = await run(join(LAB, 'up.sh'), [], env, 600_000)
    if (up.code !== 0) throw new Error(`up.sh failed: ${up.stderr.slice(-2000)}`)
    const lab = JSON.parse(readFileSync(join(state, 'lab.json'), 'utf8'))
    const token = readFileSync(lab.tokenFile, 'utf8').trim()
    const hosts: Host[] = lab.hosts
    const api = async (ns: string, method: string, path: string, body?: unknown): Promise<any> => {
      const script = `const [p, m, b] = process.argv.slice(1)
        const r = await fetch('http://127.0.0.1:7100' + p, { method: m, headers: { authorization: 'Bearer ' + process.env.T, ...(b !== '' ? { 'content-type': 'application/json' } : {}) }, body: b !== '' ? b : undefined })
        console.log(JSON.stringify({ status: r.status, body: await r.json() }))`
      const r = await run('ip', ['netns', 'exec', ns, process.execPath, '--input-type=module', '-e', script, path, method, body === undefined ? '' : JSON.stringify(body)], { T: token }, 120_000)
      if (r.code !== 0) throw new Error(`${method} ${path} in ${ns}: ${r.stderr}`)
      return JSON.parse(r.stdout)
    }
    // Five VMs on every host: created through it, moved there if placement put one elsewhere.
    for (const h of hosts) {
      for (let i = 0; i < VMS_PER_HOST; i++) {
        const res = await api(h.ns, 'POST', '/v1/vms', { cpu: 1, memMiB: 512 })
        if (res.status !== 201) throw new Error(`create on ${h.ns}: ${JSON.stringify(res.body)}`)
        if (res.body.node !== h.peerId) {
          const owner = hosts.find(x => x.peerId === res.body.node)!
          const moved = await api(owner.ns, 'POST', `/v1/vms/${res.body.id}/migrate`, { to: h.peerId })
          if (moved.status !== 200) throw new Error(`gathering VMs on ${h.ns}: ${JSON.stringify(moved.body)}`)
        }
      }
    }
    const reliefMs: number[] = []
    for (let w = 0; w < waves; w++) {
      const hot = hosts[w % hosts.length]
      const ids = (await api(hot.ns, 'GET', '/v1/vms')).body.map((v: any) => v.id)
      const t0 = performance.now()
      for (const id of ids) await api(hot.ns, 'PUT', `/v1/vms/${id}/demand`, { demand: 1 })
      const end = Date.now() + 180_000
      for (;;) {
        const me = (await api(hot.ns, 'GET', '/v1/nodes')).body.find((n: any) => n.peerId === hot.peerId)
        const busy = (await api(hot.ns, 'GET', '/v1/migrations')).body.some((m: any) => m.phase !== 'committed' && m.phase !== 'aborted')
        if (me.demand <= 4 && !busy) break
        if (Date.now() > end) throw new Error(`wave ${w + 1}: ${hot.ns} still overloaded after 180 s`)
        await new Promise(resolve => setTimeout(resolve, 500))
      }
      reliefMs.push(performance.now() - t0)
      for (const v of (await api(hot.ns, 'GET', '/v1/vms')).body) await api(hot.ns, 'PUT', `/v1/vms/${v.id}/demand`, { demand: 0.1 })
      log(`edge lab, locality ${locality}: wave ${w + 1} (${hot.ns}) relieved in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
    }
    let migrations = 0
    let interSite = 0
    for (const h of hosts) {
      for (const m of (await api(h.ns, 'GET', '/v1/migrations')).body) {
        if (m.partitionId == null || m.phase !== 'committed') continue
        migrations++
        if (m.interSite === true) interSite++
      }
    }
    return { locality, waves, migrations, interSite, reliefMs }
  } finally {
    await run(join(LAB, 'down.sh'), [], env, 120_000).catch(() => undefined)
    rmSync(join(state, '..'), { recursive: true, force: true })
  }
}
