/**
 * The failure detector's settings (core/failure-detector.ts), one set per
 * profile, after memberlist's DefaultLocalConfig / DefaultLANConfig /
 * DefaultWANConfig but faster where our transport allows it: probes ride on
 * a long-lived TCP stream per pair of peers (no UDP loss to absorb), and the
 * goal is a hung agent declared dead by every other within 3 s at 50 agents
 * sharing one 2-core machine. Both the agent (src/config.ts) and the
 * simulator read them from here.
 *
 * Detection time of a hung member, roughly: the first probe of it within
 * about 4.6 intervals at p99 (each of the n − 1 others probes it once per
 * pass of n − 1 intervals), the probe's failure after 2–3 probe timeouts,
 * then the minimum suspicion timeout once `deadQuorum` accusers agree, plus
 * the time for the verdict to spread (a few gossip intervals).
 */
import { expectNumber } from './options.ts'

export interface DetectorConfig {
  /**
   * One probe of one peer per interval (stretched by local health). Shorter
   * finds a failure sooner and costs each agent more messages: two per probe
   * and the answers to its peers' probes. Default 200 ms (local: 250 probes a
   * second for 50 agents on one host; the 3 s goal needs the first probe of a
   * hung agent within about 1 s at p99), 500 ms (lan: one agent per machine,
   * the cost is negligible), 1 s (wan: links tens of ms long, each message
   * dearer than on a LAN).
   */
  probeIntervalMs: number
  /**
   * How long a direct ping waits for its ack before helpers are asked, and how
   * long a helper waits before it nacks: above the p99 of a round trip,
   * including a busy peer's event loop. Default 150 ms (local: 50 agents on
   * two cores answer within tens of ms unless the machine is saturated),
   * 250 ms (lan: memberlist's 500 ms is for UDP; a GC pause of 100 ms passes),
   * 600 ms (wan: 25–40 ms RTT plus a TCP retransmission, whose minimum timeout
   * is 200 ms, plus jitter).
   */
  probeTimeoutMs: number
  /**
   * Peers asked to probe a target that did not answer directly (ping-req): a
   * one-way fault between prober and target, or a slow link, is bridged by
   * any one of them. Default 3 (memberlist's LAN value; 1 in its local
   * profile, but here one slow helper on a busy host should not make a
   * suspicion).
   */
  indirectChecks: number
  /**
   * The minimum suspicion timeout is `suspicionMult × max(1, log10(n)) ×
   * probeIntervalMs` (memberlist's formula): the time an accusation needs to
   * reach everyone grows with log n, and a suspect must hear it to refute.
   * Default 3 (local: about 1 s at 50 agents, what the 3 s goal leaves),
   * 4 (lan: memberlist's; 3.4 s at 50), 5 (wan: 8.5 s at 50).
   */
  suspicionMult: number
  /**
   * A suspicion starts at `suspicionMaxTimeoutMult ×` the minimum and comes
   * down to it, on a log scale, as independent accusers confirm it
   * (Lifeguard): one sick node's lone accusation lasts long enough for the
   * accused to refute. Default 6 (memberlist's, all profiles).
   */
  suspicionMaxTimeoutMult: number
  /**
   * Each membership update is piggy-backed `retransmitMult × ceil(log10(n +
   * 1))` times. Default 4 (memberlist's LAN value; 8 sends at 50 agents),
   * all profiles: our messages are not lost, but a member must hear of an
   * accusation to refute it.
   */
  retransmitMult: number
  /**
   * Local health stretches the probe interval and timeouts up to this many
   * times (Lifeguard). Default 8 (memberlist's): at most 1.6 s between
   * probes in the local profile when an agent is starved of CPU.
   */
  awarenessMax: number
  /**
   * A probe of a member waits at least its measured round trip (srtt + 4 ×
   * rttvar, core/rtt-estimate.ts), up to this many times `probeTimeoutMs`:
   * on a saturated machine healthy agents answer in hundreds of
   * milliseconds, and a fixed timeout accuses them; the bound keeps a member
   * that became slow enough to matter detectable. 1 turns it off. Default 8
   * (local: up to 1.2 s for a direct ping).
   */
  rttTimeoutMaxMult: number
  /**
   * Distinct accusers (among the members we believe alive, or ourselves) that
   * make this node show a peer `suspect` on others' word; its own failed
   * probe is enough. Default 2: a lone accuser may be the one whose network
   * is broken (a one-way fault), and peers should not flap on its word.
   */
  suspectQuorum: number
  /**
   * Distinct accusers needed, once the suspicion timeout is over, to declare a
   * peer dead (after Rapid's multi-observer alerts): one observer with a
   * broken path cannot kill a healthy peer. Capped by the members able to
   * observe (ourselves and the peers we believe alive), so a cluster of two
   * still detects. The suspicion reaches its minimum timeout with this many
   * accusers. Default 3.
   */
  deadQuorum: number
  /**
   * On first hearing of an accusation, a member probes the accused at once
   * with probability `verifyProbes / observers`: about this many extra
   * probes cluster-wide, so that the quorum of accusers gathers in one
   * probe time instead of waiting for the round-robin. Default 3.
   */
  verifyProbes: number
  /**
   * Updates that should not wait for the next probe (an accusation, a
   * refutation, a death) are also pushed to `gossipFanout` random peers every
   * `gossipIntervalMs` while some are queued; nothing is sent when nothing
   * changes. Default 100 ms (local), 200 ms (lan), 500 ms (wan) — memberlist's
   * gossip intervals — to 3 peers (4 on wan, memberlist's).
   */
  gossipIntervalMs: number
  gossipFanout: number
  /**
   * Rapid's monitoring topology (core/monitor-rings.ts): each member is
   * observed by about this many others and observes about as many, chosen
   * from the member ids on this many pseudo-random rings; it probes its
   * subjects only, asks the other observers of a subject for indirect probes,
   * gossips to the peers it talks to, and counts only a member's observers
   * among its accusers. So each agent keeps connections to about 2 ×
   * `observers` peers for detection, whatever the cluster's size, and the
   * bounded fan-out (`connection.maxConnections`) holds. Off (everyone probes
   * everyone, SWIM's way) while the members not dead are at most 2 ×
   * `observers` + 1: the rings would give each about as many peers, some
   * members fewer distinct observers than the quorums want. null: never.
   * Default 4 (local: 4 ≥ `deadQuorum` + 1, so one observer slow or dead
   * with its subject does not stop a death; about 8 detection peers, the
   * local bound); null (lan, wan: one agent per machine, whose connections
   * cost little beside the machine's; their full mesh stays as measured).
   */
  observers: number | null
  /**
   * Each node sends one peer the members it holds suspect or dead (`sync`)
   * this often, and is answered with what that peer knows beyond it. Updates
   * are piggy-backed a bounded number of times, and during a partition most
   * of those go to peers across the cut: a node could miss the accusations
   * or the verdict that decide a member and hold it suspect, or alive, for
   * as long as the partition lasts (the simulator found members stuck so for
   * a minute in 3 of 4 seeded 3/3 partitions). Default 2 s (local: a stuck
   * view is put right within a few seconds, at half a message per agent per
   * second), 5 s (lan), 10 s (wan): memberlist's push/pull is 30 s for a
   * full state; this one carries only what is not alive. A sync with
   * nothing to tell, with `hostProbesPerSecond`, waits as long again as the
   * probe interval is stretched (5 s at 50 local agents, 10 s at 100:
   * probe-timing.ts, `syncEveryMs`).
   */
  syncIntervalMs: number
  /**
   * Probes a second for all the agents of one host together, when they share
   * it (the `local` profile): the probe interval is stretched to
   * `live members / hostProbesPerSecond` seconds when that is longer, so the
   * detector's cost per agent falls as agents are added rather than staying
   * at five probes a second each (four messages per probe, sent and
   * received). Default 100 (local: 200 ms up to 20 agents, 500 ms at 50 —
   * lan's interval — and 1 s at 100; a stopped or killed agent is still
   * probed at once, its process seen by `processCheckMs`. 250 before: a
   * hundred agents then came up in 110–145 s and took 212–270 s of CPU
   * doing it, against 95 s and 181 s with 100); null (lan, wan: one agent
   * per machine).
   */
  hostProbesPerSecond: number | null
  /**
   * The most the host's slowdown stretches the probe timeouts and the probe
   * interval, when the agents share one host (probe-timing.ts
   * `hostSlowdown`: how much slower than its CPU needs the agent's process
   * runs, (run + runnable-but-waiting) / run, read each tick and smoothed).
   * Default 4 (local: 50 agents under the placement load ran 30 ms and
   * waited 886 ms each second, so healthy peers answered probes seconds
   * late; and every probe that times out sends three ping-reqs, most over
   * new connections, each 25–30 ms of CPU for its handshakes — measured, 30
   * new connections a second while 100 agents came up); null (lan, wan: one
   * agent per machine, whose own lateness Lifeguard's awareness measures).
   */
  hostLoadMaxMult?: number | null
  /**
   * How often the agent asks its kernel whether the processes of the peers it
   * observes on its own host are stopped or gone (agent/process-watch.ts;
   * peers share a host when their gossiped boot id and pid namespace are
   * ours). A peer the kernel shows stopped (SIGSTOP, a debugger) or gone is
   * probed at once with the plain `probeTimeoutMs`, stretched by nothing, and
   * its silence is a failed probe without helpers, told at once to its other
   * observers, and its suspicion lasts one probe interval: the waits that
   * spare a slow peer on a saturated host (and the time a live one has to
   * refute) cannot serve one that does not run, and they made a hang take
   * 8–35 s to call at 50 agents on one 2-core machine. The quorum and the
   * refutation stay as they are. It
   * costs nothing when no observed peer shares the host. Default 250 ms in
   * every profile (a read of one small file per co-hosted subject); null:
   * off. With `hostProbesPerSecond`, doubled while shorter than the host's
   * probe share (probe-timing.ts `processCheckEveryMs`: 1 s at 100 local
   * agents). The simulator ignores it.
   */
  processCheckMs?: number | null
}

