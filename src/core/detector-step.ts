/**
 * What the failure detector (failure-detector.ts) takes at its creation and
 * gives back at every call: its init, the step (messages to send, status
 * changes, when to be woken), its counters.
 */
import type { DetectorConfig } from './detector-config.ts'
import type { MemberDirectory } from './member-directory.ts'
import type { Rng } from './rng.ts'
import type { SwimMessage } from './swim-messages.ts'
import type { StatusChange } from './swim-members.ts'

export interface DetectorInit {
  self: string
  /** This process's run: its start time, above every incarnation of a previous run. */
  run: number
  config: DetectorConfig
  rng: Rng
  nowMs: number
  /** The simulator's shared list of members (member-directory.ts); the agent adds its members one by one instead. */
  directory?: MemberDirectory
  /**
   * The local health score to start with. Default `awarenessMax` − 1: a node
   * that has just started (code still compiling, connections being made, and
   * in a local cluster fifty others starting on the same cores) cannot vouch
   * for its own timeliness; it probes slowly and waits long until its probes
   * come back answered, each answer lowering the score by one.
   */
  startHealth?: number
  /** How long a member added is not accused on a probe that timed out. Default JOIN_GRACE_PERIODS probe intervals. */
  joinGraceMs?: number
}

export interface Outgoing {
  to: string
  message: SwimMessage
}

export interface DetectorStep {
  send: Outgoing[]
  changes: StatusChange[]
  /** Call `tick` at this time (or later: lateness is measured from it). */
  wakeAtMs?: number
}

export interface DetectorStats {
  /** Probes sent: the round-robin's, and extra ones (a hint, a verification, a revival). */
  probes: number
  /** Probes that had to go through helpers. */
  indirectProbes: number
  /** Probes that ended with no ack and a confirmation: accusations made by this node. */
  failedProbes: number
  /** Probes that ended with no ack and no word from any helper: not counted against the target. */
  inconclusiveProbes: number
  /** Members this node began to show suspect. */
  suspicions: number
  /** Accusations of this node it refuted. */
  refutations: number
  /** Members this node marked dead. */
  deaths: number
  /** Members marked dead here that came back in the same run: deaths later refuted. */
  falsePositives: number
  /** Syncs sent: the members this node holds suspect or dead, to one peer. */
  syncs: number
  /** Updates sent in answer to a sync: what the asker lacked or held in an older form. */
  syncNews: number
  messagesSent: number
  messagesReceived: number
}

/**
 * A member added less than this many probe intervals ago is not accused on a
 * probe that timed out (a refused dial still counts): a newcomer is busy
 * starting and making its connections, and so is a cluster started together.
 */
export const JOIN_GRACE_PERIODS = 30

/**
 * Late by this many probe intervals or more, a node was paused rather than
 * slow: its probes in flight are dropped unjudged and its suspicion clocks
 * moved by the pause. Less late is chronic slowness, which only raises its
 * health score: dropping probes on every late timer would stop a starved
 * node from ever accusing, and moving its clocks from ever declaring.
 */
export const PAUSE_PERIODS = 5

export function emptyStats (): DetectorStats {
  return { probes: 0, indirectProbes: 0, failedProbes: 0, inconclusiveProbes: 0, suspicions: 0, refutations: 0, deaths: 0, falsePositives: 0, syncs: 0, syncNews: 0, messagesSent: 0, messagesReceived: 0 }
}

/** A status change in the counters: suspicions, deaths, and false positives (a death its member refuted). */
export function countChange (stats: DetectorStats, c: { from?: string, to: string, refuted?: boolean }): void {
  if (c.to === 'suspect') stats.suspicions++
  if (c.to === 'dead') stats.deaths++
  if (c.from === 'dead' && c.to === 'alive' && c.refuted === true) stats.falsePositives++
}
