/**
 * The report of a chaos run: `report.json` (the verdict with every violation,
 * the seed and the command that replays it, the faults, the requests, the
 * detection and restart times, the timeline), `report.html` (the same, with
 * the timeline drawn: report-html.ts) and `history.json` (every request).
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { CheckResult, Violation } from './checker.ts'
import type { FaultRecord, Op, Settle } from './history.ts'
import { outcome } from './history.ts'
import type { AgentEvent, Observer, TimelinePoint } from './observe.ts'
import type { ChaosOptions } from './options.ts'
import { reportHtml } from './report-html.ts'
import { countKinds, type ScheduledFault } from './schedule.ts'

/** What fuzzCluster (src/chaos/fuzz.ts) reports, or that it is not there. */
export interface FuzzSummary {
  available: boolean
  messages?: number
  byEntry?: Record<string, { sent: number, answered: number, dropped: number }>
  crashes?: number
  stateChanges?: number
  violations?: string[]
}

/** A fault's detection: when the first and the last of the other agents declared the killed or paused agent dead (after the fault, before it was back). */
export interface Detection { agent: number, kind: 'kill' | 'pause', atMs: number, firstMs?: number, lastMs?: number, observers: number }

export interface ChaosReport {
  verdict: 'clean' | 'violations'
  violations: Violation[]
  seed: number
  command: string
  startedAt: string
  nodes: number
  options: ChaosOptions
  files: { json: string, html: string, history: string, cluster: string, logs: string[] }
  faults: { planned: Record<string, number>, injected: Record<string, number>, failed: number, deferred: number, skipped: number, records: FaultRecord[] }
  requests: { total: number, byOp: Record<string, { ok: number, failed: number, uncertain: number }>, byStatus: Record<string, number>, skippedTicks: number }
  counts: CheckResult['counts']
  detection: { samples: Detection[], firstP50Ms?: number, lastP50Ms?: number, lastMaxMs?: number }
  /** `again`: restarts of a VM at an epoch another restart had reached (`repeatedRestarts`). */
  restarts: { count: number, again: number, p50Ms?: number, maxMs?: number, samples: Array<{ atMs: number, ms: number, agent: number }> }
  fenced: number
  lostReported: number
  settle: Settle & { convergedAfterMs?: number }
  timeline: Array<TimelinePoint & { answered: number, failed: number }>
  fuzz?: FuzzSummary
}

export function quantile (xs: number[], q: number): number | undefined {
  if (xs.length === 0) return undefined
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]
}

export interface ReportInput {
  options: ChaosOptions
  command: string
  startedAt: Date
  dir: string
  clusterDir: string
  nodes: number
  schedule: ScheduledFault[]
  faults: FaultRecord[]
  deferred: { n: number, skipped: number }
  history: Op[]
  skippedTicks: number
  observer: Observer
  result: CheckResult
  settle: Settle
  fuzz?: FuzzSummary
  memberLogs: string[]
  /** Agent index → peer id. */
  peerIds: string[]
}

function detections (faults: FaultRecord[], events: Observer['events'], peerOf: (agent: number) => string | undefined): Detection[] {
  const out: Detection[] = []
  for (const f of faults) {
    if (!f.ok || (f.kind !== 'kill' && f.kind !== 'pause')) continue
    // Each agent of the fault (several when it was done to a process of them).
    for (const agent of f.agents) {
      const back = faults.find(e => e.atMs >= f.atMs && e.agents.includes(agent) && (e.kind === 'restart' || e.kind === 'resume'))
      const peerId = peerOf(agent)
      const seen = new Map<number, number>()
      for (const e of events) {
        if (e.type !== 'peer.dead' || e.data.peerId !== peerId || e.atMs < f.atMs || (back != null && e.atMs > back.atMs + 1_000)) continue
        if (!seen.has(e.agent)) seen.set(e.agent, e.atMs - f.atMs)
      }
      const times = [...seen.values()]
      out.push({ agent, kind: f.kind, atMs: f.atMs, observers: times.length, ...(times.length > 0 ? { firstMs: Math.min(...times) } : {}), ...(times.length > 0 ? { lastMs: Math.max(...times) } : {}) })
    }
  }
  return out
}

/**
 * Restarts of a VM at an epoch another restart of it had reached
 * (`vm.restarted` events with the same id and epoch): two holders that acted
 * on one death, each believing itself the restarter — the two sides of a
 * partition, or a view of who holds what that differed. Fencing stops one of
 * the two copies, so the checker's verdict does not show it; for that time
 * the VM ran twice. Counted from the events the observer collected (an agent
 * killed before it was read loses its own).
 */
export function repeatedRestarts (events: readonly AgentEvent[]): number {
  const seen = new Set<string>()
  let again = 0
  for (const e of events) {
    if (e.type !== 'vm.restarted') continue
    const key = `${String(e.data.id)}@${String(e.data.epoch)}`
    if (seen.has(key)) again++
    else seen.add(key)
  }
  return again
}