export type DetectorProfile = 'local' | 'lan' | 'wan'

const shared = { indirectChecks: 3, suspicionMaxTimeoutMult: 6, retransmitMult: 4, awarenessMax: 8, rttTimeoutMaxMult: 8, suspectQuorum: 2, deadQuorum: 3, verifyProbes: 3 }

export const DETECTOR_PROFILES: Readonly<Record<DetectorProfile, Readonly<DetectorConfig>>> = Object.freeze({
  local: Object.freeze({ ...shared, probeIntervalMs: 200, probeTimeoutMs: 150, suspicionMult: 3, gossipIntervalMs: 100, gossipFanout: 3, observers: 4, syncIntervalMs: 2_000, hostProbesPerSecond: 100, hostLoadMaxMult: 4, processCheckMs: 250 }),
  lan: Object.freeze({ ...shared, probeIntervalMs: 500, probeTimeoutMs: 250, suspicionMult: 4, gossipIntervalMs: 200, gossipFanout: 3, observers: null, syncIntervalMs: 5_000, hostProbesPerSecond: null, hostLoadMaxMult: null, processCheckMs: 250 }),
  wan: Object.freeze({ ...shared, probeIntervalMs: 1_000, probeTimeoutMs: 600, suspicionMult: 5, gossipIntervalMs: 500, gossipFanout: 4, observers: null, syncIntervalMs: 10_000, hostProbesPerSecond: null, hostLoadMaxMult: null, processCheckMs: 250 })
})

