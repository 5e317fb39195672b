/**
 * deploy/edge-lab: up.sh builds three sites (network namespaces) joined by the
 * userspace delay line, one `wan` agent each; they must see each other, the
 * round trip between two sites must be what the lab configures (25–40 ms),
 * and down.sh must leave no namespace, device or process. Root only (network
 * namespaces, TUN devices): skipped, saying so, otherwise.
 */
import { spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { BIN } from '../../src/cli/cluster.ts'
import { tempDir } from './helpers.ts'

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
  const env = { LAB_NAME: name, LAB_STATE: state, DISCOVERY_NODE: process.execPath }
  let lab: any
  afterAll(async () => { await run(join(LAB, 'down.sh'), [], env, 60_000) })

  it('comes up with three agents, one per site, that see each other', async () => {
    const up = await run(join(LAB, 'up.sh'), [], env, 180_000)
    expect(up.code, up.stdout + up.stderr).toBe(0)
    lab = JSON.parse(readFileSync(join(state, 'lab.json'), 'utf8'))
    expect(lab.hosts.map((h: any) => h.site)).toEqual([1, 2, 3])
    const token = readFileSync(lab.tokenFile, 'utf8').trim()
    // Asked independently of up.sh: each agent's view, through the CLI, inside its site.
    for (const host of lab.hosts) {
      const r = await run('ip', ['netns', 'exec', host.ns, process.execPath, BIN, 'nodes', '--json'], { DISCOVERY_API_TOKEN: token }, 30_000)
      expect(r.code, r.stderr).toBe(0)
      const nodes = JSON.parse(r.stdout)
      expect(nodes.filter((n: any) => n.state === 'alive').map((n: any) => n.peerId).sort()).toEqual(lab.hosts.map((h: any) => h.peerId).sort())
      expect(nodes.map((n: any) => n.labels.zone).sort()).toEqual(['edge-lab-s1', 'edge-lab-s2', 'edge-lab-s3'])
    }
  }, 240_000)

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
      // The delay line can only add to the configured delay; a loaded machine adds a few ms more.
      expect(measured.min).toBeGreaterThanOrEqual(configured - 0.5)
      expect(measured.median).toBeLessThanOrEqual(configured + 10)
    }
  }, 120_000)

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
