/**
 * Who owns a VM, with proof. A VM's ownership is a chain of signed links:
 *
 * - `create` (owner O, signed by O): where the chain starts. It proves only
 *   what a verifier already holds: a verifier trusts its own chain, never a
 *   stranger's origin.
 * - `migrate` (epoch e + 1, owner B, prev (e, A), signed by A): the source
 *   hands the VM over at the commit of a live migration.
 * - `restart` (epoch e + 1, owner C, prev (e, A), signed by a replica holder
 *   R, carrying A's designation that names R): A was declared dead and R
 *   restarted its VM on C.
 *
 * A designation is the owner's signed list of its VM's replica holders, in
 * ring order; it travels with each replica, so a holder can prove it was
 * entitled to restart the VM. A tombstone is the owner's signed word that
 * the VM is deleted, with its chain.
 *
 * Heads compare as (epoch, owner peer id): two sides of a partition that both
 * restarted a VM at one epoch agree which copy wins. A claim of a higher head
 * is accepted only if its chain reaches a link of the verifier's own chain
 * (its head, or a common ancestor: the dead owner's link both sides restarted
 * from) and every link after it is signed by the peer entitled to it. A peer
 * can sign only as itself: it cannot make a valid link for a VM it never
 * owned nor was designated for. Signing is injected (`Signer`); the agent
 * signs with its libp2p Ed25519 key, the tests with keys of their own.
 */
import { canonicalBytes, canonicalJson, fromBase64, toBase64 } from './canonical.ts'
import { type Chain, type CreateLink, type Designation, type Head, type Link, MAX_CHAIN, type MigrateLink, type RestartLink, type Tombstone } from './ownership-messages.ts'

export type { Chain, Designation, Head, Link, Tombstone }

/** Signs as one peer and checks any peer's signatures; pure computation. */
export interface Signer {
  /** The peer id it signs as. */
  readonly self: string
  sign: (bytes: Uint8Array) => Uint8Array
  /** Whether `sig` is `peerId`'s signature of `bytes` (its public key is in its id); false for a malformed id. */
  verify: (peerId: string, bytes: Uint8Array, sig: Uint8Array) => boolean
}

/** What each kind of signature covers, so that one kind can never pass for another. */
const TAG = { link: 'discovery/link/1', designation: 'discovery/designation/1', tombstone: 'discovery/tombstone/1' } as const

const SIGNATURE_BYTES = 64

function sign (signer: Signer, tag: string, body: object): string {
  return toBase64(signer.sign(canonicalBytes({ ...body, t: tag })))
}

function signedBy (signer: Signer, peerId: string, tag: string, body: object, sig: string): boolean {
  const bytes = fromBase64(sig)
  if (bytes == null || bytes.length !== SIGNATURE_BYTES) return false
  try {
    return signer.verify(peerId, canonicalBytes({ ...body, t: tag }), bytes)
  } catch {
    return false
  }
}

function unsigned<T extends { sig: string }> (value: T): Omit<T, 'sig'> {
  const { sig: _sig, ...rest } = value
  return rest
}

// ---------------------------------------------------------------------------
// Heads

/** > 0 when `a` is above `b`: the higher epoch, then the higher peer id. */
export function compareHeads (a: Head, b: Head): number {
  if (a.epoch !== b.epoch) return a.epoch - b.epoch
  return a.owner < b.owner ? -1 : a.owner > b.owner ? 1 : 0
}

export function headOf (chain: readonly Link[]): Head {
  const last = chain[chain.length - 1]
  return { epoch: last.epoch, owner: last.owner }
}

export function formatHead (h: Head): string {
  return `(${h.epoch}, …${h.owner.slice(-8)})`
}

/** The chain with `link` at its head, its oldest links dropped past MAX_CHAIN. */
export function extend (chain: readonly Link[], link: Link): Chain {
  const out = [...chain, link]
  return out.length > MAX_CHAIN ? out.slice(out.length - MAX_CHAIN) : out
}

// ---------------------------------------------------------------------------
// Making proofs

/** The first link of a VM's chain, at `epoch` (0 for a new VM; a record of an earlier version keeps its epoch). */
export function originLink (vmId: string, signer: Signer, epoch = 0): CreateLink {
  const body = { kind: 'create' as const, vmId, epoch, owner: signer.self }
  return { ...body, sig: sign(signer, TAG.link, body) }
}

