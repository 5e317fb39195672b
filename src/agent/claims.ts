/**
 * Fencing with proofs. Every VM a peer gossips is a claim: the peer owns it
 * at the gossiped epoch. A claim above the head of a copy we run, or of a
 * replica we hold, must be proved: we fetch the peer's chain over the replica
 * protocol (`chain`, batched per peer) and check it against ours
 * (core/ownership.ts `checkClaim`). A proved claim stops our copy (fencing)
 * or drops our replica (superseded); a claim without a valid proof is
 * dropped, counted in `discovery_invalid_messages_total{source="epoch"}`,
 * logged once per sender, and the VM keeps running. Each claim is checked
 * once (verdicts are kept, bounded). A peer seen running an older copy of
 * one of our VMs is sent our proof at once (`claim`), rather than waiting
 * for our next gossip to reach it; one seen running a VM we hold a tombstone
 * for is sent the tombstone.
 */
import type { VmSummary } from '../core/messages.ts'
import { checkClaim, compareHeads, headOf, type Head, type Signer } from '../core/ownership.ts'
import type { Chain, Tombstone } from '../core/ownership-messages.ts'
import { MAX_CHAINS_PER_MESSAGE } from '../core/replica-messages.ts'
import type { Holdings } from './holdings.ts'
import type { LocalNode } from './local-node.ts'

/** Verdicts kept (the oldest forgotten first): a claim is fetched and checked once, however often it is gossiped. */
const MAX_VERDICTS = 10_000
/** A tombstone, or our proof, is sent to one peer at most this often while it keeps gossiping an older copy. */
const RESEND_MS = 30_000

export interface ClaimsInit {
  signer: Signer
  local: LocalNode
  holdings: Holdings
  now: () => number
  /** The chains `peer` has for `vmIds` (those it runs); rejects when it cannot be asked. */
  fetchChains: (peer: string, vmIds: string[]) => Promise<Map<string, Chain>>
  sendTombstone: (peer: string, tombstone: Tombstone) => Promise<void>
  /** Sends `peer` our chains of VMs it runs older copies of (`claim`). */
  sendChains: (peer: string, chains: Array<{ vmId: string, chain: Chain }>) => Promise<void>
  /** `owner` proved it runs `vmId` above our head: stop our copy (the migration service's fencing). */
  fence: (vmId: string, owner: string, epoch: number) => void
  /** A proof did not hold: counted and logged once per sender. */
  refused: (vmId: string, from: string, reason: string) => void
}

/** A claim being checked, refused, or proved (then its head: a copy restored below it goes again). */
type Verdict = 'pending' | 'refused' | Head

const NOT_ABOVE = 'not-above'

/** Whether `claim` is above the head of `chain` (a record of an earlier version without one is never fenced by gossip alone). */
/** The key of a verdict: `peer`'s claim to run `vmId` at `epoch`. */
function verdictKey (vmId: string, epoch: number, peer: string): string {
  return `${vmId}@${epoch}/${peer}`
}

function above (claim: Head, chain: Chain): boolean {
  return chain.length > 0 && compareHeads(claim, headOf(chain)) > 0
}

export class Claims {
  readonly #init: ClaimsInit
  readonly #verdicts = new Map<string, Verdict>()
  /** Claims to fetch the proofs of, per peer, sent together on the next turn. */
  readonly #queue = new Map<string, Map<string, Head>>()
  /** When we last told a peer about a VM (a tombstone, or our proof), by `vmId/peer`. */
  readonly #told = new Map<string, number>()
  /** Our proofs to send, per peer, sent together on the next turn. */
  readonly #proofs = new Map<string, Set<string>>()
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
      // It runs an older copy of one of ours (back from the dead, or from the other side of a partition): we tell it at once.
      else if (mine != null && mine.chain.length > 0 && compareHeads(claim, headOf(mine.chain)) < 0 && this.#tell(vm.id, peer)) this.#queueProof(peer, vm.id)
      const t = holdings.tombstone(vm.id)
      if (t != null && this.#tell(vm.id, peer)) this.#init.sendTombstone(peer, t).catch(() => {})
    }
  }

