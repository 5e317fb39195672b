/**
 * The `discovery` command. Every command takes `--json`; exit code 0 on
 * success, 1 on a failed operation, 2 on bad usage, with a one-line error
 * that says what to do.
 */
import { Command, CommanderError, Option } from 'commander'
import { rmSync } from 'node:fs'
import { resolve as resolvePath } from 'node:path'
import { blockedTable, heal, partition, resolvePeers } from './admin.ts'
import { resolveAgentConfig, runAgent } from './agent-command.ts'
import { agentOptions, parseAgentArgv } from './agent-options.ts'
import { runAgentGroup } from './agent-group.ts'
import { ApiClient } from './client.ts'
import { clusterDown, clusterFilePath, clusterStatus, readClusterFile, statusTable } from './cluster.ts'
import { clusterUp } from './cluster-up.ts'
import { vmQemus } from '../hypervisor/index.ts'
import { clusterRestart } from './cluster-restart.ts'
import { chaosCommand } from './chaos-command.ts'
import { OperationError, UsageError } from './errors.ts'
import { followEvents } from './events.ts'
import { parseDuration, parseInteger } from './parse.ts'
import { createBody, migrationLine, migrationsTable, nodesTable, vmMigrate, vmTable } from './vm.ts'
import { runSim } from './sim-command.ts'
import { keygen } from './keygen.ts'

const collect = (value: string, prev: string[] = []): string[] => [...prev, value]

function out (json: boolean | undefined, data: unknown, text: () => string): void {
  process.stdout.write((json === true ? JSON.stringify(data, null, 2) : text()) + '\n')
}

function client (opts: { api?: string, apiToken?: string }, timeoutMs?: number): ApiClient {
  return new ApiClient(opts.api, opts.apiToken ?? process.env.DISCOVERY_API_TOKEN, timeoutMs)
}

const program = new Command('discovery')
  .description('A fully distributed IaaS: agents that gossip their resources and place VMs together, with no central scheduler.')
  .version('0.1.0')
  .exitOverride()
  .showHelpAfterError(false)
  .configureOutput({ writeErr: (s) => { if (!s.startsWith('error:')) process.stderr.write(s) } })

agentOptions(program.command('agent')
  .description('run one agent in the foreground; structured logs on stderr'))
  .action(async (opts) => { await runAgent(opts) })

program.command('agents')
  .description('run several agents in this one process (what `cluster up --per-process K` starts): each its own libp2p node, store, API and log, as listed in the spec file')
  .requiredOption('--spec <file>', 'JSON: { "agents": [{ "argv": [agent flags...], "log": FILE }] }')
  .action(async (opts) => { await runAgentGroup(opts.spec) })

