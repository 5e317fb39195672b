/**
 * The checker: judges a chaos run from its history and what was observed,
 * knowing nothing of how the agents work (after Jepsen's checkers). Pure: no
 * I/O, no clock. The invariants are DESIGN.md's:
 * 1. every VM acknowledged runs once the cluster settles, unless its delete was
 *    acknowledged (`lost` otherwise);
 * 2. no VM runs in two places, and one create never makes two VMs (`duplicated`);
 *    a VM whose delete was acknowledged does not run (`resurrected`); a create
 *    refused outright made nothing (`phantom`); an uncertain answer may go
 *    either way but never both: seen running once, it must not vanish;
 * 3. no sample shows an agent over its capacity (`overcommit`);
 * 4. every view agreed within the bound once churn stopped (`unconverged`);
 * plus: no agent died that the schedule did not kill, and no agent's log
 * shows an uncaught error (`crash`).
 */
import { type FaultRecord, type Observations, type Op, outcome, type VmSeen } from './history.ts'

export type ViolationKind = 'lost' | 'duplicated' | 'resurrected' | 'phantom' | 'overcommit' | 'crash' | 'unconverged' | 'unsettled' | 'fuzz'

export interface Violation {
  kind: ViolationKind
  message: string
  vm?: string
  agent?: number
  atMs?: number
  /** The requests that touched the VM, for the report. */
  history?: Op[]
  /** What else happened around it (faults of the agents involved), to help read it. */
  context?: string[]
}

/** What became of one VM the workload asked for. */
export type VmVerdict = 'ok' | 'lost' | 'duplicated' | 'resurrected' | 'phantom' | 'absent' | 'deleted'

export interface CheckResult {
  clean: boolean
  violations: Violation[]
  counts: {
    creates: number
    acknowledged: number
    uncertainCreates: number
    /** Uncertain creates whose VM exists at the end / does not. */
    uncertainPresent: number
    uncertainAbsent: number
    deletesAcknowledged: number
    ok: number
    lost: number
    duplicated: number
    resurrected: number
    phantom: number
    overcommitSamples: number
    crashes: number
    nodeSamples: number
    vmSamples: number
  }
  /** Milliseconds from churn stopping to views agreeing (undefined when they never did). */
  convergedAfterMs?: number
}

/** States in which a VM occupies a node. */
const PRESENT = new Set(['creating', 'running', 'migrating'])

function copiesOf (vms: VmSeen[]): VmSeen[] { return vms.filter(v => PRESENT.has(v.state)) }

/** Each fault of `agent` within `windowMs` of `atMs`, as a line. */
function faultsNear (faults: FaultRecord[], agent: number | undefined, atMs: number, windowMs: number): string[] {
  if (agent == null) return []
  return faults.filter(f => f.agents.includes(agent) && Math.abs(f.atMs - atMs) <= windowMs)
    .map(f => `agent ${agent} ${f.kind}${f.ok ? '' : ' (failed)'} at ${f.atMs} ms (${f.atMs - atMs >= 0 ? '+' : ''}${f.atMs - atMs} ms)`)
}

