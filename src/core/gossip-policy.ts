/**
 * When an agent gossips its NodeState ("What gossip may cost"): a pure policy,
 * fed with changes, the messages heard and the time; the agent keeps the one
 * timer it asks for, and the simulator runs the same policy on its clock.
 * - on change, coalesced: at most one publish per `minPublishIntervalMs`;
 * - with a threshold: a change of the VM set is always published, a change
 *   of free capacity only when it moved by `changeThreshold` of capacity
 *   since the last publish; smaller drifts wait for the refresh; a change of
 *   a VM's state alone (booted, migrating) is published while the bucket
 *   holds a token beyond the one kept for the next change of the VM set, and
 *   otherwise rides with the next publish: under a tight budget a create
 *   costs one message, not two (its arrival, then its boot);
 * - refreshed when nothing was published for a while: every
 *   `refreshIntervalMs`, or more slowly in a large cluster, so that the
 *   refreshes of all peers together take at most their share of the budget
 *   (`refreshShare`: a fifth, a twentieth in the `local` profile; the
 *   cluster's size when the refresh falls due counts, not at the last
 *   publish: agents that came up first refreshed every few seconds while a
 *   hundred joined, as though the cluster were still small); each
 *   wait is drawn between 1/2 and 3/2 of it from the `Rng`, so that agents
 *   started together do not all refresh at once (fifty refreshes in a burst
 *   stalled a 2-core machine for seconds) — with 3/4 to 5/4, the first
 *   refreshes of a hundred agents that came up together still fell within
 *   five minutes, about twice the mean rate of 0.16 a second, and the
 *   cluster took 10 % more of a core while they lasted); spread over
 *   a whole interval, the first wave is no denser than the steady state;
 * - within a budget: every agent receives every other agent's publishes, so
 *   the state messages each agent receives stay under its budget
 *   (`budgetPerSecond`, or a share of `hostBudgetPerSecond` when all the
 *   agents share one host), however large the cluster. Each agent earns its
 *   fair share, budget / peers a second, into a bucket `burst` deep (empty
 *   at start); and it may take three quarters of what the budget has left,
 *   measured by what it receives itself, as a rate — that share is used as it
 *   comes, never banked. One agent busy in a quiet cluster publishes a few
 *   times a second; k agents busy at once settle at 3 L / (1 + 3 k) each, L
 *   being what the refreshes leave: 3 k / (1 + 3 k) of it in all, always less
 *   than the budget; everyone busy is everyone's fair share. Why the left
 *   share is not banked: in a quiet cluster it is most of the budget, and
 *   ten thousand idle agents each banking a few publishes would, the moment
 *   a burst of creates reaches them all, send ten thousand times that to
 *   every agent at once (measured in the simulator: 1.9× the budget at
 *   10,000 nodes). Banked fair shares add up to the budget at most.
 */
import { RateWindow } from './rate-window.ts'
import type { Rng } from './rng.ts'

export interface GossipConfig {
  /**
   * Coalescing window: at most one state publish per this many ms, however
   * often the state changes. Default 100 ms (local), 200 ms (lan/wan): every
   * publish costs every peer 1.5–3 ms of CPU, so a burst of creates becomes
   * one message, while a change still shows cluster-wide within a few hundred ms.
   */
  minPublishIntervalMs: number
  /**
   * Slow refresh: an agent that published nothing for this long publishes its
   * state anyway, so a peer that missed a message catches up and silence
   * means trouble. The interval grows with the cluster so that all the
   * refreshes together take at most their share of the budget
   * (`refreshShare`: 50 local agents, 6.4 messages a second each, a
   * twentieth: every 153 s), and each wait is drawn between
   * 1/2 and 3/2 of it. Default 5 s (local), 3 s (lan), 5 s (wan): a 1 Hz
   * full-state heartbeat saturates a 2-core machine at about 30 agents.
   */
  refreshIntervalMs: number
  /**
   * The share of the budget the refreshes of all peers together may take
   * (the rest is for changes). Default 0.05 (local: an agent also asks a
   * peer at random for the states it lacks or holds older every 30 s, the
   * view sync, which repairs what a lost message left behind; with a fifth,
   * 100 idle agents spent about a tenth of their CPU on refreshes, 32
   * deliveries a second on one host), 0.2 (lan, wan: the refresh is what
   * repairs there, and when absent).
   */
  refreshShare?: number
  /**
   * Threshold: a change of free CPU or memory smaller than this fraction of
   * capacity waits for the refresh; a change of the set of VMs is always
   * published. Default 0.05.
   */
  changeThreshold: number
  /**
   * State messages per second each agent is willing to receive from all its
   * peers together, so the load per agent stays flat as the cluster grows.
   * Each agent may publish budget / peers times a second, sustained, and more
   * while the budget is not used up. Default 8 (local: every agent of the
   * cluster shares this machine's cores, and one delivery costs 1.5–3 ms of
   * CPU), 40 (lan/wan: one agent per machine).
   */
  budgetPerSecond: number
  /**
   * With every agent of the cluster on one host (the `local` profile), what
   * all of them together may receive per second: each agent's budget is then
   * at most this divided by the agents. Default 320 (local: gossip takes at
   * most about a third of two cores, whatever the number of agents; 8 each up
   * to 40 agents, 6.4 each at 50, 3.2 at 100), none (lan/wan: one agent per
   * machine). With 160, each of 100 agents could receive 1.6 a second, fewer
   * than creates half a second apart ask for: a placing agent waited up to
   * 5 s to publish, and convergence p99 at 100 was 3–5 s; with 320, 169 ms,
   * and no less placement under load (docs/many-agents.md, fourteenth session).
   */
  hostBudgetPerSecond?: number
  /**
   * Publishes an idle agent may make at once before the budget applies.
   * Default 4 (local: a node given two VMs in a row publishes both arrivals
   * and both boots at once; with 2, one create in twenty waited seconds for a
   * token at 50 agents), 2 (lan/wan).
   */
  burst: number
  /**
   * Gossipsub's mesh degree D (the other degrees in gossipsub's proportions):
   * how many peers relay each message. The origin sends its own messages to
   * every peer it is connected to (flood publishing), so the mesh only
   * repairs what that missed, and every relay is one more copy every agent
   * decrypts and drops. Default 3 (local: 49 agents on one host spend a tenth
   * less CPU than with 6), 6 (lan/wan: gossipsub's default).
   */
  meshDegree: number
}