/** The owner hands its VM to `to` (a migration's commit): signed by the owner. */
export function migrateLink (chain: readonly Link[], to: string, signer: Signer): MigrateLink {
  const prev = headOf(chain)
  if (prev.owner !== signer.self) throw new Error(`only the owner ${prev.owner} can hand its VM over`)
  const body = { kind: 'migrate' as const, vmId: chain[0].vmId, epoch: prev.epoch + 1, owner: to, prev }
  return { ...body, sig: sign(signer, TAG.link, body) }
}

/** The owner names its VM's replica holders at its head, in ring order. */
export function designate (vmId: string, head: Head, replicas: readonly string[], issuedAtMs: number, signer: Signer): Designation {
  if (head.owner !== signer.self) throw new Error(`only the owner ${head.owner} can designate its replica holders`)
  const body = { vmId, epoch: head.epoch, owner: head.owner, replicas: [...replicas], issuedAtMs }
  return { ...body, sig: sign(signer, TAG.designation, body) }
}

/** A designated holder restarts the dead owner's VM on `newOwner`. */
export function restartLink (chain: readonly Link[], designation: Designation, newOwner: string, signer: Signer): RestartLink {
  const prev = headOf(chain)
  const body = { kind: 'restart' as const, vmId: chain[0].vmId, epoch: prev.epoch + 1, owner: newOwner, prev, by: signer.self, designation }
  return { ...body, sig: sign(signer, TAG.link, body) }
}

/** The owner's word that its VM is deleted. */
export function makeTombstone (chain: readonly Link[], deletedAtMs: number, signer: Signer): Tombstone {
  const head = headOf(chain)
  if (head.owner !== signer.self) throw new Error(`only the owner ${head.owner} can delete its VM`)
  const body = { vmId: chain[0].vmId, epoch: head.epoch, owner: head.owner, deletedAtMs }
  return { ...body, chain: [...chain], sig: sign(signer, TAG.tombstone, body) }
}

// ---------------------------------------------------------------------------
// Checking proofs: each returns why a proof is refused, undefined when it holds.

/** `d` is the designation of the owner at `head`, signed by it. */
export function checkDesignation (d: Designation, vmId: string, head: Head, signer: Signer): string | undefined {
  if (d.vmId !== vmId) return `the designation is for ${d.vmId}, not ${vmId}`
  if (d.epoch !== head.epoch || d.owner !== head.owner) return `the designation is of ${formatHead(d)}, not of ${formatHead(head)}`
  if (d.replicas.includes(d.owner)) return 'the designation names its owner as a holder'
  if (!signedBy(signer, d.owner, TAG.designation, unsigned(d), d.sig)) return `the designation is not signed by its owner ${d.owner}`
  return undefined
}

/** What one link proves on its own: signed by the peer entitled to it, given the head it follows. */
export function checkLink (link: Link, vmId: string, signer: Signer): string | undefined {
  if (link.vmId !== vmId) return `a link is for ${link.vmId}, not ${vmId}`
  const body = unsigned(link)
  switch (link.kind) {
    case 'create':
      return signedBy(signer, link.owner, TAG.link, body, link.sig) ? undefined : `the create link of ${formatHead(link)} is not signed by its owner`
    case 'migrate':
      if (link.owner === link.prev.owner) return 'a migration to the node it leaves'
      return signedBy(signer, link.prev.owner, TAG.link, body, link.sig) ? undefined : `the migration to ${formatHead(link)} is not signed by the previous owner ${link.prev.owner}`
    case 'restart': {
      if (link.owner === link.prev.owner) return 'a restart on the dead owner itself'
      const bad = checkDesignation(link.designation, vmId, link.prev, signer)
      if (bad != null) return `the restart at ${formatHead(link)}: ${bad}`
      if (!link.designation.replicas.includes(link.by)) return `the restart at ${formatHead(link)} is by ${link.by}, which the owner did not designate`
      return signedBy(signer, link.by, TAG.link, body, link.sig) ? undefined : `the restart at ${formatHead(link)} is not signed by ${link.by}`
    }
  }
}

