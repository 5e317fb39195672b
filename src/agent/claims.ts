/**
 * Fencing with proofs. Every VM a peer gossips is a claim: the peer owns it
 * at the gossiped epoch. A claim above the head of a copy we run, or of a
 * replica we hold, must be proved: we fetch the peer's chain over the replica
 * protocol (`chain`, batched per peer) and check it against ours
 * (core/ownership.ts `checkClaim`). A proved claim stops our copy (fencing)
 * or drops our replica (superseded); a claim without a valid proof is
 * dropped, counted in `discovery_invalid_messages_total{source="epoch"}`,
 * logged once per sender, and the VM keeps running. Each claim is checked
 * once (verdicts are kept, bounded). And a peer seen running a VM we hold a
 * tombstone for is sent the tombstone.
 */
import type { VmSummary } from '../core/messages.ts'
import { checkClaim, compareHeads, headOf, type Head, type Signer } from '../core/ownership.ts'
import type { Chain, Tombstone } from '../core/ownership-messages.ts'
import { MAX_CHAINS_PER_MESSAGE } from '../core/replica-messages.ts'
import type { Holdings } from './holdings.ts'
import type { LocalNode } from './local-node.ts'

/** Verdicts kept (the oldest forgotten first): a claim is fetched and checked once, however often it is gossiped. */
const MAX_VERDICTS = 10_000
/** A tombstone is sent to one peer at most this often, while it keeps gossiping the VM. */
const TOMBSTONE_RESEND_MS = 30_000

export interface ClaimsInit {
  signer: Signer
  local: LocalNode
  holdings: Holdings
  now: () => number
  /** The chains `peer` has for `vmIds` (those it runs); rejects when it cannot be asked. */
  fetchChains: (peer: string, vmIds: string[]) => Promise<Map<string, Chain>>
  sendTombstone: (peer: string, tombstone: Tombstone) => Promise<void>
  /** `owner` proved it runs `vmId` above our head: stop our copy (the migration service's fencing). */
  fence: (vmId: string, owner: string, epoch: number) => void
  /** A proof did not hold: counted and logged once per sender. */
  refused: (vmId: string, from: string, reason: string) => void
}

/** A claim being checked, refused, or proved (then its head: a copy restored below it goes again). */
type Verdict = 'pending' | 'refused' | Head

const NOT_ABOVE = 'not-above'

/** Whether `claim` is above the head of `chain` (a record of an earlier version without one is never fenced by gossip alone). */
function above (claim: Head, chain: Chain): boolean {
  return chain.length > 0 && compareHeads(claim, headOf(chain)) > 0
}

export class Claims {
  readonly #init: ClaimsInit
  readonly #verdicts = new Map<string, Verdict>()
  /** Claims to fetch the proofs of, per peer, sent together on the next turn. */
  readonly #queue = new Map<string, Map<string, Head>>()
  readonly #tombstonesSent = new Map<string, number>()
  #flushScheduled = false

  constructor (init: ClaimsInit) {
    this.#init = init
  }

  /** The VMs `peer` gossips, each claimed at its epoch. */
  seen (peer: string, vms: readonly VmSummary[]): void {
    const { local, holdings } = this.#init
    for (const vm of vms) {
      const claim = { epoch: vm.epoch, owner: peer }
      const mine = local.get(vm.id)
      const held = holdings.get(vm.id)
      if ((mine != null && above(claim, mine.chain)) || (held != null && above(claim, held.record.chain))) this.#claim(peer, vm.id, claim)
      const t = holdings.tombstone(vm.id)
      if (t != null) this.#sendTombstone(peer, t)
    }
  }

