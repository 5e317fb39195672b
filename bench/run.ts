/**
 * `npm run bench -- NAME [options]`: runs one benchmark (placement: against a
 * real local cluster started through the CLI; rebalance and sim-placement: in the simulator). Each benchmark is a module with a
 * `main(args)` that prints its report and resolves to an exit code.
 */
const BENCHMARKS: Record<string, { about: string, load: () => Promise<{ main: (args: string[]) => Promise<number> }> }> = {
  chaos: { about: 'the chaos soak: discovery chaos at 30 agents in runs (kills, pauses, partitions, optional fuzzing), every invariant checked', load: async () => await import('./chaos.ts') },
  fuzz: { about: 'hostile input at volume: 100,000 malformed, truncated, oversized and replayed messages on every entry point of a local cluster, in runs; messages/s, crashes, state changes', load: async () => await import('./fuzz.ts') },
  healing: { about: 'failure detection at N agent processes: time until every agent marks a SIGKILLed or SIGSTOPped peer dead, false positives under a create load', load: async () => await import('./healing.ts') },
  'per-process': { about: 'the same N agents one per process and K per process (cluster up --per-process K): time to come up, idle CPU, memory per agent, convergence, with ratios', load: async () => await import('./per-process.ts') },
  placement: { about: 'create throughput and latency, gossip convergence, RSS and idle CPU per node count', load: async () => await import('./placement.ts') },
  'probe-cost': { about: 'CPU per failure-detector probe at N libp2p hosts: libp2p ping against /discovery/swim/1.0.0', load: async () => await import('./probe-cost.ts') },
  'sim-placement': { about: 'the simulator\'s placement scenario: 100,000 VMs through random agents at 1,000 and 10,000 nodes, lan and wan', load: async () => await import('./sim-placement.ts') },
  edge: { about: 'QEMU live migration between two agents against bare QEMU and the pre-copy model; inter-site migrations with and without locality on the edge lab (root)', load: async () => await import('./edge.ts') },
  rebalance: { about: 'the simulator\'s vmplaces and vmplaces-10g tables: none, centralized and dvms side by side at 1,024 and 10,000 hosts', load: async () => await import('./rebalance.ts') }
}

function usage (): string {
  return 'usage: npm run bench -- NAME [options]   (NAME --help for its options)\n\nbenchmarks:\n' +
    Object.entries(BENCHMARKS).map(([name, b]) => `  ${name.padEnd(14)} ${b.about}`).join('\n')
}

const [name, ...rest] = process.argv.slice(2)
if (name == null || name === '--help' || name === '-h') {
  process.stdout.write(usage() + '\n')
  process.exit(name == null ? 2 : 0)
}
const bench = BENCHMARKS[name]
if (bench == null) {
  process.stderr.write(`bench: no benchmark \`${name}\`\n${usage()}\n`)
  process.exit(2)
}
try {
  process.exitCode = await (await bench.load()).main(rest)
} catch (err: any) {
  process.stderr.write(`bench ${name}: ${err?.message ?? String(err)}\n`)
  process.exitCode = 1
}
