/**
 * `npm run bench -- fuzz [--nodes 2] [--messages 100000] [--run 10000] [--seed S] [--json]`
 *
 * Hostile input at volume (src/chaos/fuzz.ts): a local cluster of `--nodes`
 * agents (`discovery cluster up --base-port 0`, one VM each), then
 * `--messages` hostile messages split into runs of `--run` (each run a new
 * rogue peer and a new seed, spread over every agent), each run checking
 * that no agent crashed, nothing changed and every refusal was counted.
 * Prints messages per second and the counts per entry point.
 */
import { parseArgs } from 'node:util'
import { FUZZ_ENTRIES, fuzzCluster, type FuzzReport, type FuzzTarget } from '../src/chaos/fuzz.ts'
import { clusterUp } from './lib/cluster.ts'
import { getJson, request } from './lib/http.ts'
import { table } from './lib/table.ts'

const USAGE = `usage: npm run bench -- fuzz [--nodes 2] [--messages 100000] [--run 10000] [--seed S] [--json]
  --nodes N       agent processes (default 2)
  --messages N    hostile messages in all (default 100,000)
  --run N         messages per run: a new rogue peer and seed each (default 10,000)
  --seed S        the first run's seed (default: random, printed)
  --json          one JSON object on stdout`

export async function main (args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { nodes: { type: 'string' }, messages: { type: 'string' }, run: { type: 'string' }, seed: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean' } } })
  if (values.help === true) { process.stdout.write(USAGE + '\n'); return 0 }
  const int = (name: string, v: string | undefined, dflt: number, min: number): number => {
    const n = v == null ? dflt : Number(v)
    if (!Number.isInteger(n) || n < min) throw new Error(`Expected \`--${name}\` to be an integer >= ${min}, got \`${String(v)}\`\n${USAGE}`)
    return n
  }
  const nodes = int('nodes', values.nodes, 2, 1)
  const messages = int('messages', values.messages, 100_000, 1)
  const run = int('run', values.run, 10_000, 1)
  const seed = int('seed', values.seed, Math.floor(Math.random() * 2 ** 31), 0)
  const say = (line: string): void => { if (values.json !== true) process.stdout.write(line + '\n') }
  say(`fuzz: ${messages} messages in runs of ${run} on ${nodes} agent(s), seed ${seed}`)

  const cluster = await clusterUp({ nodes, basePort: 0, cpu: 4, memMiB: 8192, waitS: 60 + 6 * nodes })
  try {
    const targets: FuzzTarget[] = []
    for (const m of cluster.nodes) {
      const { peerId } = await getJson(`${m.api}/v1/health`)
      targets.push({ api: m.api, listen: `${m.listen}/p2p/${peerId}`, dataDir: m.dataDir })
      // `never`: a starved agent's false death (refuted at once) must not move its VM, a change the input did not make.
      const created = await request('POST', `${m.api}/v1/vms`, { cpu: 1, memMiB: 256, name: 'steady', restartPolicy: 'never' })
      if (created.status !== 201) throw new Error(`could not create the steady VM on ${m.api}: ${created.status}`)
    }
    // Steady before the first snapshot: every VM running, every view showing every VM.
    const deadline = Date.now() + 60_000
    while (true) {
      const views = await Promise.all(targets.map(async t => await getJson<Array<{ vmCount: number }>>(`${t.api}/v1/nodes`)))
      const vms = await Promise.all(targets.map(async t => await getJson<Array<{ state: string }>>(`${t.api}/v1/vms`)))
      if (views.every(v => v.length === nodes && v.every(n => n.vmCount === 1)) && vms.every(l => l.every(v => v.state === 'running'))) break
      if (Date.now() > deadline) throw new Error('the cluster did not settle in 60 s')
      await new Promise(resolve => setTimeout(resolve, 200))
    }

    const total: FuzzReport = { messages: 0, byEntry: {}, crashes: 0, stateChanges: 0, violations: [] }
    for (const { entry } of FUZZ_ENTRIES) total.byEntry[entry] = { sent: 0, answered: 0, dropped: 0 }
    const started = Date.now()
    for (let i = 0; total.messages < messages; i++) {
      const n = Math.min(run, messages - total.messages)
      const t0 = Date.now()
      const r = await fuzzCluster(targets, { messages: n, seed: seed + i })
      const s = (Date.now() - t0) / 1000
      say(`run ${i + 1}: seed ${seed + i}, ${r.messages} messages in ${s.toFixed(1)} s (${Math.round(r.messages / s)}/s), ${r.crashes} crashes, ${r.stateChanges} state changes, ${r.violations.length} violations`)
      for (const v of r.violations.slice(0, 10)) say(`  ${v}`)
      total.messages += r.messages
      total.crashes += r.crashes
      total.stateChanges += r.stateChanges
      total.violations.push(...r.violations)
      for (const [entry, e] of Object.entries(r.byEntry)) {
        total.byEntry[entry].sent += e.sent
        total.byEntry[entry].answered += e.answered
        total.byEntry[entry].dropped += e.dropped
      }
      if (r.messages === 0) break
    }
    const seconds = (Date.now() - started) / 1000
    const rate = Math.round(total.messages / seconds)
    if (values.json === true) {
      process.stdout.write(JSON.stringify({ nodes, seed, seconds, messagesPerSecond: rate, ...total }) + '\n')
    } else {
      say(table(['entry point', 'sent', 'answered', 'dropped'], Object.entries(total.byEntry).map(([entry, e]) => [entry, e.sent, e.answered, e.dropped])))
      say(`${total.messages} messages in ${seconds.toFixed(0)} s: ${rate} messages/s; ${total.crashes} crashes, ${total.stateChanges} state changes, ${total.violations.length} violations`)
    }
    return total.crashes === 0 && total.stateChanges === 0 && total.violations.length === 0 ? 0 : 1
  } finally {
    await cluster.down()
  }
}