/**
 * What a change touched: `vms`, the set of VMs or an epoch (a VM created,
 * deleted, adopted by migration); `state`, only a VM's state (booted,
 * migrating, running again); `load`, only reservations.
 */
export type Change = 'vms' | 'state' | 'load'

/** Committed plus reserved resources, and capacity: what the threshold compares. */
export interface LoadSample {
  cpu: number
  memMiB: number
  capCpu: number
  capMemMiB: number
}

/** The share of the budget the refreshes of all peers may take, unless the config says otherwise (`refreshShare`). */
export const REFRESH_SHARE = 0.2
/** The share of what the budget has left that one agent may take. */
export const LEFT_SHARE = 0.75
/** Tokens a change of a VM's state alone leaves in the bucket, for the next change of the VM set. */
export const TOKENS_KEPT_FOR_VMS = 1
/** What an agent measures its peers' publishes over. */
export const RECEIVED_WINDOW_MS = 4_000

export class GossipPolicy {
  readonly #config: GossipConfig
  readonly #rng: Rng
  readonly #received = new RateWindow(RECEIVED_WINDOW_MS)
  #lastAt = -Infinity
  #lastLoad?: { cpu: number, memMiB: number }
  #pendingAt?: number
  #refreshAt?: number
  /** The draw between 1/2 and 3/2 that the refresh interval is multiplied by, made at each publish. */
  #refreshJitter = 1
  #dirtyVmSet = false
  #dirtyState = false
  #tokens: number
  #tokensAt: number

  constructor (config: GossipConfig, rng: Rng, nowMs: number) {
    this.#config = config
    this.#rng = rng
    this.#tokens = 0
    this.#tokensAt = nowMs
  }