const cluster = program.command('cluster').description('run a local cluster of agents on this machine')
cluster.command('up')
  .description('start N agent processes bootstrapped to each other')
  .requiredOption('--nodes <n>', 'how many agents')
  .option('--dir <dir>', 'where data and logs go', '.discovery/cluster')
  .option('--base-port <p>', 'agent i serves its API on P+i and libp2p on P+1000+i; 0: ports picked by the system', '7100')
  .option('--foreground', 'stay attached, show a live table, stop every agent on Ctrl-C')
  .option('--cpu <n>', 'vCPUs each agent offers')
  .option('--mem <size>', 'memory each agent offers')
  .option('--cpu-overcommit <ratio>', 'CPU over-commit ratio of each agent (default 1: demand can never overload)')
  .option('--consolidate', 'each agent evacuates nearly empty nodes')
  .option('--replicas <k>', 'replica holders of each VM (default 2)')
  .option('--restart-quorum', 'each agent restarts a dead owner\'s VMs only with a majority of the VM\'s replica set')
  .option('--max-connections <n|none>', 'each agent closes idle connections beyond N (default 10)')
  .option('--observers <k|none>', 'each agent observed by about K others for failure detection (default 4; none: all-to-all)')
  .option('--wait <duration>', 'give up once the agents have made no progress (starting, seeing each other) for this long (default 60s)')
  .option('--wave <n>', 'agents started at once (default 4 per core)')
  .option('--nice <n>', 'niceness of each agent once it answers, so that those still starting come first (default 5; 0: as started)')
  .option('--driver <name>', 'each agent\'s hypervisor driver: sim (default) or qemu')
  .option('--qemu-accel <accel>', 'qemu driver: auto (default), kvm or tcg')
  .option('--admin', 'serve the admin routes (partitions) on every agent, with a token made into DIR/api.token')
  .option('--netns', 'root: each agent in a network namespace of its own, joined by a bridge (kernel partitions for chaos); a swarm key and a token made into DIR')
  .option('--per-process <k>', 'K agents in each process (each its own libp2p node, store, API and log; default 1): 5 or 10 bring 100 agents up about twice as fast in a quarter of the memory (README, Many agents on one machine); such agents cannot be killed or restarted alone (`discovery chaos --per-process K` kills whole processes)')
  .option('--json', 'machine-readable output')
  .action(async (opts) => {
    const nodes = parseInteger('--nodes', opts.nodes, 1, 1000)
    const basePort = String(opts.basePort).trim() === '0' ? 0 : parseInteger('--base-port', opts.basePort, 1024, 64000)
    const agentArgs: string[] = []
    if (opts.cpu != null) agentArgs.push('--cpu', opts.cpu)
    if (opts.mem != null) agentArgs.push('--mem', opts.mem)
    if (opts.cpuOvercommit != null) agentArgs.push('--cpu-overcommit', opts.cpuOvercommit)
    if (opts.consolidate === true) agentArgs.push('--consolidate')
    if (opts.driver != null) agentArgs.push('--driver', opts.driver)
    if (opts.qemuAccel != null) agentArgs.push('--qemu-accel', opts.qemuAccel)
    if (opts.maxConnections != null) agentArgs.push('--max-connections', opts.maxConnections)
    if (opts.observers != null) agentArgs.push('--observers', opts.observers)
    if (opts.replicas != null) agentArgs.push('--replicas', opts.replicas)
    if (opts.restartQuorum === true) agentArgs.push('--restart-quorum')
    // The flags passed on to every agent, checked here by the agent's own rules: a bad one is refused before any agent starts.
    resolveAgentConfig(parseAgentArgv(agentArgs))
    const { file, children } = await clusterUp({
      nodes,
      dir: opts.dir,
      basePort,
      foreground: opts.foreground === true,
      agentArgs,
      json: opts.json === true,
      admin: opts.admin === true,
      netns: opts.netns === true,
      ...(opts.perProcess != null ? { perProcess: parseInteger('--per-process', opts.perProcess, 1, 100) } : {}),
      stallMs: opts.wait != null ? parseDuration('--wait', opts.wait) : 60_000,
      ...(opts.wave != null ? { waveSize: parseInteger('--wave', opts.wave, 1, 1000) } : {}),
      ...(opts.nice != null ? { nice: parseInteger('--nice', opts.nice, 0, 19) } : {})
    })
    out(opts.json, file, () => `${nodes} agents up:\n` + file.nodes.map(m => `  agent ${m.index}: api ${m.api}  p2p ${m.listen}  log ${m.log}`).join('\n') +
      (opts.foreground === true ? '\nCtrl-C stops every agent.' : `\nStop them with: discovery cluster down --dir ${opts.dir}`))
    if (opts.foreground === true) await foreground(opts.dir, children, opts.json === true)
  })
cluster.command('status')
  .description('each agent of the local cluster: up or down, peers, VMs')
  .option('--dir <dir>', 'the cluster\'s folder', '.discovery/cluster')
  .option('--json', 'machine-readable output')
  .action(async (opts) => {
    const rows = await clusterStatus(opts.dir)
    out(opts.json, rows, () => statusTable(rows))
    if (rows.some(r => !r.up)) process.exitCode = 1
  })
cluster.command('restart').argument('<index>')
  .description('start agent INDEX again on its data dir with the command line recorded at `cluster up` (stopping it first if it runs); cluster.json keeps its new pid')
  .option('--dir <dir>', 'the cluster\'s folder', '.discovery/cluster')
  .option('--wait <duration>', 'how long to wait for it to answer (default 60s)')
  .option('--json', 'machine-readable output')
  .action(async (index, opts) => {
    const m = await clusterRestart(opts.dir, parseInteger('INDEX', index, 0, 999), { waitMs: opts.wait != null ? parseDuration('--wait', opts.wait) : 60_000 })
    out(opts.json, m, () => `agent ${m.index} restarted: pid ${m.pid}, api ${m.api}, log ${m.log}`)
  })
