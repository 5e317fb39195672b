/**
 * The signatures of the failure detector's claims, at the edge: the detector
 * (core/failure-detector.ts) trades accusations and incarnations as peer ids
 * and numbers, and this puts a signature on each claim that leaves and checks
 * the signature of each claim that arrives, before the detector sees it.
 *
 * - An accusation of a member at an incarnation is signed by its accuser
 *   (`accusationBytes`); an update names its accusers and carries their
 *   signatures (`sigs`), which every relaying peer passes on. Without it, a
 *   peer holding the swarm key could name three members as accusers of a
 *   healthy one and have it declared dead at once (a `dead` update with a
 *   quorum of accusers is taken as it comes).
 * - An incarnation said alive is signed by the member itself
 *   (`incarnationBytes`, at its start and at each refutation); without it a
 *   peer could refute on another's behalf and keep a dead member alive.
 *
 * An accuser whose signature is missing or wrong is struck off the update; an
 * update left with no accuser, or an alive update without its member's
 * signature, is dropped; each message with such a claim is reported (counted,
 * logged once per sender) and the rest of it goes on. A claim that cannot be
 * passed on with its signature (an incarnation learned from the member's own
 * message header, whose connection authenticated it but which carries no
 * signature) is left out of what this agent sends: the member's own updates
 * carry it to the others.
 *
 * Signatures checked once are remembered (by claim), so a claim relayed to us
 * many times costs one verification; our own are made once per claim.
 */
import type { Signer } from '../core/ownership.ts'
import { accusationBytes, incarnationBytes, type SwimMessage, type SwimUpdate } from '../core/swim-messages.ts'

/** Incarnations whose signatures are kept; the oldest are forgotten beyond this (a member's older ones are void anyway). */
export const MAX_PROOF_ENTRIES = 20_000

interface Proofs {
  /** The member's own signature of this incarnation. */
  alive?: string
  /** Each accuser's signature of its accusation at this incarnation. */
  accusers: Map<string, string>
}

export interface SwimProofsInit {
  signer: Signer
  /** A message came with claims whose signatures were missing or wrong: they were left out. */
  onForged: (from: string, reason: string) => void
  maxEntries?: number
}

const toB64 = (sig: Uint8Array): string => Buffer.from(sig).toString('base64')
const keyOf = (u: Pick<SwimUpdate, 'peer' | 'run' | 'inc'>): string => `${u.peer} ${u.run} ${u.inc}`

export class SwimProofs {
  readonly #init: SwimProofsInit
  readonly #self: string
  readonly #max: number
  readonly #entries = new Map<string, Proofs>()

  constructor (init: SwimProofsInit) {
    this.#init = init
    this.#self = init.signer.self
    this.#max = init.maxEntries ?? MAX_PROOF_ENTRIES
  }

  /** Incarnations whose signatures are held. */
  get size (): number {
    return this.#entries.size
  }

  /** `msg` with the signatures of its claims; claims we hold no signature for are left out. */
  stamp (msg: SwimMessage): SwimMessage {
    if (msg.updates.length === 0) return msg
    const updates: SwimUpdate[] = []
    for (const u of msg.updates) {
      const s = this.#stampOne(u)
      if (s != null) updates.push(s)
    }
    return { ...msg, updates }
  }

  /** `msg` as received, with the claims whose signatures are missing or wrong left out (and reported), the signatures stripped. */
  check (from: string, msg: SwimMessage): SwimMessage {
    if (msg.updates.length === 0) return msg
    const updates: SwimUpdate[] = []
    const forged: string[] = []
    for (const u of msg.updates) {
      const c = u.status === 'alive' ? this.#checkAlive(u, forged) : this.#checkAccusation(u, forged)
      if (c != null) updates.push(c)
    }
    if (forged.length > 0) this.#init.onForged(from, forged.join('; '))
    return { ...msg, updates }
  }

  #stampOne (u: SwimUpdate): SwimUpdate | undefined {
    const { peer, run, inc, status } = u
    if (status === 'alive') {
      const sig = peer === this.#self ? this.#ownIncarnation(u) : this.#entries.get(keyOf(u))?.alive
      return sig == null ? undefined : { peer, run, inc, status, sig }
    }
    const held = this.#entries.get(keyOf(u))
    const accusers: string[] = []
    const sigs: string[] = []
    for (const a of u.accusers ?? []) {
      const sig = a === this.#self ? this.#ownAccusation(u) : held?.accusers.get(a)
      if (sig == null) continue
      accusers.push(a)
      sigs.push(sig)
    }
    return accusers.length === 0 ? undefined : { peer, run, inc, status, accusers, sigs }
  }

  /** Our signature of an incarnation of ours. */
  #ownIncarnation (u: SwimUpdate): string {
    const e = this.#entry(u)
    e.alive ??= toB64(this.#init.signer.sign(incarnationBytes(u)))
    return e.alive
  }

  /** Our signature of our accusation of `u.peer` at its incarnation. */
  #ownAccusation (u: SwimUpdate): string {
    const e = this.#entry(u)
    let sig = e.accusers.get(this.#self)
    if (sig == null) {
      sig = toB64(this.#init.signer.sign(accusationBytes(u)))
      e.accusers.set(this.#self, sig)
    }
    return sig
  }

  #checkAlive (u: SwimUpdate, forged: string[]): SwimUpdate | undefined {
    const { peer, run, inc, status } = u
    const held = this.#entries.get(keyOf(u))
    if (u.sig == null || (held?.alive !== u.sig && !this.#verify(peer, incarnationBytes(u), u.sig))) {
      forged.push(`${peer} alive at ${run}.${inc} ${u.sig == null ? 'without' : 'with a wrong'} signature of its own`)
      return undefined
    }
    if (held?.alive == null) this.#entry(u).alive = u.sig
    return { peer, run, inc, status }
  }

  #checkAccusation (u: SwimUpdate, forged: string[]): SwimUpdate | undefined {
    const { peer, run, inc, status } = u
    const named = u.accusers ?? []
    const sigs = u.sigs ?? []
    if (sigs.length !== named.length) {
      forged.push(`${peer} ${status} at ${run}.${inc}: ${named.length} accusers but ${sigs.length} signatures`)
      return undefined
    }
    const accusers: string[] = []
    let bytes: Uint8Array | undefined
    for (let i = 0; i < named.length; i++) {
      const a = named[i]
      const held = this.#entries.get(keyOf(u))?.accusers.get(a)
      if (held !== sigs[i]) {
        bytes ??= accusationBytes(u)
        if (!this.#verify(a, bytes, sigs[i])) {
          forged.push(`${peer} ${status} at ${run}.${inc}: no valid signature of accuser ${a}`)
          continue
        }
        this.#entry(u).accusers.set(a, sigs[i])
      }
      accusers.push(a)
    }
    if (accusers.length === 0) return undefined
    return { peer, run, inc, status, accusers }
  }

  #verify (peer: string, bytes: Uint8Array, sig: string): boolean {
    try {
      return this.#init.signer.verify(peer, bytes, Buffer.from(sig, 'base64'))
    } catch {
      return false
    }
  }

  #entry (u: Pick<SwimUpdate, 'peer' | 'run' | 'inc'>): Proofs {
    const key = keyOf(u)
    let e = this.#entries.get(key)
    if (e == null) {
      if (this.#entries.size >= this.#max) this.#entries.delete(this.#entries.keys().next().value!)
      e = { accusers: new Map() }
      this.#entries.set(key, e)
    }
    return e
  }
}
