/**
 * What the harness watches while the run goes: every few seconds each live
 * agent's own entry of `GET /v1/nodes` (used against capacity) and its own VMs
 * (`GET /v1/vms`), whether each agent's process still runs, and the agents'
 * events (`GET /v1/events`: deaths seen, VMs restarted, lost and fenced) for
 * the detection and restart times of the report.
 */
import { alive } from '../cli/cluster.ts'
import { SseParser } from '../cli/events.ts'
import type { ChaosCluster } from './faults.ts'
import type { AgentExit, NodeSample, VmSample, VmSeen } from './history.ts'
import { get } from './http.ts'

export interface AgentEvent { agent: number, type: string, atMs: number, data: Record<string, any> }

/** One point of the report's timeline. */
export interface TimelinePoint { atMs: number, live: number, vmsRunning: number }

export const EVENT_TYPES = ['peer.dead', 'peer.alive', 'vm.restarted', 'vm.lost', 'vm.fenced']

interface NodeEntry { peerId: string, capacity: NodeSample['capacity'], used: NodeSample['used'], reserved: NodeSample['reserved'], cpuOvercommit?: number, state: string }

export class Observer {
  readonly vmSamples: VmSample[] = []
  readonly nodeSamples: NodeSample[] = []
  readonly exits: AgentExit[] = []
  readonly events: AgentEvent[] = []
  readonly timeline: TimelinePoint[] = []
  readonly #c: ChaosCluster
  readonly #t0: number
  readonly #everyMs: number
  readonly #exited = new Set<number>()
  #timer: NodeJS.Timeout | undefined
  #stopped = false
  readonly #streams = new Map<number, AbortController>()

  constructor (cluster: ChaosCluster, t0: number, everyMs: number) {
    this.#c = cluster
    this.#t0 = t0
    this.#everyMs = everyMs
  }

  start (): void {
    let busy = false
    this.#timer = setInterval(() => {
      if (busy) return
      busy = true
      void this.sample().finally(() => { busy = false })
    }, this.#everyMs)
    for (const m of this.#c.members) void this.#follow(m.index)
  }

  stop (): void {
    this.#stopped = true
    clearInterval(this.#timer)
    for (const s of this.#streams.values()) s.abort()
  }

  /** An agent whose process is gone though the schedule did not kill it: once per pid. */
  checkExits (): void {
    for (const m of this.#c.members) {
      if (m.state === 'killed' || m.state === 'starting' || this.#exited.has(m.pid) || alive(m.pid)) continue
      this.#exited.add(m.pid)
      this.exits.push({ atMs: this.#c.now(), agent: m.index, expected: this.#c.killedPids.has(m.pid) })
    }
  }

  async sample (): Promise<void> {
    this.checkExits()
    const up = this.#c.up()
    const running = new Set<string>()
    await Promise.all(up.map(async m => {
      const [nodes, vms] = await Promise.all([
        get<NodeEntry[]>(m.api, this.#c.token, '/v1/nodes'),
        get<VmSeen[]>(m.api, this.#c.token, '/v1/vms')
      ])
      const atMs = this.#c.now()
      const own = nodes?.find(n => n.peerId === m.peerId)
      if (own != null) this.nodeSamples.push({ atMs, agent: m.index, capacity: own.capacity, used: own.used, reserved: own.reserved, ...(own.cpuOvercommit != null ? { cpuOvercommit: own.cpuOvercommit } : {}) })
      if (vms != null) {
        this.vmSamples.push({ atMs, agent: m.index, vms: vms.map(v => ({ id: v.id, name: v.name, state: v.state, node: v.node, epoch: v.epoch })) })
        for (const v of vms) if (v.state === 'running') running.add(v.id)
      }
    }))
    this.timeline.push({ atMs: this.#c.now(), live: up.length, vmsRunning: running.size })
  }

  /** Follows agent `i`'s events while the run lasts, reconnecting (to its new address after a restart). */
  async #follow (i: number): Promise<void> {
    while (!this.#stopped) {
      const m = this.#c.members[i]
      if (m.state === 'up') {
        const ctl = new AbortController()
        this.#streams.set(i, ctl)
        try {
          const headers: Record<string, string> = { accept: 'text/event-stream' }
          if (this.#c.token != null) headers.authorization = `Bearer ${this.#c.token}`
          const res = await fetch(`${m.api}/v1/events?types=${EVENT_TYPES.join(',')}`, { headers, signal: ctl.signal })
          if (res.status === 200 && res.body != null) {
            const parser = new SseParser((_id, type, data) => {
              try {
                const e = JSON.parse(data)
                this.events.push({ agent: i, type, atMs: e.atMs - this.#t0, data: e.data ?? {} })
              } catch {}
            })
            const decoder = new TextDecoder()
            for await (const chunk of res.body) parser.push(decoder.decode(chunk as Uint8Array, { stream: true }))
          }
        } catch {}
      }
      if (!this.#stopped) await new Promise(r => setTimeout(r, 500))
    }
  }
}