  #claim (peer: string, vmId: string, head: Head): void {
    const key = `${vmId}@${head.epoch}/${peer}`
    const verdict = this.#verdicts.get(key)
    if (verdict === 'pending' || verdict === 'refused') return
    if (verdict != null) {
      // Proved before, and we hold a copy below it again (restored from disk, sent again): it goes again.
      this.#apply(vmId, verdict, undefined)
      return
    }
    this.#remember(key, 'pending')
    let forPeer = this.#queue.get(peer)
    if (forPeer == null) {
      forPeer = new Map()
      this.#queue.set(peer, forPeer)
    }
    forPeer.set(vmId, head)
    if (!this.#flushScheduled) {
      this.#flushScheduled = true
      setImmediate(() => { this.#flush() })
    }
  }

  #flush (): void {
    this.#flushScheduled = false
    const queue = [...this.#queue]
    this.#queue.clear()
    for (const [peer, claims] of queue) {
      const entries = [...claims]
      for (let i = 0; i < entries.length; i += MAX_CHAINS_PER_MESSAGE) void this.#prove(peer, entries.slice(i, i + MAX_CHAINS_PER_MESSAGE))
    }
  }

  async #prove (peer: string, claims: Array<[string, Head]>): Promise<void> {
    let chains: Map<string, Chain>
    try {
      chains = await this.#init.fetchChains(peer, claims.map(([id]) => id))
    } catch {
      // Not an answer: the claim is looked at again when it is gossiped again.
      for (const [id, head] of claims) this.#verdicts.delete(`${id}@${head.epoch}/${peer}`)
      return
    }
    for (const [id, claimed] of claims) {
      const key = `${id}@${claimed.epoch}/${peer}`
      const chain = chains.get(id)
      let why: string | undefined
      if (chain == null) why = 'no chain offered for the claimed epoch'
      else if (headOf(chain).owner !== peer) why = `the chain's head is owned by ${headOf(chain).owner}, not by the peer that claims it`
      else why = this.#apply(id, headOf(chain), chain)
      if (why == null) {
        this.#remember(key, headOf(chain!))
      } else if (why === NOT_ABOVE) {
        this.#verdicts.delete(key)
      } else {
        this.#remember(key, 'refused')
        this.#init.refused(id, peer, why)
      }
    }
  }

  /**
   * Checks the claim of `head` (with its chain `theirs`; without, a claim
   * proved before) against our copy and our replica of `vmId`, and acts on
   * those it proves to be superseded. Returns why it does not hold.
   */
  #apply (vmId: string, head: Head, theirs: Chain | undefined): string | undefined {
    const { local, holdings, signer } = this.#init
    const mine = local.get(vmId)
    const held = holdings.get(vmId)
    const targets = { copy: mine != null && above(head, mine.chain), replica: held != null && above(head, held.record.chain) }
    if (!targets.copy && !targets.replica) return NOT_ABOVE
    if (theirs != null) {
      const why = (targets.copy ? checkClaim(mine!.chain, theirs, vmId, signer) : undefined) ?? (targets.replica ? checkClaim(held!.record.chain, theirs, vmId, signer) : undefined)
      if (why != null) return why
    }
    if (targets.copy) this.#init.fence(vmId, head.owner, head.epoch)
    if (targets.replica) holdings.drop([vmId])
    return undefined
  }

  #sendTombstone (peer: string, t: Tombstone): void {
    const key = `${t.vmId}/${peer}`
    const now = this.#init.now()
    if ((this.#tombstonesSent.get(key) ?? -Infinity) > now - TOMBSTONE_RESEND_MS) return
    this.#tombstonesSent.set(key, now)
    if (this.#tombstonesSent.size > MAX_VERDICTS) this.#tombstonesSent.delete(this.#tombstonesSent.keys().next().value!)
    this.#init.sendTombstone(peer, t).catch(() => {})
  }

  #remember (key: string, verdict: Verdict): void {
    this.#verdicts.delete(key)
    this.#verdicts.set(key, verdict)
    if (this.#verdicts.size > MAX_VERDICTS) this.#verdicts.delete(this.#verdicts.keys().next().value!)
  }
}
