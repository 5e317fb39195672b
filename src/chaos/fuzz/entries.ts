/**
 * One entry point's run: its draws turned into wire bytes, the harmless ones
 * sent by a few workers at once, each outcome tallied (answered, dropped),
 * and what the target must have counted as invalid. An answer that accepts
 * (`ok: true`) a message its own schema refuses is a violation.
 */
import type { Libp2p } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { ManualClock } from '../../core/clock.ts'
import { LIMITS } from '../../core/messages.ts'
import { SWIM_LIMITS } from '../../core/swim-messages.ts'
import { StateGossip, type PubSubLike } from '../../net/state-gossip.ts'
import type { StreamCorpus, TargetFacts } from './corpus.ts'
import { damage, frame, mutate, sampleDraws, type Draw } from './mutate.ts'
import { sendRaw } from './streams.ts'

export interface EntryTally {
  sent: number
  answered: number
  dropped: number
  /** Messages the target must count in `discovery_invalid_messages_total` (its schema or its edge refuses them). */
  mustCount: number
  violations: string[]
}

export interface WireCase {
  bytes: Uint8Array
  /** The message as JSON (undefined when its bytes are not JSON, its frame broken). */
  json?: unknown
  /** Whether the target must refuse it (and count it). */
  invalid: boolean
  times: number
  label: string
}

const decoder = new TextDecoder('utf-8', { fatal: true })

function parse (bytes: Uint8Array): unknown {
  try { return JSON.parse(decoder.decode(bytes)) } catch { return undefined }
}

function describe (d: Draw, json: unknown): string {
  const j = json as any
  const op = [j?.op, j?.type, j?.msg?.type].find(x => typeof x === 'string') ?? '?'
  return `${op} [${d.mutations.map(m => m.kind).join(',')}] text ${d.text} frame ${d.frame}`
}

/** The draws of a stream protocol as frames, the valid ones kept only when harmless. */
export function streamCases (corpus: StreamCorpus, facts: TargetFacts, count: number, seed: number, limit: number): WireCase[] {
  const out: WireCase[] = []
  let round = 0
  while (sends(out) < count && round < 20) {
    for (const d of sampleDraws(corpus.bases.length, count, seed + 7919 * round++)) {
      if (sends(out) >= count) break
      const json = mutate(corpus.bases[d.base], d.mutations)
      const body = damage(json, d)
      const parsed = parse(body)
      const whole = d.frame === 'whole'
      const valid = whole && body.byteLength <= limit && parsed !== undefined && corpus.schema.safeParse(parsed).success
      if (valid && !corpus.harmless(parsed, facts)) continue
      out.push({ bytes: frame(body, d.frame, d.at, limit), json: whole ? parsed : undefined, invalid: !valid, times: Math.min(d.times, count - sends(out)), label: describe(d, json) })
    }
  }
  return out
}

/** Messages the cases make, replays included. */
function sends (cases: WireCase[]): number {
  return cases.reduce((n, c) => n + c.times, 0)
}

/** Runs `work` over `items`, `workers` at a time. */
export async function pool<T> (items: T[], workers: number, work: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: Math.min(workers, items.length) }, async () => {
    while (next < items.length) {
      const i = next++
      await work(items[i], i)
    }
  }))
}

function judge (tally: EntryTally, entry: string, c: WireCase, answer: unknown): void {
  if (c.invalid && (answer as any)?.ok === true) tally.violations.push(`${entry}: accepted an invalid message (${c.label})`)
}

/**
 * One request per stream (`/discovery/place/1.0.0`, migrate, rebalance,
 * replica); each replay on a stream of its own.
 */
export async function runOneShot (host: Libp2p, target: Multiaddr, protocol: string, entry: string, cases: WireCase[], timeoutMs: number, stop: () => boolean): Promise<EntryTally> {
  const tally: EntryTally = { sent: 0, answered: 0, dropped: 0, mustCount: 0, violations: [] }
  const sends = cases.flatMap(c => Array.from({ length: c.times }, () => c))
  await pool(sends, 8, async (c) => {
    if (stop()) return
    const res = await sendRaw(host, target, protocol, [c.bytes], timeoutMs)
    tally.sent++
    if (res.unopened) { tally.dropped++; return }
    if (c.invalid) tally.mustCount++
    if (res.answers.length > 0) { tally.answered++; judge(tally, entry, c, res.answers[0]) } else tally.dropped++
  })
  return tally
}

/**
 * Several requests per stream (`/discovery/place/1.1.0`): valid ones first,
 * then at most one invalid one, which ends the stream (the server trusts
 * nothing after it). Each is answered in order or dropped.
 */