cluster.command('down')
  .description('stop every agent of the local cluster')
  .option('--dir <dir>', 'the cluster\'s folder', '.discovery/cluster')
  .option('--purge', 'also stop the VMs (the qemu driver\'s QEMU processes outlive their agents) and delete the agents\' data (VMs, identities)')
  .option('--json', 'machine-readable output')
  .action(async (opts) => {
    const { stopped, vmsStopped, vmsRunning } = await clusterDown(opts.dir, 10_000, opts.purge === true)
    out(opts.json, { stopped, vmsStopped, vmsRunning }, () => `stopped ${stopped} agents` + (vmsStopped > 0 ? ` and ${vmsStopped} VMs` : '') +
      (vmsRunning > 0 ? `\n${vmsRunning} VMs (QEMU processes) run on: their agents adopt them at the next \`discovery cluster up --driver qemu --dir ${opts.dir}\`; \`cluster down --purge\` stops them` : ''))
  })

const apiOption = (): Option => new Option('--api <url>', 'an agent\'s API (default $DISCOVERY_API or http://127.0.0.1:7100)')
const tokenOption = (): Option => new Option('--api-token <token>', 'bearer token (default $DISCOVERY_API_TOKEN)')

const vm = program.command('vm').description('create, list, show, delete and migrate VMs')
vm.command('create')
  .description('create a VM: any agent accepts it and the cluster places it')
  .option('--cpu <n>', 'vCPUs')
  .option('--mem <size>', 'memory, e.g. 512MiB or 4GiB')
  .option('--name <name>', 'a name (default: the id)')
  .option('--image <ref>', 'an image reference')
  .option('--label <k=v>', 'a label of the VM (repeat)', collect)
  .option('--node-label <k=v>', 'only on nodes with this label (repeat)', collect)
  .option('--spread <group>', 'never on a node that runs another VM of this group')
  .option('--zone <zone>', 'only on nodes labelled zone=ZONE')
  .option('--restart-policy <policy>', 'when its node dies: always (restart it on a live peer, default) or never (report it lost)')
  .addOption(apiOption()).addOption(tokenOption())
  .option('--json', 'machine-readable output')
  .action(async (opts) => {
    const placed = await client(opts).call('POST', '/v1/vms', createBody(opts))
    out(opts.json, placed, () => `${placed.id} placed on ${placed.node} (${placed.state})`)
  })
vm.command('ls')
  .description('list VMs: this agent\'s, or with --cluster every VM it knows of')
  .option('--cluster', 'every VM in the cluster')
  .addOption(apiOption()).addOption(tokenOption())
  .option('--json', 'machine-readable output')
  .action(async (opts) => {
    const vms = await client(opts).call<any[]>('GET', `/v1/vms${opts.cluster === true ? '?scope=cluster' : ''}`)
    out(opts.json, vms, () => vms.length === 0 ? 'no VMs' : vmTable(vms))
  })
vm.command('show').argument('<id>')
  .description('one VM')
  .option('--wait <duration>', 'if the agent does not know the VM yet, wait this long for it (at most 60s)')
  .addOption(apiOption()).addOption(tokenOption())
  .option('--json', 'machine-readable output')
  .action(async (id, opts) => {
    const waitMs = opts.wait != null ? parseDuration('--wait', opts.wait) : 0
    const wait = opts.wait != null ? `?wait=${waitMs}ms` : ''
    const v = await client(opts, 30_000 + waitMs).call('GET', `/v1/vms/${encodeURIComponent(id)}${wait}`)
    out(opts.json, v, () => vmTable([v]))
  })
vm.command('delete').argument('<id>')
  .description('delete a VM wherever it runs')
  .addOption(apiOption()).addOption(tokenOption())
  .option('--json', 'machine-readable output')
  .action(async (id, opts) => {
    const r = await client(opts).call('DELETE', `/v1/vms/${encodeURIComponent(id)}`)
    out(opts.json, r, () => `${id} deleted`)
  })
vm.command('migrate').argument('<id>')
  .description('live-migrate a VM (to a chosen peer with --to)')
  .option('--to <peer>', 'destination peer id')
  .addOption(apiOption()).addOption(tokenOption())
  .option('--json', 'machine-readable output')
  .action(async (id, opts) => {
    const m = await vmMigrate(client(opts), id, opts.to)
    out(opts.json, m, () => migrationLine(m))
  })
