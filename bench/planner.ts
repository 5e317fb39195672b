/**
 * `npx node bench/planner.ts`: how long `plan()` takes, on a partition of
 * 50 hosts × 30 VMs and on a 10,000-host cluster (the centralized baseline),
 * each with one overloaded host; plus a consolidation and a worst case where
 * almost every host is out of memory, so every VM tried scans them all.
 * Figures only, never pass/fail.
 */
import { loadavg } from 'node:os'
import { plan, type HostLoad, type Problem, type VmLoad } from '../src/core/planner.ts'
import { seededRng } from '../src/core/rng.ts'

const RUNS = 50
const WARMUP = 10

function cluster (hosts: number, vmsPerHost: number, seed: number, memFull = false): HostLoad[] {
  const rng = seededRng(seed)
  return Array.from({ length: hosts }, (_, i) => {
    // Host 0 at 120 % of its cores, host 1 at 5 %, the rest at 40–80 %.
    const load = i === 0 ? 1.2 : i === 1 ? 0.05 : 0.4 + 0.4 * rng.next()
    const vms: VmLoad[] = Array.from({ length: i === 1 ? 3 : vmsPerHost }, (_, j) => ({
      id: `h${i}v${j}`,
      cpu: 2,
      memMiB: 1024 * (1 + Math.floor(rng.next() * 3)),
      demand: 0,
      ...(rng.next() < 0.2 ? { spread: `g${Math.floor(rng.next() * 50)}` } : {})
    }))
    for (const vm of vms) vm.demand = Math.min(vm.cpu, 32 * load / vms.length)
    const used = vms.reduce((s, v) => s + v.memMiB, 0)
    const memMiB = memFull && i > 1 && i < hosts - 1 ? used : 131072
    return { peerId: `peer-${String(i).padStart(5, '0')}`, capacity: { cpu: 32, memMiB }, cpuOvercommit: 2, vms }
  })
}

function time (name: string, hosts: HostLoad[], problem: Problem): void {
  const ms: number[] = []
  let result = plan(hosts, problem)
  for (let i = 1; i < WARMUP; i++) plan(hosts, problem)
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now()
    result = plan(hosts, problem)
    ms.push(performance.now() - t0)
  }
  ms.sort((a, b) => a - b)
  const outcome = result.ok ? `${result.migrations.length} migrations, ${result.memMovedMiB} MiB` : `ok:false (${result.reason})`
  process.stdout.write(`${name.padEnd(46)} median ${ms[RUNS >> 1].toFixed(2)} ms, p90 ${ms[Math.floor(RUNS * 0.9)].toFixed(2)} ms, max ${ms[RUNS - 1].toFixed(2)} ms  → ${outcome}\n`)
}

const overload: Problem = { kind: 'overload', peerId: 'peer-00000' }
const underload: Problem = { kind: 'underload', peerId: 'peer-00001' }
process.stdout.write(`plan(), ${RUNS} runs each after ${WARMUP} warm-up runs; load average ${loadavg()[0].toFixed(1)} (other work skews the tail)\n`)
time('partition 50 hosts × 30 VMs, overload', cluster(50, 30, 1), overload)
time('partition 50 hosts × 30 VMs, underload', cluster(50, 30, 1), underload)
time('cluster 10,000 hosts × 30 VMs, overload', cluster(10_000, 30, 2), overload)
time('cluster 10,000 hosts × 30 VMs, underload', cluster(10_000, 30, 2), underload)
time('cluster 10,000 hosts, all but one memory-full', cluster(10_000, 30, 3, true), overload)