export async function runPipelined (host: Libp2p, target: Multiaddr, protocol: string, entry: string, cases: WireCase[], timeoutMs: number, stop: () => boolean): Promise<EntryTally> {
  const tally: EntryTally = { sent: 0, answered: 0, dropped: 0, mustCount: 0, violations: [] }
  const batches: WireCase[][] = []
  let batch: WireCase[] = []
  for (const c of cases) {
    for (let t = 0; t < c.times; t++) {
      batch.push(c)
      if (c.invalid || batch.length >= 6) { batches.push(batch); batch = [] }
    }
  }
  if (batch.length > 0) batches.push(batch)
  await pool(batches, 6, async (b) => {
    if (stop()) return
    const res = await sendRaw(host, target, protocol, b.map(c => c.bytes), timeoutMs)
    tally.sent += b.length
    if (res.unopened) { tally.dropped += b.length; return }
    b.forEach((c, i) => {
      if (c.invalid) tally.mustCount++
      if (i < res.answers.length) { tally.answered++; judge(tally, entry, c, res.answers[i]) } else tally.dropped++
    })
  })
  return tally
}

/**
 * `/discovery/swim/1.0.0`: datagrams on a stream the rogue opens, answered (a
 * ping's ack) on a stream the target opens to the rogue: `acks()` counts those.
 * Valid messages first, at most one invalid one last (it ends the stream).
 */
export async function runSwim (host: Libp2p, target: Multiaddr, protocol: string, cases: WireCase[], timeoutMs: number, acks: () => number, stop: () => boolean): Promise<EntryTally> {
  const tally: EntryTally = { sent: 0, answered: 0, dropped: 0, mustCount: 0, violations: [] }
  const before = acks()
  let pings = 0
  const batches: WireCase[][] = []
  let batch: WireCase[] = []
  for (const c of cases) {
    for (let t = 0; t < c.times; t++) {
      batch.push(c)
      if (c.invalid || batch.length >= 16) { batches.push(batch); batch = [] }
    }
  }
  if (batch.length > 0) batches.push(batch)
  await pool(batches, 2, async (b) => {
    if (stop()) return
    const res = await sendRaw(host, target, protocol, b.map(c => c.bytes), timeoutMs, false)
    tally.sent += b.length
    if (res.unopened) return
    for (const c of b) {
      if (c.invalid) tally.mustCount++
      else if ((c.json as any)?.type === 'ping') pings++
    }
  })
  // Acks come on their own stream, a round trip later.
  const deadline = Date.now() + 3_000
  while (acks() - before < pings && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 50))
  tally.answered = Math.min(pings, acks() - before)
  tally.dropped = tally.sent - tally.answered
  return tally
}

/** A pubsub that goes nowhere: the real edge of the state topic, run locally to tell which variants it refuses. */
const nowhere: PubSubLike = {
  subscribe () {}, unsubscribe () {}, async publish () {}, topicValidators: new Map(), addEventListener () {}, removeEventListener () {}
}

/** The draws of the state topic: bytes to publish, the harmless ones only (refused, or a delta with nothing to apply to). */
export function gossipCases (bases: unknown[], facts: TargetFacts, count: number, seed: number): WireCase[] {
  const out: WireCase[] = []
  let round = 0
  while (sends(out) < count && round < 20) {
    for (const d of sampleDraws(bases.length, count, seed + 7919 * round++)) {
      if (sends(out) >= count) break
      const json = mutate(bases[d.base], d.mutations)
      const bytes = d.frame === 'oversize' ? frame(new Uint8Array(), 'oversize', 0, LIMITS.maxMessageBytes).subarray(3) : damage(json, d)
      let invalid = false
      try {
        const edge = new StateGossip({ pubsub: nowhere, clock: new ManualClock(0), onState () {}, onInvalid () {} })
        if (edge.receive(facts.rogueId, bytes) != null) continue
      } catch {
        invalid = true
      }
      out.push({ bytes, json, invalid, times: Math.min(d.times, count - sends(out)), label: describe(d, json) })
    }
  }
  return out
}

/**
 * Publishes the cases, `GOSSIP_BATCH` at a time, each batch once the target
 * counted the one before (`counted(n)`: until it counted `n` or gave up).
 * Gossipsub drops what does not fit a peer's outbound queue: a slow target
 * must not lose messages it was never given.
 */
export async function runGossip (publish: (bytes: Uint8Array) => Promise<void>, cases: WireCase[], counted: (n: number) => Promise<void>, stop: () => boolean): Promise<EntryTally> {
  const tally: EntryTally = { sent: 0, answered: 0, dropped: 0, mustCount: 0, violations: [] }
  for (const c of cases) {
    for (let t = 0; t < c.times; t++) {
      if (stop()) return tally
      await publish(c.bytes)
      tally.sent++
      // A topic has no answers: every message is dropped, the invalid ones counted.
      tally.dropped++
      if (c.invalid) tally.mustCount++
      if (tally.sent % GOSSIP_BATCH === 0) await counted(tally.mustCount)
    }
  }
  return tally
}

const GOSSIP_BATCH = 25

export const STREAM_LIMIT = LIMITS.maxMessageBytes
export const SWIM_LIMIT = SWIM_LIMITS.maxMessageBytes
