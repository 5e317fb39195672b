/**
 * When to gossip our NodeState (DESIGN.md, "What gossip may cost"):
 * - on change, coalesced: at most one publish per `minPublishIntervalMs`;
 * - with a threshold: a change of the VM set is always published, a change
 *   of free capacity only when it moved by `changeThreshold` of capacity
 *   since the last publish; smaller drifts wait for the refresh;
 * - refreshed every `refreshIntervalMs` even when nothing changed;
 * - within a budget: every agent receives every other agent's publishes, so
 *   to keep what each agent handles flat as the cluster grows, each agent
 *   publishes at most `budgetPerSecond / peers` times a second, sustained
 *   (a token bucket). An idle agent has a full bucket: a lone change still
 *   goes out at once.
 */
import type { GossipConfig } from '../config.ts'
import type { NodeState } from '../core/messages.ts'

export interface StatePublisherInit {
  config: GossipConfig
  /** The current state; with `next` true, under a new sequence number (to be published). */
  build: (next: boolean) => NodeState
  /** Committed plus reserved resources and capacity, cheaply: for the threshold. */
  load: () => { cpu: number, memMiB: number, capCpu: number, capMemMiB: number }
  /** How many peers share the budget (the size of the view). */
  peers: () => number
  publish: (state: NodeState) => Promise<void>
  onError: (err: Error) => void
}

export class StatePublisher {
  readonly #init: StatePublisherInit
  #lastAt = 0
  #lastLoad?: { cpu: number, memMiB: number }
  #pending?: NodeJS.Timeout
  #refresh?: NodeJS.Timeout
  #dirtyVmSet = false
  #tokens: number
  #tokensAt = Date.now()

  constructor (init: StatePublisherInit) {
    this.#init = init
    this.#tokens = init.config.burst
  }

  start (): void {
    if (this.#refresh != null) return
    this.#refresh = setInterval(() => { this.#schedule() }, this.#init.config.refreshIntervalMs)
    this.#refresh.unref()
    this.#publishNow()
  }

  stop (): void {
    if (this.#refresh != null) clearInterval(this.#refresh)
    if (this.#pending != null) clearTimeout(this.#pending)
    this.#refresh = undefined
    this.#pending = undefined
  }

  /** Something changed; `vmSet` says whether the set or state of VMs did. */
  changed (vmSet: boolean): void {
    if (this.#refresh == null) return
    if (vmSet) this.#dirtyVmSet = true
    if (!this.#dirtyVmSet && !this.#beyondThreshold()) return
    this.#schedule()
  }

  /** Sustained publishes per second this agent may make now. */
  rate (): number {
    return this.#init.config.budgetPerSecond / Math.max(1, this.#init.peers() - 1)
  }

  #schedule (): void {
    if (this.#pending != null) return
    const now = Date.now()
    this.#refill(now)
    const tokenWait = this.#tokens >= 1 ? 0 : (1 - this.#tokens) / this.rate() * 1000
    const wait = Math.max(tokenWait, this.#lastAt + this.#init.config.minPublishIntervalMs - now, 0)
    this.#pending = setTimeout(() => {
      this.#pending = undefined
      this.#refill(Date.now())
      this.#tokens = Math.max(0, this.#tokens - 1)
      this.#publishNow()
    }, wait)
    this.#pending.unref()
  }

  #refill (now: number): void {
    this.#tokens = Math.min(this.#init.config.burst, this.#tokens + (now - this.#tokensAt) / 1000 * this.rate())
    this.#tokensAt = now
  }

  #beyondThreshold (): boolean {
    const last = this.#lastLoad
    if (last == null) return true
    const now = this.#init.load()
    const t = this.#init.config.changeThreshold
    return Math.abs(now.cpu - last.cpu) >= t * now.capCpu || Math.abs(now.memMiB - last.memMiB) >= t * now.capMemMiB
  }

  #publishNow (): void {
    const state = this.#init.build(true)
    this.#lastLoad = { cpu: state.used.cpu + state.reserved.cpu, memMiB: state.used.memMiB + state.reserved.memMiB }
    this.#lastAt = Date.now()
    this.#dirtyVmSet = false
    this.#init.publish(state).catch(err => { this.#init.onError(err) })
  }
}