vm.command('migrations')
  .description('live migrations this agent ran or is running, with their figures')
  .addOption(apiOption()).addOption(tokenOption())
  .option('--json', 'machine-readable output')
  .action(async (opts) => {
    const list = await client(opts).call<any[]>('GET', '/v1/migrations')
    out(opts.json, list, () => list.length === 0 ? 'no migrations' : migrationsTable(list))
  })

program.command('keygen')
  .description('make a swarm key (libp2p pnet format, 32 random bytes): every agent of a cluster needs the same one')
  .option('--out <file>', 'write it to FILE with mode 0600 (default: print it)')
  .option('--force', 'replace FILE if it exists')
  .option('--json', 'machine-readable output')
  .action((opts) => {
    const r = keygen(opts)
    if (r.file == null) process.stdout.write(opts.json === true ? JSON.stringify({ key: r.text }) + '\n' : r.text)
    else out(opts.json, { file: r.file }, () => `swarm key written to ${r.file} (mode 0600): give every agent the same file with --swarm-key`)
  })

const admin = program.command('admin').description('admin routes of an agent started with --admin: partitions for tests and chaos')
admin.command('partition')
  .description('make the --from agent refuse and drop connections with the --to peers (both ways, or with --one-way only what they start)')
  .requiredOption('--from <api>', 'the API URL of the agent that cuts itself off')
  .requiredOption('--to <peer...>', 'peer ids, or agents\' API URLs (repeat, or comma-separate)')
  .option('--one-way', 'refuse only what they start (connections, streams, gossip); the agent still reaches them')
  .addOption(tokenOption())
  .option('--json', 'machine-readable output')
  .action(async (opts) => {
    const peers = await resolvePeers(opts.to, (url) => client({ ...opts, api: url }))
    const blocked = await partition(client({ ...opts, api: opts.from }), peers, opts.oneWay === true)
    out(opts.json, { blocked }, () => blockedTable(blocked))
  })
admin.command('heal')
  .description('lift the --from agent\'s partitions: of the --to peers, or all')
  .requiredOption('--from <api>', 'the API URL of the agent')
  .option('--to <peer...>', 'peer ids, or agents\' API URLs (default: every blocked peer)')
  .addOption(tokenOption())
  .option('--json', 'machine-readable output')
  .action(async (opts) => {
    const peers = opts.to != null ? await resolvePeers(opts.to, (url) => client({ ...opts, api: url })) : undefined
    const r = await heal(client({ ...opts, api: opts.from }), peers)
    out(opts.json, r, () => `healed ${r.healed.length === 0 ? 'no peer' : r.healed.join(', ')}\n` + blockedTable(r.blocked))
  })

program.command('sim')
  .description('simulate N hosts in one process: none, centralized and dvms side by side on the same trace, the placement scenario, or the churn scenario')
  .option('--nodes <n>', 'hosts')
  .option('--vms <m>', 'VMs (default: the scenario\'s VMs per host × hosts)')
  .option('--duration <d>', 'simulated time, e.g. 3600s or 1h (default: the scenario\'s)')
  .option('--scenario <name>', 'vmplaces (default: after VMPlaceS, 1 Gbit/s links), vmplaces-10g, consolidation, placement (VMs created through random agents, views from simulated gossip), or churn (the failure detector and the restart rule while nodes are killed, hung and brought back)')
  .option('--seed <s>', 'seed of the trace and the network (default 1)')
  .option('--algorithms <list>', 'comma-separated: none,centralized,dvms (default all three)')
  .option('--latency <lan|wan|duration>', 'one-way link latency: lan (0.1 ms, default), wan (20–50 ms) or e.g. 5ms; placement: lan or wan, the agents\' profile too')
  .option('--rate <vms/s>', 'placement: creates per second, cluster-wide (default: the VMs over 300 s)')
  .option('--churn <failures/min>', 'churn: kills and hangs per minute, cluster-wide (default 6)')
  .option('--vms-per-node <n>', 'churn: VMs each node owns, one in ten with restart policy never, restarted by the replica rule when their owner dies (default 10; 0: the detector only)')
  .option('--loss <p>', 'probability that a message is lost (default 0)')
  .option('--central-delay <measured|duration>', 'centralized planning delay: its measured compute time (default) or a fixed one, for reproducible runs')
  .option('--central-period <d>', 'centralized planner period (default 30s)')
  .option('--demand-mean <f>', 'mean VM CPU demand, a fraction of its vCPUs')
  .option('--bandwidth <MiB/s|Gbit/s>', 'what one live migration gets of the link, e.g. 119.2, 125MB/s or 10Gbit/s (default: the scenario\'s)')
  .option('--dirty-intensity <F|LO-HI[:N]>', 'VMs\' dirty-page intensity: 0.3, 0.1-0.5 (uniform per VM) or 0.1-0.5:5 (5 classes) (default: the scenario\'s)')
  .option('--no-progress', 'no progress bar on stderr')
  .option('--json', 'machine-readable report')
  .action((opts) => { runSim(opts) })

