/**
 * The cluster under test and the faults done to it: SIGKILL, restart through
 * `cluster restart` (src/cli/cluster-restart.ts), SIGSTOP/SIGCONT, and
 * partitions and heals: the kernel's when each agent has a network namespace
 * of its own (`--netns`: packets dropped in the receiving namespace,
 * src/cli/netns.ts), otherwise through the agents' admin routes. Each fault
 * is recorded as it is done. With several agents to a process (`cluster up
 * --per-process`), a kill, a restart, a pause or a resume is done to the whole
 * process: every agent of it, recorded together. Admin requests never go to a paused agent (it
 * would take them on waking, maybe after the heal): it is healed when it
 * resumes instead. Kernel drops need no agent: a paused or restarting agent
 * is cut off and healed like the others.
 */
import { clusterRestart, clusterRestartGroup } from '../cli/cluster-restart.ts'
import { alive, readClusterFile } from '../cli/cluster.ts'
import { dropFrom, liftDrops, type NetLab } from '../cli/netns.ts'
import type { FaultKind, FaultRecord } from './history.ts'
import { send } from './http.ts'

export type MemberState = 'up' | 'killed' | 'paused' | 'starting'

export interface Member {
  index: number
  api: string
  /** libp2p address with its /p2p/ id. */
  listen: string
  dataDir: string
  log: string
  pid: number
  peerId: string
  state: MemberState
  /** Where its log stood when the run began: what is after is this run's. */
  logFrom: number
  /** With several agents to a process: the index of the process's first agent (cluster.json `group`). */
  group?: number
}

export class ChaosCluster {
  readonly dir: string
  readonly token: string | undefined
  readonly members: Member[]
  readonly faults: FaultRecord[] = []
  /** Pids the schedule killed: their end is no crash. */
  readonly killedPids = new Set<number>()
  readonly #t0: number
  readonly #restartWaitMs: number
  /** Agents that hold partition blocks (healed when they resume if a heal missed them). */
  readonly #blocked = new Set<number>()
  /** The cluster's namespaces, when it has them: partitions are then the kernel's. */
  readonly lab: NetLab | undefined

  constructor (dir: string, token: string | undefined, members: Member[], t0: number, restartWaitMs: number, lab?: NetLab) {
    this.dir = dir
    this.token = token
    this.members = members
    this.#t0 = t0
    this.#restartWaitMs = restartWaitMs
    this.lab = lab
  }

  now (): number { return Date.now() - this.#t0 }

  up (): Member[] { return this.members.filter(m => m.state === 'up') }
  /** The units down — agents, or processes of agents, killed, paused or restarting: what `--max-down` counts. */
  downUnits (): number { return new Set(this.members.filter(m => m.state !== 'up').map(m => this.unit(m.index)[0])).size }

  #record (kind: FaultKind, agents: number[], ok: boolean, detail?: string, extra: Partial<FaultRecord> = {}): void {
    this.faults.push({ atMs: this.now(), kind, agents, ok, ...(detail != null ? { detail } : {}), ...extra })
  }

  /** The agents that share agent `i`'s process (itself alone unless the cluster runs several to a process). */
  unit (i: number): number[] {
    const g = this.members[i].group
    return g == null ? [i] : this.members.filter(m => m.group === g).map(m => m.index)
  }

  /** The agents by process, when some process runs several (undefined: each agent its own). */
  units (): number[][] | undefined {
    if (this.members.every(m => m.group == null)) return undefined
    return this.members.filter(m => this.unit(m.index)[0] === m.index).map(m => this.unit(m.index))
  }

  /** SIGKILLs agent `i`'s process: the agent, or every agent of its process. */
  kill (i: number): void {
    const unit = this.unit(i)
    const m = this.members[i]
    this.killedPids.add(m.pid)
    try {
      process.kill(m.pid, 'SIGKILL')
      for (const j of unit) {
        this.members[j].state = 'killed'
        this.#blocked.delete(j)
      }
      this.#record('kill', unit, true)
    } catch (err: any) {
      this.#record('kill', unit, false, err.code ?? err.message)
    }
  }

