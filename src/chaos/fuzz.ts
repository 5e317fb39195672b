/**
 * Hostile input against live agents (`discovery chaos --fuzz N`): malformed,
 * truncated, oversized, wrong-version, out-of-range and replayed messages on
 * every entry point of each target — its HTTP API, the gossip topic
 * `/discovery/state/1` and every stream protocol (place 1.0.0 and 1.1.0,
 * migrate, rebalance, replica, the failure detector's swim) — sent by a rogue
 * libp2p peer that holds the swarm key, so that they reach the agent's edge.
 * Each must be answered or dropped, each invalid one counted in
 * `discovery_invalid_messages_total{source}` (or refused with a 4xx), the
 * agent must stay up, and its VMs, reservations and view must be the same
 * after as before. Run it on a cluster with no workload of its own running:
 * a change made by a user meanwhile would count as a state change.
 *
 * The messages are drawn by fast-check from `seed` (src/chaos/fuzz/mutate.ts):
 * the same seed sends the same messages, up to the ids the target runs with.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Libp2p, Stream } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import * as lp from 'it-length-prefixed'
import { createHost } from '../net/host.ts'
import { MIGRATE_PROTOCOL, PLACE_PROTOCOL, PLACE_PROTOCOL_PIPELINED, REBALANCE_PROTOCOL, REPLICA_PROTOCOL, STATE_TOPIC, SWIM_PROTOCOL } from '../net/protocols.ts'
import { gossipBases, migrateCorpus, placeCorpus, rebalanceCorpus, replicaCorpus, swimCorpus, type TargetFacts } from './fuzz/corpus.ts'
import { gossipCases, pool, runGossip, runOneShot, runPipelined, runSwim, STREAM_LIMIT, streamCases, SWIM_LIMIT, type EntryTally } from './fuzz/entries.ts'
import { COUNTED_STATUSES, httpCases, sendHttp } from './fuzz/http.ts'
import { differences, health, healthy, invalidCounts, known, snapshot } from './fuzz/snapshot.ts'

export interface FuzzTarget {
  /** The agent's API, `http://host:port`. */
  api: string
  /** Its libp2p address, with `/p2p/<id>`. */
  listen: string
  dataDir: string
  token?: string
  swarmKeyFile?: string
}

export interface FuzzReport {
  messages: number
  byEntry: Record<string, { sent: number, answered: number, dropped: number }>
  crashes: number
  stateChanges: number
  violations: string[]
}

/** Entry points, in the order they are run, with the source their refusals are counted under. */
export const FUZZ_ENTRIES: ReadonlyArray<{ entry: string, source: string }> = Object.freeze([
  { entry: 'http', source: 'api' },
  { entry: 'place/1.0.0', source: 'place' },
  { entry: 'place/1.1.0', source: 'place' },
  { entry: 'migrate', source: 'migrate' },
  { entry: 'rebalance', source: 'rebalance' },
  { entry: 'replica', source: 'replica' },
  { entry: 'swim', source: 'swim' },
  { entry: 'gossip', source: 'gossip' }
])

/** Longest a stream may take to answer one batch. */
const STREAM_TIMEOUT_MS = 8_000
/** Longest the target may take to count what it was sent (gossip is validated as it arrives, behind the rest). */
const COUNT_DEADLINE_MS = 30_000

export async function fuzzCluster (targets: FuzzTarget[], opts: { messages: number, seed: number, log?: (line: string) => void }): Promise<FuzzReport> {
  if (!Number.isInteger(opts.messages) || opts.messages < 0) throw new TypeError(`Expected \`messages\` to be an integer >= 0, got \`${String(opts.messages)}\` (${typeof opts.messages})`)
  if (!Number.isInteger(opts.seed)) throw new TypeError(`Expected \`seed\` to be an integer, got \`${String(opts.seed)}\` (${typeof opts.seed})`)
  const log = opts.log ?? (() => {})
  const report: FuzzReport = { messages: 0, byEntry: {}, crashes: 0, stateChanges: 0, violations: [] }
  for (const { entry } of FUZZ_ENTRIES) report.byEntry[entry] = { sent: 0, answered: 0, dropped: 0 }
  if (targets.length === 0 || opts.messages === 0) return report
  log(`fuzz: seed ${opts.seed}, ${opts.messages} messages on ${targets.length} agent(s)`)
  for (let t = 0; t < targets.length; t++) {
    const share = Math.floor(opts.messages / targets.length) + (t < opts.messages % targets.length ? 1 : 0)
    if (share === 0) continue
    await fuzzOne(targets[t], share, opts.seed + 1_000_003 * t, report, log)
  }
  return report
}