program.command('nodes')
  .description('the cluster as the contacted agent sees it')
  .addOption(apiOption()).addOption(tokenOption())
  .option('--json', 'machine-readable output')
  .action(async (opts) => {
    const nodes = await client(opts).call<any[]>('GET', '/v1/nodes')
    out(opts.json, nodes, () => nodesTable(nodes))
  })

program.command('events')
  .description('follow the agent\'s events (GET /v1/events), one line each; reconnects when the stream drops; Ctrl-C stops')
  .option('--types <t,...>', 'only these event types, e.g. vm.placed,migration.committed')
  .addOption(apiOption()).addOption(tokenOption())
  .option('--json', 'one JSON object per line: { id, type, atMs, data }')
  .action(async (opts) => { await followEvents(opts) })

chaosCommand(program)

/** `cluster up --foreground`: a live table until Ctrl-C, then every agent stopped and waited for. */
async function foreground (dir: string, children: import('node:child_process').ChildProcess[], json: boolean): Promise<void> {
  const tty = process.stdout.isTTY === true && !json
  let stopping = false
  const draw = async (): Promise<void> => {
    if (stopping) return
    const rows = await clusterStatus(dir).catch(() => [])
    if (stopping || rows.length === 0) return
    const stamp = new Date().toISOString().slice(11, 19)
    if (json) process.stdout.write(JSON.stringify({ at: stamp, agents: rows }) + '\n')
    else process.stdout.write((tty ? '\x1b[H\x1b[2J' : '') + `discovery local cluster · ${stamp} · Ctrl-C stops every agent\n` + statusTable(rows) + '\n')
  }
  const timer = setInterval(() => { void draw() }, tty ? 2_000 : 10_000)
  await draw()
  await new Promise<void>(resolve => {
    const stop = (): void => {
      if (stopping) return
      stopping = true
      clearInterval(timer)
      process.stdout.write('\nstopping every agent…\n')
      for (const c of children) if (c.exitCode == null) c.kill('SIGTERM')
      const force = setTimeout(() => { for (const c of children) if (c.exitCode == null) c.kill('SIGKILL') }, 10_000)
      const members = readClusterFile(dir)?.nodes ?? []
      void Promise.all(children.map(async c => await new Promise(r => { if (c.exitCode != null || c.signalCode != null) r(null); else c.once('exit', r) }))).then(async () => {
        clearTimeout(force)
        rmSync(clusterFilePath(dir), { force: true })
        // The qemu driver's VMs outlive their agents: say so, and how to stop them.
        const vms = (await Promise.all(members.map(async m => await vmQemus(resolvePath(m.dataDir)).catch(() => [])))).flat().length
        process.stdout.write('all agents stopped\n' + (vms > 0 ? `${vms} VMs (QEMU processes) run on: the next \`discovery cluster up --driver qemu --dir ${dir}\` adopts them; stop them with \`discovery cluster up\` then \`cluster down --purge\`\n` : ''))
        resolve()
      })
    }
    process.on('SIGINT', stop)
    process.on('SIGTERM', stop)
  })
}

/** Runs the command line: bin/discovery.js calls it, from the bundle or from the sources. */
export async function main (): Promise<void> {
  try {
    await program.parseAsync(process.argv)
  } catch (err: any) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') process.exit(0)
      process.stderr.write(`discovery: ${err.message.replace(/^error: /, '')} (see discovery --help)\n`)
      process.exit(2)
    }
    if (err instanceof UsageError || err?.name === 'UsageError') {
      process.stderr.write(`discovery: ${err.message}\n`)
      process.exit(2)
    }
    if (err instanceof OperationError || err?.name === 'OperationError') {
      process.stderr.write(`discovery: ${err.message}\n`)
      process.exit(1)
    }
    process.stderr.write(`discovery: ${err?.message ?? String(err)}\n`)
    process.exit(1)
  }
}