  get #refreshShare (): number {
    return this.#config.refreshShare ?? REFRESH_SHARE
  }

  /** When the caller should call `tick` next; undefined when nothing is due. */
  get nextWakeAt (): number | undefined {
    if (this.#pendingAt == null) return this.#refreshAt
    if (this.#refreshAt == null) return this.#pendingAt
    return Math.min(this.#pendingAt, this.#refreshAt)
  }

  /** Something changed; `peers` is the size of the view, this agent included. */
  changed (change: Change, nowMs: number, load: LoadSample, peers: number): void {
    if (change === 'vms') this.#dirtyVmSet = true
    if (change === 'state') this.#dirtyState = true
    if (this.#dirtyVmSet) return this.#schedule(nowMs, peers)
    if (this.#dirtyState) {
      this.#refill(nowMs, peers)
      if (this.#tokens >= 1 + TOKENS_KEPT_FOR_VMS || this.#leftAllows(nowMs, peers)) this.#schedule(nowMs, peers)
      return
    }
    if (this.#beyondThreshold(load)) this.#schedule(nowMs, peers)
  }

  /** A peer's state message arrived: what the budget has left is measured by these. */
  heard (nowMs: number, n = 1): void {
    this.#received.add(nowMs, n)
  }

  /** Time has come (at or after `nextWakeAt`): true when the caller must publish now, then call `published`. */
  tick (nowMs: number, peers: number): boolean {
    if (this.#pendingAt != null && this.#pendingAt <= nowMs) {
      this.#pendingAt = undefined
      this.#refill(nowMs, peers)
      // What the budget has left goes first; the bank is kept for when the peers use it all.
      if (this.#leftAllows(nowMs, peers)) return true
      if (this.#tokens >= 1) {
        this.#tokens -= 1
        return true
      }
      // The budget filled up since this was scheduled: wait for the next allowance (later than now, always).
      this.#pendingAt = Math.max(this.#earliest(nowMs, peers), nowMs + 1)
      return false
    }
    if (this.#refreshAt != null && this.#refreshAt <= nowMs) {
      // The interval follows the cluster's size now, not at the last publish: in a cluster coming up, an agent's refresh
      // set while it knew a few peers would otherwise fall due long before a refresh of a hundred is.
      const due = this.#lastAt + this.refreshIntervalMs(peers) * this.#refreshJitter
      if (due > nowMs) {
        this.#refreshAt = Math.ceil(due)
        return false
      }
      this.#refreshAt = undefined
      // A publish on its way is a refresh too.
      return this.#pendingAt == null
    }
    return false
  }

  /** The caller published its state (at start, or when `tick` said so). Any publish is a refresh: the next is due a whole interval later. */
  published (nowMs: number, load: { cpu: number, memMiB: number }, peers: number): void {
    this.#lastLoad = { cpu: load.cpu, memMiB: load.memMiB }
    this.#lastAt = nowMs
    this.#dirtyVmSet = false
    this.#dirtyState = false
    this.#refreshJitter = 0.5 + this.#rng.next()
    this.#refreshAt = nowMs + this.refreshIntervalMs(peers) * this.#refreshJitter
  }

  /** State messages per second this agent is willing to receive: `budgetPerSecond`, less when agents share a host's budget. */
  budgetPerSecond (peers: number): number {
    const { budgetPerSecond, hostBudgetPerSecond } = this.#config
    return hostBudgetPerSecond == null ? budgetPerSecond : Math.min(budgetPerSecond, hostBudgetPerSecond / Math.max(1, peers))
  }

  /** Publishes per second this agent may make now, sustained: its fair share, or three quarters of what the budget has left. */
  rate (nowMs: number, peers: number): number {
    return Math.max(this.#fair(peers), this.#left(nowMs, peers))
  }

  /** How long this agent stays silent before it publishes its state anyway. */
  refreshIntervalMs (peers: number): number {
    return Math.max(this.#config.refreshIntervalMs, 1000 * Math.max(1, peers - 1) / (this.budgetPerSecond(peers) * this.#refreshShare))
  }

  #schedule (nowMs: number, peers: number): void {
    if (this.#pendingAt != null) return
    this.#pendingAt = this.#earliest(nowMs, peers)
  }

  /** The earliest a publish may go: with what the budget has left, or a banked token, or once one is earned; never within the coalescing window. */
  #earliest (nowMs: number, peers: number): number {
    this.#refill(nowMs, peers)
    const left = this.#left(nowMs, peers)
    const byLeft = left > 0 ? this.#lastAt + 1000 / left : Infinity
    // Whole milliseconds: a wait computed to the last bit of a float could come back a hair short, again and again.
    const byToken = this.#tokens >= 1 ? nowMs : nowMs + Math.max(1, Math.ceil((1 - this.#tokens) / this.#fair(peers) * 1000))
    return Math.max(nowMs, this.#lastAt + this.#config.minPublishIntervalMs, Math.min(byLeft, byToken))
  }

  /** Whether what the budget has left allows a publish now (one per 1 / left seconds). */
  #leftAllows (nowMs: number, peers: number): boolean {
    const left = this.#left(nowMs, peers)
    // The same sum as in `#earliest`: a publish it scheduled for now is allowed now.
    return left > 0 && this.#lastAt + 1000 / left <= nowMs
  }

  /** Publishes a second this agent earns whatever its peers do: its fair share of what the refreshes leave of the budget. */
  #fair (peers: number): number {
    return this.budgetPerSecond(peers) * (1 - this.#refreshShare) / Math.max(1, peers - 1)
  }

  /** Publishes a second this agent may take of what its peers leave unused (0 when they use it all). */
  #left (nowMs: number, peers: number): number {
    return Math.max(0, (this.budgetPerSecond(peers) - this.#received.perSecond(nowMs)) * LEFT_SHARE)
  }

  #refill (nowMs: number, peers: number): void {
    const tokens = this.#tokens + (nowMs - this.#tokensAt) / 1000 * this.#fair(peers)
    // A token short by a rounding error is a token.
    this.#tokens = Math.min(this.#config.burst, tokens > 1 - 1e-9 && tokens < 1 ? 1 : tokens)
    this.#tokensAt = nowMs
  }

  #beyondThreshold (load: LoadSample): boolean {
    const last = this.#lastLoad
    if (last == null) return true
    const t = this.#config.changeThreshold
    return Math.abs(load.cpu - last.cpu) >= t * load.capCpu || Math.abs(load.memMiB - last.memMiB) >= t * load.capMemMiB
  }
}