  /**
   * `owner` is said to run `vmId` at `head` (a peer's answer to `heads` or
   * `tombstones`): a claim above our copy or our replica is proved as if
   * gossiped. True while it is being proved or once proved; false when it is
   * not above them, or was refused before.
   */
  heard (owner: string, vmId: string, head: Head): boolean {
    const mine = this.#init.local.get(vmId)
    const held = this.#init.holdings.get(vmId)
    if (head.owner !== owner || !((mine != null && above(head, mine.chain)) || (held != null && above(head, held.record.chain)))) return false
    const key = verdictKey(vmId, head.epoch, owner)
    if (this.#verdicts.get(key) === 'refused') return false
    this.#claim(owner, vmId, head)
    return this.#verdicts.get(key) !== 'refused'
  }

  /** Proofs `from` sent us unasked (`claim`): each checked as if we had fetched it. */
  pushed (from: string, chains: ReadonlyArray<{ vmId: string, chain: Chain }>): void {
    for (const { vmId, chain } of chains) {
      const head = headOf(chain)
      const why = head.owner !== from ? `the chain's head is owned by ${head.owner}, not by the peer that sent it` : this.#apply(vmId, head, chain)
      if (why != null && why !== NOT_ABOVE) this.#init.refused(vmId, from, why)
      else if (why == null) this.#remember(verdictKey(vmId, head.epoch, from), head)
    }
  }

  #queueProof (peer: string, vmId: string): void {
    let ids = this.#proofs.get(peer)
    if (ids == null) {
      ids = new Set()
      this.#proofs.set(peer, ids)
    }
    ids.add(vmId)
    this.#schedule()
  }

  #schedule (): void {
    if (this.#flushScheduled) return
    this.#flushScheduled = true
    setImmediate(() => { this.#flush() })
  }

  #claim (peer: string, vmId: string, head: Head): void {
    const key = verdictKey(vmId, head.epoch, peer)
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
    this.#schedule()
  }

  #flush (): void {
    this.#flushScheduled = false
    const queue = [...this.#queue]
    this.#queue.clear()
    for (const [peer, claims] of queue) {
      const entries = [...claims]
      for (let i = 0; i < entries.length; i += MAX_CHAINS_PER_MESSAGE) void this.#prove(peer, entries.slice(i, i + MAX_CHAINS_PER_MESSAGE))
    }
    const proofs = [...this.#proofs]
    this.#proofs.clear()
    for (const [peer, ids] of proofs) {
      const chains: Array<{ vmId: string, chain: Chain }> = []
      for (const id of ids) {
        const chain = this.#init.local.get(id)?.chain
        if (chain != null && chain.length > 0) chains.push({ vmId: id, chain })
      }
      for (let i = 0; i < chains.length; i += MAX_CHAINS_PER_MESSAGE) this.#init.sendChains(peer, chains.slice(i, i + MAX_CHAINS_PER_MESSAGE)).catch(() => {})
    }
  }

  async #prove (peer: string, claims: Array<[string, Head]>): Promise<void> {
    let chains: Map<string, Chain>
    try {
      chains = await this.#init.fetchChains(peer, claims.map(([id]) => id))
    } catch {
      // Not an answer: the claim is looked at again when it is gossiped again.
      for (const [id, head] of claims) this.#verdicts.delete(verdictKey(id, head.epoch, peer))
      return
    }
    for (const [id, claimed] of claims) {
      const key = verdictKey(id, claimed.epoch, peer)
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

  /** Whether to tell `peer` about `vmId` now (at most once per RESEND_MS). */
  #tell (vmId: string, peer: string): boolean {
    const key = `${vmId}/${peer}`
    const now = this.#init.now()
    if ((this.#told.get(key) ?? -Infinity) > now - RESEND_MS) return false
    this.#told.delete(key)
    this.#told.set(key, now)
    if (this.#told.size > MAX_VERDICTS) this.#told.delete(this.#told.keys().next().value!)
    return true
  }

  #remember (key: string, verdict: Verdict): void {
    this.#verdicts.delete(key)
    this.#verdicts.set(key, verdict)
    if (this.#verdicts.size > MAX_VERDICTS) this.#verdicts.delete(this.#verdicts.keys().next().value!)
  }
}