/** `link` follows `prev`: the head it names, one epoch on, and valid on its own. */
export function checkStep (prev: Link, link: Link, vmId: string, signer: Signer): string | undefined {
  if (link.kind === 'create') return `a create link at ${formatHead(link)} inside a chain`
  if (link.prev.epoch !== prev.epoch || link.prev.owner !== prev.owner) return `the link ${formatHead(link)} follows ${formatHead(link.prev)}, not ${formatHead(prev)}`
  if (link.epoch !== prev.epoch + 1) return `the link ${formatHead(link)} is not one epoch after ${formatHead(prev)}`
  return checkLink(link, vmId, signer)
}

/** A chain that holds together on its own (its first link may be a truncated one's). It proves nothing to a verifier it does not reach. */
export function checkChain (chain: readonly Link[], vmId: string, signer: Signer): string | undefined {
  if (chain.length === 0) return 'an empty chain'
  if (chain.length > MAX_CHAIN) return `a chain of ${chain.length} links, more than ${MAX_CHAIN}`
  const first = checkLink(chain[0], vmId, signer)
  if (first != null) return first
  for (let i = 1; i < chain.length; i++) {
    const bad = checkStep(chain[i - 1], chain[i], vmId, signer)
    if (bad != null) return bad
  }
  return undefined
}

/** Whether two links are the same (the same signed content: Ed25519 signatures are deterministic). */
function linkKey (link: Link): string {
  return canonicalJson(link)
}

/**
 * `theirs` reaches `mine`: its newest link that `mine` also holds is our head
 * or a common ancestor, and every link after it follows with a valid proof.
 */
export function connects (mine: readonly Link[], theirs: readonly Link[], vmId: string, signer: Signer): string | undefined {
  if (theirs.length === 0) return 'an empty chain'
  if (theirs.length > MAX_CHAIN) return `a chain of ${theirs.length} links, more than ${MAX_CHAIN}`
  if (theirs.some(l => l.vmId !== vmId)) return `a chain with links of another VM than ${vmId}`
  const ours = new Set(mine.map(linkKey))
  let common = -1
  for (let i = theirs.length - 1; i >= 0; i--) {
    if (ours.has(linkKey(theirs[i]))) {
      common = i
      break
    }
  }
  if (common < 0) return `the chain shares no link with ours (head ${formatHead(headOf(mine))}): forged, or truncated past our head`
  for (let i = common + 1; i < theirs.length; i++) {
    const bad = checkStep(theirs[i - 1], theirs[i], vmId, signer)
    if (bad != null) return bad
  }
  return undefined
}

/**
 * The fencing decision. We run `vmId` with `mine`; a peer claims it with
 * `theirs`. Undefined means the claim holds and is above our head: stop our
 * copy. Otherwise why it does not: not higher (keep running, the other side
 * stops its copy), or unproven (drop the claim, count it, keep running).
 */
export function checkClaim (mine: readonly Link[], theirs: readonly Link[], vmId: string, signer: Signer): string | undefined {
  if (theirs.length === 0) return 'an empty chain'
  if (compareHeads(headOf(theirs), headOf(mine)) <= 0) return `the claim ${formatHead(headOf(theirs))} is not above our head ${formatHead(headOf(mine))}`
  return connects(mine, theirs, vmId, signer)
}

/**
 * Whether tombstone `t` is its owner's word, and, given the chain of a copy
 * or replica we hold, whether it deletes that one: its chain reaches ours
 * (the deleted head is ours, an ancestor of ours, or a descendant of one).
 */
export function checkTombstone (t: Tombstone, mine: readonly Link[] | undefined, signer: Signer): string | undefined {
  const head = headOf(t.chain)
  if (head.epoch !== t.epoch || head.owner !== t.owner) return `the tombstone of ${formatHead(t)} carries a chain whose head is ${formatHead(head)}`
  if (!signedBy(signer, t.owner, TAG.tombstone, { vmId: t.vmId, epoch: t.epoch, owner: t.owner, deletedAtMs: t.deletedAtMs }, t.sig)) return `the tombstone is not signed by its owner ${t.owner}`
  return mine == null ? checkChain(t.chain, t.vmId, signer) : connects(mine, t.chain, t.vmId, signer)
}