/** Checks every field once; throws InvalidOptionError naming the field, what was expected and what came. */
export function validateDetectorConfig (c: DetectorConfig): DetectorConfig {
  expectNumber('detector.probeIntervalMs', c.probeIntervalMs, { min: 10, max: 600_000 })
  expectNumber('detector.probeTimeoutMs', c.probeTimeoutMs, { min: 1, max: 600_000 })
  expectNumber('detector.indirectChecks', c.indirectChecks, { min: 0, max: 16, integer: true })
  expectNumber('detector.suspicionMult', c.suspicionMult, { above: 0, max: 1000 })
  expectNumber('detector.suspicionMaxTimeoutMult', c.suspicionMaxTimeoutMult, { min: 1, max: 1000 })
  expectNumber('detector.retransmitMult', c.retransmitMult, { min: 1, max: 100, integer: true })
  expectNumber('detector.awarenessMax', c.awarenessMax, { min: 1, max: 100, integer: true })
  expectNumber('detector.rttTimeoutMaxMult', c.rttTimeoutMaxMult, { min: 1, max: 100 })
  expectNumber('detector.suspectQuorum', c.suspectQuorum, { min: 1, max: 16, integer: true })
  expectNumber('detector.deadQuorum', c.deadQuorum, { min: 1, max: 16, integer: true })
  expectNumber('detector.verifyProbes', c.verifyProbes, { min: 0, max: 100 })
  expectNumber('detector.gossipIntervalMs', c.gossipIntervalMs, { min: 1, max: 600_000 })
  expectNumber('detector.gossipFanout', c.gossipFanout, { min: 0, max: 64, integer: true })
  expectNumber('detector.syncIntervalMs', c.syncIntervalMs, { min: 10, max: 3_600_000 })
  if (c.hostProbesPerSecond !== null) expectNumber('detector.hostProbesPerSecond', c.hostProbesPerSecond, { above: 0, max: 1_000_000 })
  if (c.hostLoadMaxMult != null) expectNumber('detector.hostLoadMaxMult', c.hostLoadMaxMult, { min: 1, max: 100 })
  if (c.processCheckMs != null) expectNumber('detector.processCheckMs', c.processCheckMs, { min: 10, max: 600_000 })
  if (c.observers !== null) expectNumber('detector.observers', c.observers, { min: 1, max: 16, integer: true })
  return c
}
