/**
 * The workload of a chaos run: creates, deletes and live migrations at a
 * steady rate through randomly chosen live agents, every request recorded in
 * the history with its times and answer. Its choices (which operation, which
 * agent among those up, which VM) come from a generator seeded from the run's
 * seed; which agents are up depends on timing, so a replay makes the same
 * draws, not always the same requests.
 */
import { type Rng, seededRng } from '../core/rng.ts'
import type { ChaosCluster } from './faults.ts'
import type { Op } from './history.ts'
import { send, trimBody } from './http.ts'

export interface WorkloadOptions {
  /** Requests a second. */
  rate: number
  seed: number
  /** The number of VMs the workload keeps around: it creates below it and mostly deletes above. */
  targetVms: number
  /** Each VM's size. */
  cpu: number
  memMiB: number
  /** Longer than the agents' own uncertainty (a create is `504` after 20 s without its owner). */
  timeoutMs: number
  /** Requests in flight at most: past it, a tick is skipped (the cluster is not keeping up). */
  maxInFlight: number
}

export class Workload {
  readonly history: Op[] = []
  readonly #c: ChaosCluster
  readonly #o: WorkloadOptions
  readonly #rng: Rng
  #seq = 0
  #inFlight = new Set<Promise<void>>()
  /** VMs acknowledged and not deleted: id → name. */
  readonly #live = new Map<string, string>()
  readonly #deleting = new Set<string>()
  #timer: NodeJS.Timeout | undefined
  skipped = 0

  constructor (cluster: ChaosCluster, opts: WorkloadOptions) {
    this.#c = cluster
    this.#o = opts
    // Its own stream, apart from the schedule's: adding a fault does not change the workload's draws.
    this.#rng = seededRng((opts.seed ^ 0x5bd1e995) >>> 0)
  }

  start (): void {
    this.#timer = setInterval(() => { this.#tick() }, 1000 / this.#o.rate)
  }

  /** Stops issuing requests and waits for those in flight. */
  async stop (): Promise<void> {
    clearInterval(this.#timer)
    await Promise.all([...this.#inFlight])
  }

  get answered (): number { return this.history.filter(o => typeof o.status === 'number').length }

  #tick (): void {
    const r = this.#rng.next()
    const pickAgent = this.#rng.next()
    const pickVm = this.#rng.next()
    if (this.#inFlight.size >= this.#o.maxInFlight) {
      this.skipped++
      return
    }
    const up = this.#c.up()
    if (up.length === 0) return
    const agent = up[Math.floor(pickAgent * up.length)]
    const ids = [...this.#live.keys()].filter(id => !this.#deleting.has(id)).sort()
    const pCreate = ids.length === 0 ? 1 : ids.length < this.#o.targetVms ? 0.6 : 0.2
    let p: Promise<void>
    if (r < pCreate) p = this.#create(agent.index, agent.api)
    else {
      const id = ids[Math.floor(pickVm * ids.length)]
      p = (r - pCreate) / (1 - pCreate) < 0.7 ? this.#delete(agent.index, agent.api, id) : this.#migrate(agent.index, agent.api, id)
    }
    this.#inFlight.add(p)
    void p.finally(() => this.#inFlight.delete(p))
  }

  async #request (op: Op['op'], name: string, vmId: string | undefined, agent: number, api: string, method: string, path: string, body?: unknown): Promise<Op> {
    const seq = this.#seq++
    const startMs = this.#c.now()
    const a = await send(api, this.#c.token, method, path, body, this.#o.timeoutMs)
    const rec: Op = { seq, op, name, ...(vmId != null ? { vmId } : {}), agent, startMs, endMs: this.#c.now(), status: a.status, ...(a.body !== undefined ? { body: trimBody(a.body) } : {}) }
    this.history.push(rec)
    return rec
  }

  async #create (agent: number, api: string): Promise<void> {
    const name = `chaos-${this.#o.seed}-${this.#seq}`
    const rec = await this.#request('create', name, undefined, agent, api, 'POST', '/v1/vms', { name, cpu: this.#o.cpu, memMiB: this.#o.memMiB })
    const id = (rec.body as { id?: string } | undefined)?.id
    if (rec.status === 201 && typeof id === 'string') {
      rec.vmId = id
      this.#live.set(id, name)
    }
  }

  async #delete (agent: number, api: string, id: string): Promise<void> {
    this.#deleting.add(id)
    const rec = await this.#request('delete', this.#live.get(id)!, id, agent, api, 'DELETE', `/v1/vms/${id}`)
    // Deleted, or maybe: either way the workload stops using it.
    if (rec.status === 200 || typeof rec.status !== 'number' || rec.status >= 500) this.#live.delete(id)
    this.#deleting.delete(id)
  }

  async #migrate (agent: number, api: string, id: string): Promise<void> {
    await this.#request('migrate', this.#live.get(id)!, id, agent, api, 'POST', `/v1/vms/${id}/migrate`, {})
  }
}
