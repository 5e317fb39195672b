/**
 * `npm run bench -- edge [--sizes 256,1024] [--reps 3] [--dirty 96] [--no-lab] [--lab-only] [--waves 6] [--json]`:
 *
 * 1. QEMU live migration between two agents (`cluster up --driver qemu`,
 *    TCG) of a 256 MiB and a 1 GiB VM, idle and with its guest dirtying
 *    memory (a busybox guest built from Debian's packages, bench/lib/guest.ts),
 *    against bare QEMU driven directly over QMP with the same parameters in
 *    the same run (bench/lib/bare-qemu.ts), and against the sim driver's
 *    pre-copy model (core/precopy.ts) fed what QEMU measured (the link's
 *    throughput and the guest's dirty rate). Medians of `--reps` runs.
 * 2. On the edge lab (root; three sites 25–40 ms apart, two agents each, the
 *    sim driver), overloads made host by host, rebalanced by the agents:
 *    how many of the migrations crossed sites, with locality on and off.
 *
 * Figures, never pass/fail.
 */
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { precopy } from '../src/core/precopy.ts'
import { percentile } from '../src/core/stats.ts'
import { bareMigration, type BareRun } from './lib/bare-qemu.ts'
import { clusterUp } from './lib/cluster.ts'
import { labInterSite, type LabResult } from './lib/edge-lab-run.ts'
import { buildGuest, READY_MARK } from './lib/guest.ts'
import { getJson, request } from './lib/http.ts'
import { fmt } from './lib/stats.ts'
import { table } from './lib/table.ts'

const ROOT = fileURLToPath(new URL('../', import.meta.url))
/** The migration parameters of both sides: the agents' defaults (local profile). */
const BANDWIDTH_MIBPS = 1250
const MAX_DOWNTIME_MS = 30

function arg (args: string[], name: string, fallback: string): string {
  const i = args.indexOf(`--${name}`)
  return i >= 0 && args[i + 1] != null ? args[i + 1] : fallback
}

interface AgentRun { totalMs: number, downtimeMs: number, endToEndMs: number, bytesMiB: number, rounds: number, throttled: boolean }
interface Case { memMiB: number, workload: 'idle' | 'dirty', agent: AgentRun[], bare: BareRun[] }

const median = (xs: number[]): number => xs.length === 0 ? Number.NaN : percentile(xs, 0.5)

async function until<T> (what: string, fn: () => Promise<T | undefined>, timeoutMs: number, everyMs = 100): Promise<T> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const v = await fn().catch(() => undefined)
    if (v !== undefined) return v
    if (Date.now() > end) throw new Error(`${what} did not happen within ${timeoutMs} ms`)
    await new Promise(resolve => setTimeout(resolve, everyMs))
  }
}

async function qemuMigrations (sizes: number[], reps: number, dirtyMiB: number, log: (s: string) => void): Promise<{ cases: Case[], kernelPackage: string }> {
  const guest = buildGuest(join(ROOT, '.discovery', 'bench', 'guest'), dirtyMiB)
  log(`guest: ${guest.kernelPackage} + busybox-static initramfs (bb-dirty writes ${dirtyMiB} MiB of non-zero bytes in a loop)`)
  const cluster = await clusterUp({ nodes: 2, basePort: 0, cpu: 4, memMiB: 6144, extra: ['--driver', 'qemu', '--qemu-accel', 'tcg', '--wait', '300s'] })
  const scratch = mkdtempSync(join(tmpdir(), 'discovery-bench-bare-'))
  try {
    const members = await Promise.all(cluster.nodes.map(async m => ({ ...m, peerId: (await getJson(`${m.api}/v1/health`)).peerId as string })))
    for (const m of members) symlinkSync(guest.imagesDir, join(m.dataDir, 'images'))
    const cases: Case[] = []
    for (const memMiB of sizes) {
      for (const workload of ['idle', 'dirty'] as const) {
        const c: Case = { memMiB, workload, agent: [], bare: [] }
        cases.push(c)
        for (let rep = 0; rep < reps; rep++) {
          // Interleaved, so that both meet the same load of a shared machine.
          c.agent.push(await agentMigration(members, memMiB, `bb-${workload}`))
          c.bare.push(await bareMigration({ dir: join(scratch, `${memMiB}-${workload}-${rep}`), memMiB, image: join(guest.imagesDir, `bb-${workload}`), bandwidthMiBps: BANDWIDTH_MIBPS, maxDowntimeMs: MAX_DOWNTIME_MS, readyMark: READY_MARK }))
          const a = c.agent[rep]
          const b = c.bare[rep]
          log(`${memMiB} MiB ${workload} #${rep + 1}: agents ${fmt(a.totalMs, 0)} ms (downtime ${fmt(a.downtimeMs, 0)}, end to end ${fmt(a.endToEndMs, 0)}), bare ${fmt(b.totalMs, 0)} ms (downtime ${fmt(b.downtimeMs, 0)}, end to end ${fmt(b.endToEndMs, 0)})`)
        }
      }
    }
    return { cases, kernelPackage: guest.kernelPackage }
  } finally {
    await cluster.down()
    rmSync(scratch, { recursive: true, force: true })
  }
}