  async restart (i: number): Promise<void> {
    const m = this.members[i]
    if (m.group != null) { await this.#restartGroup(m.group); return }
    m.state = 'starting'
    try {
      const r = await clusterRestart(this.dir, i, { waitMs: this.#restartWaitMs, graceMs: 2_000 })
      m.pid = r.pid
      m.api = r.api
      m.state = 'up'
      this.#record('restart', [i], true, `pid ${r.pid}`)
    } catch (err: any) {
      // Try to find it anyway: cluster.json has its pid if it was spawned.
      const pid = readClusterFile(this.dir)?.nodes.find(n => n.index === i)?.pid
      if (pid != null && alive(pid)) m.pid = pid
      m.state = pid != null && alive(pid) ? 'up' : 'killed'
      this.#record('restart', [i], false, err.message)
    }
  }

  async #restartGroup (group: number): Promise<void> {
    const unit = this.members.filter(m => m.group === group)
    for (const m of unit) m.state = 'starting'
    try {
      const list = await clusterRestartGroup(this.dir, group, { waitMs: this.#restartWaitMs, graceMs: 2_000 })
      for (const r of list) Object.assign(this.members[r.index], { pid: r.pid, api: r.api, state: 'up' })
      this.#record('restart', unit.map(m => m.index), true, `pid ${list[0]?.pid}`)
    } catch (err: any) {
      // Those that answer are up; a process that runs with some agents not answering yet counts them up too (they will).
      const pid = readClusterFile(this.dir)?.nodes.find(n => n.index === group)?.pid
      const running = pid != null && alive(pid)
      for (const m of unit) Object.assign(m, running ? { pid, state: 'up' } : { state: 'killed' })
      this.#record('restart', unit.map(m => m.index), false, err.message)
    }
  }

  /** SIGSTOPs agent `i`'s process: the agent, or every agent of its process. */
  pause (i: number): void {
    const unit = this.unit(i)
    const m = this.members[i]
    try {
      process.kill(m.pid, 'SIGSTOP')
      for (const j of unit) this.members[j].state = 'paused'
      this.#record('pause', unit, true)
    } catch (err: any) {
      this.#record('pause', unit, false, err.code ?? err.message)
    }
  }

  async resume (i: number): Promise<void> {
    const unit = this.unit(i)
    const m = this.members[i]
    try {
      process.kill(m.pid, 'SIGCONT')
      for (const j of unit) this.members[j].state = 'up'
      this.#record('resume', unit, true)
    } catch (err: any) {
      for (const j of unit) this.members[j].state = 'killed'
      this.#record('resume', unit, false, err.code ?? err.message)
      return
    }
    if (this.lab == null) await Promise.all(unit.filter(j => this.#blocked.has(j)).map(async j => await this.#admin(j, '/v1/admin/heal', {})))
  }

  /** Agent `i` drops what `from` sends (the kernel's partition); false when `ip` failed. */
  async #drop (i: number, from: number[]): Promise<boolean> {
    try {
      await dropFrom(this.lab!, i, from)
      return true
    } catch {
      return false
    }
  }

  async #admin (i: number, path: string, body: unknown): Promise<boolean> {
    const m = this.members[i]
    if (m.state !== 'up') return false
    const a = await send(m.api, this.token, 'POST', path, body, 5_000)
    const ok = a.status === 200
    if (ok && path.endsWith('/partition')) this.#blocked.add(i)
    if (ok && path.endsWith('/heal')) this.#blocked.delete(i)
    return ok
  }

  /**
   * `side` cut off from `rest`: both ways (each agent of either side blocks the
   * other side: one side's block leaves the blocked peer's redial handshakes
   * half-open), or one way (the agents of `side` refuse what `rest` starts).
   */
  async partition (side: number[], rest: number[], oneWay: boolean): Promise<void> {
    const ids = (list: number[]): string[] => list.map(i => this.members[i].peerId)
    const lab = this.lab
    const calls = lab != null
      ? side.map(async i => await this.#drop(i, rest))
      : side.map(async i => await this.#admin(i, '/v1/admin/partition', { peers: ids(rest), direction: oneWay ? 'inbound' : 'both' }))
    if (!oneWay) {
      calls.push(...rest.map(async i => lab != null ? await this.#drop(i, side) : await this.#admin(i, '/v1/admin/partition', { peers: ids(side), direction: 'both' })))
    }
    const results = await Promise.all(calls)
    const done = results.filter(Boolean).length
    const what = lab != null ? 'namespaces dropping packets' : 'agents blocked'
    this.#record('partition', side, done > 0, `${done} of ${results.length} ${what}`, { peers: rest, oneWay })
  }

  /** Lifts every block of the agents named (all of them without a list). */
  async heal (agents: number[] = this.members.map(m => m.index)): Promise<void> {
    const lab = this.lab
    if (lab != null) {
      const lifted = await Promise.all(agents.map(async i => await liftDrops(lab, i).then(() => true, () => false)))
      this.#record('heal', agents, lifted.every(Boolean), `${lifted.filter(Boolean).length} of ${agents.length} namespaces healed`)
      return
    }
    const results = await Promise.all(agents.map(async i => await this.#admin(i, '/v1/admin/heal', {})))
    this.#record('heal', agents, results.some(Boolean) || agents.every(i => this.members[i].state !== 'up'), `${results.filter(Boolean).length} of ${agents.length} agents healed`)
  }

  /** Every agent back: paused ones resumed, killed ones restarted, every block lifted. */
  async liftAll (): Promise<void> {
    for (const m of this.members) if (m.state === 'paused') await this.resume(m.index)
    // One restart per process killed (named by its first agent).
    const killed = new Set(this.members.filter(m => m.state === 'killed').map(m => this.unit(m.index)[0]))
    await Promise.all([...killed].map(async i => await this.restart(i)))
    // Every agent, whatever was recorded: a partition request that timed out here may still have been applied there.
    await this.heal()
  }
}
