/**
 * What a chaos run records, and nothing else: the requests of the workload
 * with their answers and times (the history), what was sampled from the
 * agents while it ran, what they showed once it settled, and the faults as
 * they were injected. The checker (checker.ts) judges these alone. Times are
 * milliseconds since the run started.
 */

export type OpKind = 'create' | 'delete' | 'migrate'

/**
 * How a request ended: an HTTP status; `refused` when the connection was
 * refused (the request never reached an agent); `timeout` when no answer came
 * in time; `error` when the connection broke after the request was sent.
 */
export type OpStatus = number | 'refused' | 'timeout' | 'error'

export interface Op {
  seq: number
  op: OpKind
  /** create: the unique name the workload gave the VM, what ties an uncertain create to a VM that shows up. */
  name: string
  /** The VM's id: from the create's `201`, or the one a delete or a migration targets. */
  vmId?: string
  /** The index of the agent whose API took the request. */
  agent: number
  startMs: number
  endMs: number
  status: OpStatus
  /** The answer's body (errors and small bodies; cut to a few hundred characters). */
  body?: unknown
}

/** Took effect, did not, or may have either way. */
export type Outcome = 'ok' | 'failed' | 'uncertain'

/**
 * A create is acknowledged by `201`; a delete by `200`; a migration by `200`.
 * A refused connection and a clear refusal (4xx, `503`: no node can host it)
 * did nothing. A timeout, a broken connection, `504` and any other 5xx may
 * have taken effect or not.
 */
export function outcome (op: Pick<Op, 'op' | 'status'>): Outcome {
  const s = op.status
  if (s === 'refused') return 'failed'
  if (s === 'timeout' || s === 'error') return 'uncertain'
  if (op.op === 'create' ? s === 201 : s === 200) return 'ok'
  if (s >= 400 && s < 500) return 'failed'
  if (s === 503) return 'failed'
  return 'uncertain'
}

/** One VM as an agent reports it among its own (`GET /v1/vms`). */
export interface VmSeen { id: string, name: string, state: string, node: string, epoch?: number }

/** An agent's own VMs at one time. */
export interface VmSample { atMs: number, agent: number, vms: VmSeen[] }

/** An agent's own entry of `GET /v1/nodes` at one time. */
export interface NodeSample {
  atMs: number
  agent: number
  capacity: { cpu: number, memMiB: number }
  used: { cpu: number, memMiB: number }
  reserved: { cpu: number, memMiB: number }
  cpuOvercommit?: number
}

/** An agent process found gone; `expected` when the schedule had killed it. */
export interface AgentExit { atMs: number, agent: number, expected: boolean }

/** Lines of an agent's log that say it failed: uncaught errors, fatal lines (found by `crashLines`). */
export interface AgentLogFinding { agent: number, lines: string[] }

export type FaultKind = 'kill' | 'restart' | 'pause' | 'resume' | 'partition' | 'heal'

/** A fault as injected (or tried). */
export interface FaultRecord {
  atMs: number
  kind: FaultKind
  agents: number[]
  /** partition: the other side. */
  peers?: number[]
  oneWay?: boolean
  ok: boolean
  detail?: string
}

/** The cluster after the faults stopped. */
export interface Settle {
  /** When the last fault was lifted and every agent answered again. */
  churnStoppedMs: number
  /** When every view first agreed (membership and capacity), or undefined if never before the deadline. */
  convergedMs?: number
  /** When the settle condition held (all alive in every view, no VM migrating), or undefined at the deadline. */
  settledMs?: number
  /** Views must agree within this after churn stops. */
  boundMs: number
}

/** What each agent ran once the cluster settled: its own VMs. */
export interface FinalObservation { atMs: number, agents: Array<{ agent: number, peerId?: string, up: boolean, vms: VmSeen[] }> }

export interface Observations {
  vmSamples: VmSample[]
  nodeSamples: NodeSample[]
  exits: AgentExit[]
  logs: AgentLogFinding[]
  faults: FaultRecord[]
  settle: Settle
  final: FinalObservation
  /** peer id → agent index, to name agents in the verdicts. */
  peers: Record<string, number>
}

/**
 * The lines of an agent's log that say it failed: a log line at `fatal`
 * (pino level 60) or naming an uncaught error or an unhandled rejection, and
 * anything that is not a JSON log line and looks like an error or its stack
 * (what Node prints when an uncaught error ends the process). Node's own
 * warnings are not failures.
 */
export function crashLines (text: string): string[] {
  const out: string[] = []
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line === '') continue
    if (line.startsWith('{')) {
      try {
        const r = JSON.parse(line) as { level?: number, msg?: string, event?: string }
        if ((typeof r.level === 'number' && r.level >= 60) || /uncaught|unhandled/i.test(String(r.msg ?? ''))) out.push(line)
        continue
      } catch {}
    }
    if (/^\(node:\d+\) \w*Warning/.test(line) || /^\(Use `node --trace/.test(line)) continue
    if (/Error\b|Uncaught|FATAL|Aborted|Segmentation fault|^\s*at .+:\d+:\d+\)?$|^node:internal/.test(line)) out.push(line)
  }
  return out
}