/** One VM created through agent 0, booted to its workload, migrated to the other agent, then deleted. */
async function agentMigration (members: Array<{ api: string, dataDir: string, peerId: string }>, memMiB: number, image: string): Promise<AgentRun> {
  const created = await request('POST', `${members[0].api}/v1/vms`, { cpu: 1, memMiB, image })
  if (created.status !== 201) throw new Error(`create: HTTP ${created.status} ${JSON.stringify(created.body)}`)
  const id = created.body.id as string
  const src = members.find(m => m.peerId === created.body.node)!
  const dst = members.find(m => m !== src)!
  await until(`${id}'s workload`, async () => readFileSync(join(src.dataDir, 'qemu', id, 'console.log'), 'utf8').includes(READY_MARK) ? true : undefined, 300_000)
  const res = await request('POST', `${src.api}/v1/vms/${id}/migrate`, { to: dst.peerId }, 600_000)
  if (res.status !== 200) throw new Error(`migrate: HTTP ${res.status} ${JSON.stringify(res.body)}`)
  const m = res.body.migration
  await request('DELETE', `${dst.api}/v1/vms/${id}`)
  return { totalMs: m.totalMs, downtimeMs: m.downtimeMs, endToEndMs: m.endedAtMs - m.startedAtMs, bytesMiB: m.bytesMiB, rounds: m.rounds, throttled: m.throttled === true }
}

/** The sim driver's model of the same migration, fed what QEMU measured: its throughput and the guest's dirty rate. */
function model (c: Case): { totalMs: number, downtimeMs: number, note: string } {
  const bw = median(c.bare.map(b => b.throughputMiBps))
  const dirty = median(c.bare.map(b => b.dirtyMiBps))
  const r = precopy({ memMiB: c.memMiB, bandwidthMiBps: bw, cpuBusy: 1, dirtyIntensity: Math.min(dirty / bw, 0.999), maxDowntimeMs: MAX_DOWNTIME_MS })
  const note = `${fmt(bw, 0)} MiB/s, dirty ${fmt(dirty, 0)} MiB/s`
  return r.ok ? { totalMs: r.totalMs, downtimeMs: r.downtimeMs, note } : { totalMs: Number.NaN, downtimeMs: Number.NaN, note: `${note}: ${r.code}` }
}