export function buildReport (i: ReportInput): ChaosReport {
  const byOp: ChaosReport['requests']['byOp'] = {}
  const byStatus: Record<string, number> = {}
  for (const h of i.history) {
    const b = byOp[h.op] ?? (byOp[h.op] = { ok: 0, failed: 0, uncertain: 0 })
    b[outcome(h)]++
    byStatus[String(h.status)] = (byStatus[String(h.status)] ?? 0) + 1
  }
  const ev = i.observer.events
  const restarted = ev.filter(e => e.type === 'vm.restarted').map(e => ({ atMs: e.atMs, ms: Number(e.data.ms), agent: e.agent })).filter(r => Number.isFinite(r.ms))
  const timeline = i.observer.timeline.map((p, k, all) => {
    const from = k === 0 ? 0 : all[k - 1].atMs
    const inBucket = i.history.filter(h => h.endMs > from && h.endMs <= p.atMs)
    return { ...p, answered: inBucket.filter(h => outcome(h) !== 'uncertain').length, failed: inBucket.filter(h => outcome(h) !== 'ok').length }
  })
  const dets = detections(i.faults, ev, (agent) => i.peerIds[agent])
  const report: ChaosReport = {
    verdict: i.result.clean ? 'clean' : 'violations',
    violations: i.result.violations,
    seed: i.options.seed,
    command: i.command,
    startedAt: i.startedAt.toISOString(),
    nodes: i.nodes,
    options: i.options,
    files: { json: join(i.dir, 'report.json'), html: join(i.dir, 'report.html'), history: join(i.dir, 'history.json'), cluster: i.clusterDir, logs: i.memberLogs },
    faults: {
      planned: countKinds(i.schedule),
      injected: countKinds(i.faults.filter(f => f.ok) as any),
      failed: i.faults.filter(f => !f.ok).length,
      deferred: i.deferred.n,
      skipped: i.deferred.skipped,
      records: i.faults
    },
    requests: { total: i.history.length, byOp, byStatus, skippedTicks: i.skippedTicks },
    counts: i.result.counts,
    detection: {
      samples: dets,
      firstP50Ms: quantile(dets.flatMap(d => d.firstMs ?? []), 0.5),
      lastP50Ms: quantile(dets.flatMap(d => d.lastMs ?? []), 0.5),
      lastMaxMs: quantile(dets.flatMap(d => d.lastMs ?? []), 1)
    },
    restarts: { count: restarted.length, again: repeatedRestarts(ev), p50Ms: quantile(restarted.map(r => r.ms), 0.5), maxMs: quantile(restarted.map(r => r.ms), 1), samples: restarted },
    fenced: ev.filter(e => e.type === 'vm.fenced').length,
    lostReported: ev.filter(e => e.type === 'vm.lost').length,
    settle: { ...i.settle, ...(i.result.convergedAfterMs != null ? { convergedAfterMs: i.result.convergedAfterMs } : {}) },
    timeline,
    ...(i.fuzz != null ? { fuzz: i.fuzz } : {})
  }
  return report
}

export function writeReport (dir: string, report: ChaosReport, history: Op[]): void {
  writeFileSync(join(dir, 'report.json'), JSON.stringify(report, null, 2))
  writeFileSync(join(dir, 'history.json'), JSON.stringify(history))
  writeFileSync(join(dir, 'report.html'), reportHtml(report))
}

/** The report in a few lines, for the terminal. */
export function summaryText (r: ChaosReport): string {
  const k = r.faults.injected
  const lines = [
    `verdict: ${r.verdict === 'clean' ? 'CLEAN' : `${r.violations.length} VIOLATION(S)`}`,
    ...r.violations.map(v => `  ${v.kind}: ${v.message}`),
    `seed ${r.seed}; ${r.nodes} agents; faults: ${k.kill} kills, ${k.restart} restarts, ${k.pause} pauses, ${k.partition} partitions (${r.faults.records.filter(f => f.kind === 'partition' && f.ok && f.oneWay === true).length} one-way), ${r.faults.failed} failed, ${r.faults.skipped} skipped`,
    `requests: ${r.requests.total} (${Object.entries(r.requests.byOp).map(([op, b]) => `${op} ${b.ok} ok / ${b.failed} failed / ${b.uncertain} uncertain`).join(', ')})`,
    `VMs: ${r.counts.acknowledged} acknowledged, ${r.counts.ok} ok, ${r.counts.lost} lost, ${r.counts.duplicated} duplicated, ${r.counts.resurrected} resurrected; ${r.counts.overcommitSamples} over-commit samples of ${r.counts.nodeSamples}; ${r.counts.crashes} crashes`,
    `detection (all agents) p50 ${r.detection.lastP50Ms ?? '-'} ms, max ${r.detection.lastMaxMs ?? '-'} ms; ${r.restarts.count} VM restarts (${r.restarts.again} at an epoch reached already), p50 ${r.restarts.p50Ms ?? '-'} ms, max ${r.restarts.maxMs ?? '-'} ms; views agreed ${r.settle.convergedAfterMs ?? 'never'} ms after churn stopped (bound ${r.settle.boundMs} ms)`,
    ...(r.fuzz != null ? [r.fuzz.available ? `fuzz: ${r.fuzz.messages} messages, ${r.fuzz.crashes} crashes, ${r.fuzz.stateChanges} state changes` : 'fuzz: fuzzing not available'] : []),
    `report: ${r.files.html}`,
    `replay: ${r.command}`
  ]
  return lines.join('\n')
}