async function fuzzOne (target: FuzzTarget, messages: number, seed: number, report: FuzzReport, log: (line: string) => void): Promise<void> {
  const where = target.api
  if (!await healthy(target.api)) {
    report.crashes++
    report.violations.push(`${where}: not answering /v1/health before the fuzzing started`)
    return
  }
  const me = await health(target.api)
  const addr = multiaddr(target.listen)
  const rogue = await createHost({ privateKey: await generateKeyPair('Ed25519') as any, listen: '/ip4/127.0.0.1/tcp/0', swarmKeyFile: target.swarmKeyFile }) as Libp2p & { services: { pubsub: any } }
  let acks = 0
  const heardStates: unknown[] = []
  try {
    // The rogue reads what the target sends it: its acks (swim), the states it gossips (replayed later).
    await rogue.handle(SWIM_PROTOCOL, ({ stream }: { stream: Stream }) => {
      void (async () => {
        try {
          for await (const bytes of lp.decode(stream.source)) if (JSON.parse(new TextDecoder().decode(bytes.subarray())).type === 'ack') acks++
        } catch {}
      })()
    })
    const pubsub = rogue.services.pubsub
    pubsub.addEventListener('message', (evt: CustomEvent<{ topic: string, data: Uint8Array }>) => {
      if (evt.detail.topic !== STATE_TOPIC || heardStates.length >= 16) return
      try { heardStates.push(JSON.parse(new TextDecoder().decode(evt.detail.data))) } catch {}
    })
    pubsub.subscribe(STATE_TOPIC)
    await rogue.dial(addr)

    const k = await known(target.api, target.token)
    const facts: TargetFacts = {
      rogueId: rogue.peerId.toString(),
      targetId: me.peerId,
      knownVms: new Set(k.vms),
      knownPeers: new Set([...k.peers, me.peerId]),
      capacity: k.self?.capacity ?? { cpu: 0, memMiB: 0 },
      cpuOvercommit: k.self?.cpuOvercommit ?? 1,
      heardStates
    }
    const before = await snapshot(target.api, target.token)
    const countsBefore = await invalidCounts(target.api, target.token)
    let down = false
    const stop = (): boolean => down
    const per = Math.floor(messages / FUZZ_ENTRIES.length)
    const tallies: Record<string, EntryTally> = {}
    let since = Date.now()
    const add = (entry: string, tally: EntryTally): void => {
      tallies[entry] = tally
      const e = report.byEntry[entry]
      e.sent += tally.sent
      e.answered += tally.answered
      e.dropped += tally.dropped
      report.messages += tally.sent
      report.violations.push(...tally.violations.slice(0, 20).map(v => `${where}: ${v}`))
      log(`fuzz ${where} ${entry}: ${tally.sent} sent in ${Date.now() - since} ms, ${tally.answered} answered, ${tally.dropped} dropped, ${tally.mustCount} to be counted`)
      since = Date.now()
    }
    const alive = async (): Promise<void> => {
      if (!down && !await healthy(target.api)) down = true
    }

    for (let i = 0; i < FUZZ_ENTRIES.length; i++) {
      const { entry } = FUZZ_ENTRIES[i]
      const n = per + (i < messages % FUZZ_ENTRIES.length ? 1 : 0)
      const s = seed + 7 * i
      if (n === 0 || down) continue
      if (entry === 'http') add(entry, await runHttp(target, n, s, before.vms[0]?.split(' ')[0], stop))
      else if (entry === 'place/1.0.0') add(entry, await runOneShot(rogue, addr, PLACE_PROTOCOL, entry, streamCases(placeCorpus(facts), facts, n, s, STREAM_LIMIT), STREAM_TIMEOUT_MS, stop))
      else if (entry === 'place/1.1.0') add(entry, await runPipelined(rogue, addr, PLACE_PROTOCOL_PIPELINED, entry, streamCases(placeCorpus(facts), facts, n, s, STREAM_LIMIT), STREAM_TIMEOUT_MS, stop))
      else if (entry === 'migrate') add(entry, await runOneShot(rogue, addr, MIGRATE_PROTOCOL, entry, streamCases(migrateCorpus(facts), facts, n, s, STREAM_LIMIT), STREAM_TIMEOUT_MS, stop))
      else if (entry === 'rebalance') add(entry, await runOneShot(rogue, addr, REBALANCE_PROTOCOL, entry, streamCases(rebalanceCorpus(facts), facts, n, s, STREAM_LIMIT), STREAM_TIMEOUT_MS, stop))
      else if (entry === 'replica') add(entry, await runOneShot(rogue, addr, REPLICA_PROTOCOL, entry, streamCases(replicaCorpus(facts), facts, n, s, STREAM_LIMIT), STREAM_TIMEOUT_MS, stop))
      else if (entry === 'swim') add(entry, await runSwim(rogue, addr, SWIM_PROTOCOL, streamCases(swimCorpus(facts), facts, n, s, SWIM_LIMIT), STREAM_TIMEOUT_MS, () => acks, stop))
      else if (entry === 'gossip') {
        const subscribed = await until(() => pubsub.getSubscribers(STATE_TOPIC).some((p: any) => p.toString() === me.peerId), 10_000)
        if (!subscribed) report.violations.push(`${where}: gossip: the agent never subscribed the rogue peer to ${STATE_TOPIC}; gossip not fuzzed`)
        else {
          const base = (await invalidCounts(target.api, target.token)).gossip
          const counted = async (k: number): Promise<void> => { await until(async () => (await invalidCounts(target.api, target.token).catch(() => ({ gossip: Infinity }))).gossip - base >= k, 10_000) }
          add(entry, await runGossip(async bytes => { await pubsub.publish(STATE_TOPIC, bytes) }, gossipCases(gossipBases(facts), facts, n, s), counted, stop))
        }
      }
      await alive()
    }

    // Every refusal counted, by source (both place versions count as `place`).
    const must: Record<string, number> = {}
    for (const { entry, source } of FUZZ_ENTRIES) must[source] = (must[source] ?? 0) + (tallies[entry]?.mustCount ?? 0)
    let counts = countsBefore
    if (!down) {
      await until(async () => {
        counts = await invalidCounts(target.api, target.token).catch(() => counts)
        return Object.entries(must).every(([source, n]) => counts[source] - countsBefore[source] >= n)
      }, COUNT_DEADLINE_MS)
    }
    for (const [source, n] of Object.entries(must)) {
      const got = counts[source] - countsBefore[source]
      if (!down && got < n) report.violations.push(`${where}: discovery_invalid_messages_total{source="${source}"} rose by ${got}, expected at least ${n}`)
    }
    await alive()
    if (down) {
      report.crashes++
      report.violations.push(`${where}: the agent stopped answering /v1/health during the fuzzing`)
      return
    }
    const changes = differences(before, await snapshot(target.api, target.token))
    report.stateChanges += changes.length
    // A peer declared dead meanwhile moves VMs: say so, it may be a loaded machine's false positive rather than the input.
    const deaths = (await invalidCounts(target.api, target.token).catch(() => counts)).deaths - countsBefore.deaths
    const why = deaths > 0 ? ` (the agent declared ${deaths} peer death(s) meanwhile)` : ''
    report.violations.push(...changes.map(c => `${where}: state changed: ${c}${why}`))
    log(`fuzz ${where}: done, ${changes.length} state change(s)${why}; invalid counted ${Object.entries(counts).filter(([s]) => s !== 'deaths').map(([s, n]) => `${s} +${n - countsBefore[s]}`).join(', ')}`)
  } finally {
    await rogue.stop()
  }
}

async function runHttp (target: FuzzTarget, n: number, seed: number, realVm: string | undefined, stop: () => boolean): Promise<EntryTally> {
  const tally: EntryTally = { sent: 0, answered: 0, dropped: 0, mustCount: 0, violations: [] }
  const cases = httpCases(n, seed, { token: target.token, realVm })
  await pool(cases, 8, async (c) => {
    if (stop()) return
    const res = await sendHttp(target.api, c, STREAM_TIMEOUT_MS)
    tally.sent++
    if (res.status == null) { tally.dropped++; return }
    tally.answered++
    if (res.status >= 500) tally.violations.push(`http: ${c.method} ${c.path.slice(0, 80)} → ${res.status} ${res.text.slice(0, 200)}`)
    else if (COUNTED_STATUSES.has(res.status)) tally.mustCount++
  })
  return tally
}

async function until (fn: () => boolean | Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs
  while (Date.now() < end) {
    if (await fn()) return true
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  return await fn()
}