function report (cases: Case[]): string {
  const rows = cases.map(c => {
    const at = (xs: AgentRun[] | BareRun[], k: 'totalMs' | 'downtimeMs' | 'endToEndMs' | 'bytesMiB' | 'rounds'): number => median(xs.map(x => x[k]))
    const m = model(c)
    return [
      `${c.memMiB} MiB`, c.workload,
      fmt(at(c.agent, 'totalMs'), 0), fmt(at(c.bare, 'totalMs'), 0), fmt(at(c.agent, 'totalMs') / at(c.bare, 'totalMs'), 2),
      fmt(at(c.agent, 'downtimeMs'), 0), fmt(at(c.bare, 'downtimeMs'), 0),
      fmt(at(c.agent, 'endToEndMs'), 0), fmt(at(c.bare, 'endToEndMs'), 0), fmt(at(c.agent, 'endToEndMs') / at(c.bare, 'endToEndMs'), 2),
      `${fmt(at(c.agent, 'bytesMiB'), 1)}/${fmt(at(c.bare, 'bytesMiB'), 1)}`, `${fmt(at(c.agent, 'rounds'), 0)}/${fmt(at(c.bare, 'rounds'), 0)}`,
      `${c.agent.filter(a => a.throttled).length}/${c.bare.filter(b => b.throttled).length}`,
      fmt(m.totalMs, 0), fmt(m.downtimeMs, 1), m.note
    ]
  })
  return table(['VM', 'guest', 'total agents', 'total bare', '×', 'downtime agents', 'downtime bare', 'end-to-end agents', 'end-to-end bare', '×', 'MiB sent a/b', 'rounds a/b', 'throttled a/b', 'model total', 'model downtime', 'model fed'], rows)
}

function labReport (results: LabResult[]): string {
  return table(['locality', 'waves', 'migrations', 'inter-site', 'inter-site %', 'overload relieved p50 (s)'],
    results.map(r => [r.locality, r.waves, r.migrations, r.interSite, fmt(100 * r.interSite / Math.max(1, r.migrations), 0), fmt(median(r.reliefMs) / 1000, 1)]))
}

export async function main (args: string[]): Promise<number> {
  if (args.includes('--help')) {
    process.stdout.write('usage: npm run bench -- edge [--sizes 256,1024] [--reps 3] [--dirty 96] [--no-lab] [--lab-only] [--waves 6] [--json]\n')
    return 0
  }
  const sizes = arg(args, 'sizes', '256,1024').split(',').map(Number)
  const reps = Number(arg(args, 'reps', '3'))
  const dirtyMiB = Number(arg(args, 'dirty', '96'))
  const waves = Number(arg(args, 'waves', '6'))
  if (sizes.some(s => !Number.isInteger(s) || s < 128) || !Number.isInteger(reps) || reps < 1 || !Number.isInteger(dirtyMiB) || dirtyMiB < 1 || dirtyMiB > Math.min(...sizes) - 96 || !Number.isInteger(waves) || waves < 1) {
    process.stderr.write('bench edge: expected --sizes a comma list of MiB ≥ 128, --reps ≥ 1, --dirty from 1 to the smallest size - 96 MiB, --waves ≥ 1\n')
    return 2
  }
  const json = args.includes('--json')
  const log = (s: string): void => { process.stderr.write(s + '\n') }
  const out: Record<string, unknown> = { bandwidthMiBps: BANDWIDTH_MIBPS, maxDowntimeMs: MAX_DOWNTIME_MS }
  if (!args.includes('--lab-only')) {
    const { cases, kernelPackage } = await qemuMigrations(sizes, reps, dirtyMiB, log)
    out.kernelPackage = kernelPackage
    out.qemu = cases.map(c => ({ ...c, model: model(c) }))
    if (!json) process.stdout.write(`QEMU live migration between two agents against bare QEMU (TCG, ${BANDWIDTH_MIBPS} MiB/s cap, ${MAX_DOWNTIME_MS} ms downtime limit, medians of ${reps}):\n${report(cases)}\n\n`)
  }
  if (!args.includes('--no-lab')) {
    if (process.getuid?.() !== 0) {
      log('bench edge: the edge lab part needs root (network namespaces): skipped')
    } else {
      const results: LabResult[] = []
      for (const locality of ['off', 'on'] as const) results.push(await labInterSite(locality, waves, log))
      out.lab = results
      if (!json) process.stdout.write(`Edge lab (3 sites 25-40 ms apart, 2 agents each, sim driver): rebalancing after one overload per host in turn:\n${labReport(results)}\n`)
    }
  }
  if (json) process.stdout.write(JSON.stringify(out, null, 2) + '\n')
  return 0
}
