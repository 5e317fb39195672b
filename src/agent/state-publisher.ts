/**
 * When to gossip our NodeState (DESIGN.md, "What gossip may cost"):
 * - on change, coalesced: at most one publish per `minPublishIntervalMs`;
 * - with a threshold: a change of the VM set is always published, a change
 *   of free capacity only when it moved by `changeThreshold` of capacity
 *   since the last publish; smaller drifts wait for the refresh; a change of
 *   a VM's state alone (booted, migrating) is published while the bucket
 *   holds a token beyond the one kept for the next change of the VM set,
 *   and otherwise rides with the next publish: under a tight budget a create
 *   costs one message, not two (its arrival, then its boot);
 * - refreshed when nothing was published for a while: every
 *   `refreshIntervalMs`, or more slowly in a large cluster, so that the
 *   refreshes of all peers together take at most a fifth of the budget;
 *   each wait is drawn between 3/4 and 5/4 of it, so that agents started
 *   together do not all refresh at once (fifty refreshes in a burst stalled a
 *   2-core machine for seconds);
 * - within a budget: every agent receives every other agent's publishes, so
 *   the state messages each agent receives stay under its budget
 *   (`budgetPerSecond`, or a share of `hostBudgetPerSecond` when all the
 *   agents share one host), however large the cluster. Each agent may always
 *   publish its fair share, budget / peers a second (a token bucket, `burst`
 *   deep); and it may take three quarters of what the budget has left,
 *   measured by what it receives itself. One agent busy in a quiet cluster
 *   publishes a few times a second; k agents busy at once settle at
 *   3 L / (1 + 3 k) each, L being what the refreshes leave: 3 k / (1 + 3 k)
 *   of it in all, always less than the budget; everyone busy is everyone's
 *   fair share.
 */
import type { GossipConfig } from '../config.ts'
import type { NodeState } from '../core/messages.ts'
import type { Change } from './local-node.ts'

/** The share of the budget the refreshes of all peers may take. */
const REFRESH_SHARE = 0.2
/** The share of what the budget has left that one agent may take. */
const LEFT_SHARE = 0.75
/** Tokens a change of a VM's state alone leaves in the bucket, for the next change of the VM set. */
const TOKENS_KEPT_FOR_VMS = 1
/** What a publisher measures its peers' publishes over. */
const RECEIVED_WINDOW_MS = 4_000

export interface StatePublisherInit {
  config: GossipConfig
  /** The current state; with `next` true, under a new sequence number (to be published). */
  build: (next: boolean) => NodeState
  /** Committed plus reserved resources and capacity, cheaply: for the threshold. */
  load: () => { cpu: number, memMiB: number, capCpu: number, capMemMiB: number }
  /** How many peers share the budget (the size of the view, this agent included). */
  peers: () => number
  publish: (state: NodeState) => Promise<void>
  onError: (err: Error) => void
  /** Uniform in [0, 1): spreads the refreshes. Default Math.random. */
  random?: () => number
}

export class StatePublisher {
  readonly #init: StatePublisherInit
  readonly #received = new RateWindow(RECEIVED_WINDOW_MS)
  #started = false
  #lastAt = 0
  #lastLoad?: { cpu: number, memMiB: number }
  #pending?: NodeJS.Timeout
  #refresh?: NodeJS.Timeout
  #dirtyVmSet = false
  #dirtyState = false
  #tokens: number
  #tokensAt = Date.now()

  constructor (init: StatePublisherInit) {
    this.#init = init
    this.#tokens = init.config.burst
  }

  start (): void {
    if (this.#started) return
    this.#started = true
    this.#publishNow()
  }

  stop (): void {
    this.#started = false
    if (this.#refresh != null) clearTimeout(this.#refresh)
    if (this.#pending != null) clearTimeout(this.#pending)
    this.#refresh = undefined
    this.#pending = undefined
  }

  /** Something changed (local-node.ts says what). */
  changed (change: Change): void {
    if (!this.#started) return
    if (change === 'vms') this.#dirtyVmSet = true
    if (change === 'state') this.#dirtyState = true
    if (this.#dirtyVmSet) {
      this.#schedule()
      return
    }
    if (this.#dirtyState) {
      this.#refill(Date.now())
      if (this.#tokens >= 1 + TOKENS_KEPT_FOR_VMS) this.#schedule()
      return
    }
    if (this.#beyondThreshold()) this.#schedule()
  }

  /** A peer's state message arrived: what the budget has left is measured by these. */
  heard (): void {
    this.#received.add(Date.now())
  }

  /** State messages per second this agent is willing to receive: `budgetPerSecond`, less when agents share a host's budget. */
  budgetPerSecond (): number {
    const { budgetPerSecond, hostBudgetPerSecond } = this.#init.config
    return hostBudgetPerSecond == null ? budgetPerSecond : Math.min(budgetPerSecond, hostBudgetPerSecond / Math.max(1, this.#init.peers()))
  }

  /** Publishes per second this agent may make now, sustained: its fair share, or three quarters of what the budget has left. */
  rate (): number {
    const budgetPerSecond = this.budgetPerSecond()
    const fair = budgetPerSecond / Math.max(1, this.#init.peers() - 1)
    const left = budgetPerSecond - this.#received.perSecond(Date.now())
    return Math.max(fair, left * LEFT_SHARE)
  }

  /** How long this agent stays silent before it publishes its state anyway. */
  refreshIntervalMs (): number {
    const { refreshIntervalMs } = this.#init.config
    const budgetPerSecond = this.budgetPerSecond()
    return Math.max(refreshIntervalMs, 1000 * Math.max(1, this.#init.peers() - 1) / (budgetPerSecond * REFRESH_SHARE))
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
    if (!this.#started) return
    const state = this.#init.build(true)
    this.#lastLoad = { cpu: state.used.cpu + state.reserved.cpu, memMiB: state.used.memMiB + state.reserved.memMiB }
    this.#lastAt = Date.now()
    this.#dirtyVmSet = false
    this.#dirtyState = false
    this.#init.publish(state).catch(err => { this.#init.onError(err) })
    // Any publish is a refresh: the next one is due a whole interval from now.
    if (this.#refresh != null) clearTimeout(this.#refresh)
    const jitter = 0.75 + 0.5 * (this.#init.random ?? Math.random)()
    this.#refresh = setTimeout(() => {
      this.#refresh = undefined
      if (this.#pending == null) this.#publishNow()
    }, this.refreshIntervalMs() * jitter)
    this.#refresh.unref()
  }
}

/** Events per second over the last `windowMs`, in buckets of a tenth of it: constant memory whatever the rate. */
export class RateWindow {
  readonly #bucketMs: number
  readonly #counts: number[]
  #bucketAt = 0

  constructor (windowMs: number, buckets = 10) {
    this.#bucketMs = windowMs / buckets
    this.#counts = new Array<number>(buckets).fill(0)
  }

  add (nowMs: number): void {
    this.#advance(nowMs)
    this.#counts[this.#counts.length - 1]++
  }

  perSecond (nowMs: number): number {
    this.#advance(nowMs)
    return this.#counts.reduce((a, b) => a + b, 0) * 1000 / (this.#bucketMs * this.#counts.length)
  }

  #advance (nowMs: number): void {
    const bucket = Math.floor(nowMs / this.#bucketMs)
    const steps = Math.min(this.#counts.length, bucket - this.#bucketAt)
    for (let i = 0; i < steps; i++) {
      this.#counts.shift()
      this.#counts.push(0)
    }
    if (steps > 0 || this.#bucketAt === 0) this.#bucketAt = bucket
  }
}