export function check (history: Op[], obs: Observations): CheckResult {
  const violations: Violation[] = []
  const counts: CheckResult['counts'] = {
    creates: 0, acknowledged: 0, uncertainCreates: 0, uncertainPresent: 0, uncertainAbsent: 0, deletesAcknowledged: 0,
    ok: 0, lost: 0, duplicated: 0, resurrected: 0, phantom: 0, overcommitSamples: 0, crashes: 0,
    nodeSamples: obs.nodeSamples.length, vmSamples: obs.vmSamples.length
  }

  // Everything seen, by the name the workload gave: during the run and at the end.
  const seenIds = new Map<string, Set<string>>()
  const firstSeen = new Map<string, number>()
  for (const s of obs.vmSamples) {
    for (const v of copiesOf(s.vms)) {
      const ids = seenIds.get(v.name) ?? new Set<string>()
      ids.add(v.id)
      seenIds.set(v.name, ids)
      if (!firstSeen.has(v.name)) firstSeen.set(v.name, s.atMs)
    }
  }
  const finalCopies = new Map<string, Array<VmSeen & { agent: number }>>()
  for (const a of obs.final.agents) {
    for (const v of copiesOf(a.vms)) {
      finalCopies.set(v.name, [...(finalCopies.get(v.name) ?? []), { ...v, agent: a.agent }])
      const ids = seenIds.get(v.name) ?? new Set<string>()
      ids.add(v.id)
      seenIds.set(v.name, ids)
    }
  }

  const byName = new Map<string, Op[]>()
  for (const op of history) byName.set(op.name, [...(byName.get(op.name) ?? []), op])

  for (const [name, ops] of byName) {
    const create = ops.find(o => o.op === 'create')
    if (create == null) continue
    counts.creates++
    const created = outcome(create)
    const id = create.vmId ?? [...(seenIds.get(name) ?? [])][0]
    const later = ops.filter(o => o !== create)
    const deletes = later.filter(o => o.op === 'delete')
    const deleteAcked = deletes.find(o => outcome(o) === 'ok')
    const deleteUncertain = deletes.some(o => outcome(o) === 'uncertain')
    // An uncertain create took effect if its VM was ever seen, or if any later request on it succeeded.
    const tookEffect = created === 'ok' || seenIds.has(name) || later.some(o => outcome(o) === 'ok')
    if (created === 'ok') counts.acknowledged++
    if (created === 'uncertain') counts.uncertainCreates++
    if (deleteAcked != null) counts.deletesAcknowledged++
    const copies = finalCopies.get(name) ?? []
    const ids = seenIds.get(name) ?? new Set<string>()
    const node = (create.body as { node?: string } | undefined)?.node
    const owner = node != null ? obs.peers[node] : undefined
    const v = (kind: Violation['kind'], message: string, context: string[] = []): void => {
      violations.push({ kind, message, vm: id ?? name, history: ops, context })
    }

    if (ids.size > 1) {
      counts.duplicated++
      v('duplicated', `one create of ${name} made ${ids.size} VMs: ${[...ids].join(', ')}`)
      continue
    }
    if (created === 'failed') {
      if (copies.length > 0 || ids.size > 0) {
        counts.phantom++
        v('phantom', `the create of ${name} was refused (${String(create.status)}) yet ${id} exists`)
      }
      continue
    }
    if (created === 'uncertain') {
      if (copies.length > 0) counts.uncertainPresent++
      else counts.uncertainAbsent++
    }
    if (copies.length > 1) {
      counts.duplicated++
      v('duplicated', `${id} (${name}) runs on ${copies.length} agents at the end: ${copies.map(c => `agent ${c.agent} (epoch ${c.epoch ?? '?'}, ${c.state})`).join(', ')}`)
      continue
    }
    if (deleteAcked != null) {
      if (copies.length > 0) {
        counts.resurrected++
        v('resurrected', `${id} (${name}) runs on agent ${copies[0].agent} at the end, though its delete was acknowledged at ${deleteAcked.endMs} ms through agent ${deleteAcked.agent}`)
      } else counts.ok++
      continue
    }
    if (!tookEffect || deleteUncertain) {
      counts.ok++
      continue
    }
    if (copies.length === 0) {
      counts.lost++
      const how = created === 'ok' ? `acknowledged (201) at ${create.endMs} ms` : `its create was uncertain (${String(create.status)}) but it was seen running at ${firstSeen.get(name) ?? '?'} ms`
      const context = [
        ...(owner != null ? [`placed on agent ${owner}`] : []),
        // A delete that failed yet took effect also leaves the VM nowhere: its answer was the wrong one.
        ...deletes.map(d => `a delete through agent ${d.agent} answered ${String(d.status)} at ${d.endMs} ms: if it took effect, that answer was wrong`),
        ...faultsNear(obs.faults, owner, create.endMs, 15_000)
      ]
      v('lost', `${id ?? name} (${name}) runs nowhere at the end: ${how}, never deleted`, context)
      continue
    }
    counts.ok++
  }

  const overBy = new Map<number, number>()
  for (const s of obs.nodeSamples) {
    const ratio = s.cpuOvercommit ?? 1
    const cpu = s.used.cpu + s.reserved.cpu
    const mem = s.used.memMiB + s.reserved.memMiB
    if (cpu > s.capacity.cpu * ratio || mem > s.capacity.memMiB) {
      counts.overcommitSamples++
      overBy.set(s.agent, (overBy.get(s.agent) ?? 0) + 1)
      if (overBy.get(s.agent) === 1) {
        violations.push({ kind: 'overcommit', agent: s.agent, atMs: s.atMs, message: `agent ${s.agent} over its capacity at ${s.atMs} ms: ${cpu} vCPU of ${s.capacity.cpu} × ${ratio}, ${mem} MiB of ${s.capacity.memMiB} (used + reserved)` })
      }
    }
  }

  for (const e of obs.exits) {
    if (e.expected) continue
    counts.crashes++
    violations.push({ kind: 'crash', agent: e.agent, atMs: e.atMs, message: `agent ${e.agent} exited at ${e.atMs} ms though the schedule did not kill it` })
  }
  for (const l of obs.logs) {
    if (l.lines.length === 0) continue
    counts.crashes++
    violations.push({ kind: 'crash', agent: l.agent, message: `agent ${l.agent}'s log shows a failure: ${l.lines.slice(0, 3).join(' | ').slice(0, 600)}`, context: l.lines.slice(0, 20) })
  }

  const { settle } = obs
  let convergedAfterMs: number | undefined
  if (settle.convergedMs == null) {
    violations.push({ kind: 'unconverged', message: `the views never agreed after churn stopped at ${settle.churnStoppedMs} ms` })
  } else {
    convergedAfterMs = Math.max(0, settle.convergedMs - settle.churnStoppedMs)
    if (convergedAfterMs > settle.boundMs) violations.push({ kind: 'unconverged', atMs: settle.convergedMs, message: `the views agreed ${convergedAfterMs} ms after churn stopped, over the bound of ${settle.boundMs} ms` })
  }
  if (settle.settledMs == null) violations.push({ kind: 'unsettled', message: 'the cluster never settled (every agent alive in every view, no VM migrating) before the deadline: the final observation may be taken mid-change' })

  return { clean: violations.length === 0, violations, counts, convergedAfterMs }
}
