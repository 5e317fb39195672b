/**
 * When to gossip our NodeState (DESIGN.md, "What gossip may cost"):
 * - on change, coalesced: at most one publish per `minPublishIntervalMs`;
 * - with a threshold: a change of the VM set is always published, a change
 *   of free capacity only when it moved by `changeThreshold` of capacity
 *   since the last publish; smaller drifts wait for the refresh;
 * - refreshed every `refreshIntervalMs` even when nothing changed.
 */
import type { GossipConfig } from '../config.ts'
import type { NodeState } from '../core/messages.ts'

export interface StatePublisherInit {
  config: GossipConfig
  /** The current state; with `next` true, under a new sequence number (to be published). */
  build: (next: boolean) => NodeState
  publish: (state: NodeState) => Promise<void>
  onError: (err: Error) => void
}

export class StatePublisher {
  readonly #init: StatePublisherInit
  #lastAt = 0
  #last?: NodeState
  #pending?: NodeJS.Timeout
  #refresh?: NodeJS.Timeout
  #dirtyVmSet = false

  constructor (init: StatePublisherInit) {
    this.#init = init
  }

  start (): void {
    if (this.#refresh != null) return
    this.#refresh = setInterval(() => { this.#publishNow() }, this.#init.config.refreshIntervalMs)
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
    if (this.#pending != null) return
    const wait = Math.max(0, this.#lastAt + this.#init.config.minPublishIntervalMs - Date.now())
    this.#pending = setTimeout(() => {
      this.#pending = undefined
      this.#publishNow()
    }, wait)
    this.#pending.unref()
  }

  #beyondThreshold (): boolean {
    const last = this.#last
    if (last == null) return true
    const now = this.#init.build(false)
    const t = this.#init.config.changeThreshold
    const cpuDelta = Math.abs((now.used.cpu + now.reserved.cpu) - (last.used.cpu + last.reserved.cpu))
    const memDelta = Math.abs((now.used.memMiB + now.reserved.memMiB) - (last.used.memMiB + last.reserved.memMiB))
    return cpuDelta >= t * now.capacity.cpu || memDelta >= t * now.capacity.memMiB
  }

  #publishNow (): void {
    const state = this.#init.build(true)
    this.#last = state
    this.#lastAt = Date.now()
    this.#dirtyVmSet = false
    this.#init.publish(state).catch(err => { this.#init.onError(err) })
  }
}
