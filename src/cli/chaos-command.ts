/**
 * `discovery chaos`: the chaos harness (src/chaos). Progress on stderr; the
 * verdict and where the report went on stdout, or with `--json` only the
 * report. Exit code 0 when the run is clean, 1 on any violation.
 */
import type { Command } from 'commander'
import { readClusterFile } from './cluster.ts'
import { OperationError } from './errors.ts'
import { parseChaosOptions, runChaos, summaryText } from '../chaos/index.ts'

/**
 * What a cluster's agents were started with: the replica count (`--replicas` in their recorded command line; the
 * agents' default 2) and the most agents in one process (`cluster up --per-process`; 1 without).
 */
function attached (dir: string): { replicas: number, perProcess: number } {
  const file = readClusterFile(dir)
  if (file == null) throw new OperationError(`no cluster in ${dir}: start one with \`discovery cluster up --admin --nodes N --dir ${dir}\``)
  if (file.tokenFile == null) throw new OperationError(`the cluster in ${dir} was started without --admin: partitions need its admin routes; start it with \`discovery cluster up --admin\``)
  const argv = file.nodes[0]?.argv ?? []
  const i = argv.indexOf('--replicas')
  const groups = new Map<number, number>()
  for (const m of file.nodes) if (m.group != null) groups.set(m.group, (groups.get(m.group) ?? 0) + 1)
  return { replicas: i >= 0 ? Number(argv[i + 1]) : 2, perProcess: Math.max(1, ...groups.values()) }
}

export function chaosCommand (program: Command): void {
  program.command('chaos')
    .description('kill, pause and partition real agents under a workload, check every invariant against the history, write a report')
    .option('--nodes <n>', 'agents to start (3 to 200)')
    .requiredOption('--duration <d>', 'how long faults and workload run, e.g. 60s or 10m')
    .option('--kill-every <d>', 'mean time between SIGKILLs, each followed by a restart on the same data dir (default 10s; 0: none)')
    .option('--pause-every <d>', 'mean time between SIGSTOP/SIGCONT pauses (default 30s; 0: none)')
    .option('--partition-every <d>', 'mean time between partitions, two-way or one-way, each healed (default 30s; 0: none)')
    .option('--max-down <f>', 'agents (processes, with --per-process) killed or paused at once at most, below the replica count (default replicas − 1)')
    .option('--rate <r>', 'workload requests a second: creates, deletes, migrations (default 5)')
    .option('--seed <s>', 'seed of the schedule and the workload (default: a fresh one, printed)')
    .option('--report <dir>', 'where report.json, report.html and history.json go (default .discovery/chaos/seed-S)')
    .option('--attach <cluster_dir>', 'work on a cluster started with `discovery cluster up --admin` instead of starting one')
    .option('--fuzz <n>', 'after the faults, send N hostile messages to every entry point (src/chaos/fuzz.ts)')
    .option('--replicas <k>', 'replicas of each VM\'s record in the cluster started (default 2)')
    .option('--cpu <n>', 'vCPUs each agent started offers (default 8)')
    .option('--converge-within <d>', 'views must agree this long after churn stops (default 5s)')
    .option('--settle-timeout <d>', 'how long the cluster may take to settle after the faults (default 120s)')
    .option('--netns', 'root: each agent started in a network namespace of its own, partitions made by the kernel (packets dropped) instead of the admin routes')
    .option('--per-process <k>', 'K agents in each process of the cluster started (cluster up --per-process; default 1): a kill, pause or restart takes a whole process, and --max-down counts processes')
    .option('--json', 'print only the report JSON on stdout')
    .action(async (flags) => {
      const opts = parseChaosOptions(flags, flags.attach != null ? attached(flags.attach) : undefined)
      const report = await runChaos(opts, { progress: (line) => { process.stderr.write(line + '\n') } })
      process.stdout.write((opts.json ? JSON.stringify(report, null, 2) : summaryText(report)) + '\n')
      process.exitCode = report.verdict === 'clean' ? 0 : 1
    })
}
