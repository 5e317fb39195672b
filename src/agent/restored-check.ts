/**
 * An agent back on its data dir asks what became of its VMs while it was
 * away. Its peers may have declared it dead and restarted its VMs elsewhere
 * (at a later epoch), or a user may have deleted them; until it hears of it,
 * its copies run beside the newer ones. Gossip tells it in the end (a new
 * owner that sees an older copy gossiped sends its proof, claims.ts), once
 * the agent has joined the gossip mesh: seconds. Instead, as soon as it is
 * connected to a peer, it asks up to `askPeers` of them (`heads` over the
 * replica protocol) for what they know above the head of each of its VMs:
 * the later copies they run, hold the record of, restarted, or see gossiped,
 * and the tombstones they keep. Each later copy is then proved by its owner
 * before ours stops (the claim path: a peer cannot make us stop a VM by
 * saying so); each tombstone is checked against our chain before our copy is
 * deleted (tombstone-intake.ts). A VM whose process was gone when the agent
 * started (a machine that rebooted) is started again only after this check
 * (vm-keeper.ts `resumeDeferred`), so a reboot does not start a VM that runs
 * elsewhere.
 */
import type { Logger } from 'pino'
import type { Head } from '../core/ownership.ts'
import type { Tombstone } from '../core/ownership-messages.ts'
import { type LaterHead, MAX_RECORDS_PER_MESSAGE } from '../core/replica-messages.ts'

export interface RestoredCheckInit {
  log: Logger
  /** The VMs this agent runs with their heads, read when the check starts. */
  heads: () => Array<{ vmId: string } & Head>
  /** Peers connected now. */
  peers: () => string[]
  /** `heads` to one peer; rejects when it cannot be asked. */
  ask: (peer: string, heads: Array<{ vmId: string } & Head>) => Promise<{ later: LaterHead[], tombstones: Tombstone[] }>
  /** A later copy, to be proved by its owner (claims.ts `heard`). */
  heard: (owner: string, vmId: string, head: Head) => void
  /** Tombstones a peer keeps of our VMs (tombstone-intake.ts `take`). */
  tombstones: (from: string, tombstones: Tombstone[]) => void
  /** Resolves after `ms` (the agent's clock). */
  sleep: (ms: number) => Promise<void>
  now: () => number
}

export interface RestoredCheckConfig {
  /** Peers asked (default 3: any peer with a settled view knows every VM; three survive one that is itself just back). */
  askPeers: number
  /** How long to wait for a first connection before giving up (default 10 s: bootstrap dials on a loaded host). */
  connectWithinMs: number
  /** Between two looks for a connection (default 100 ms). */
  pollMs: number
}

export const DEFAULT_RESTORED_CHECK: RestoredCheckConfig = { askPeers: 3, connectWithinMs: 10_000, pollMs: 100 }

export interface RestoredCheckReport {
  asked: number
  answered: number
  vms: number
  later: number
  tombstones: number
}

/** Runs the check once; never rejects (an agent with no peer to ask runs its VMs as before). */
export async function checkRestored (init: RestoredCheckInit, config: RestoredCheckConfig = DEFAULT_RESTORED_CHECK): Promise<RestoredCheckReport> {
  const report: RestoredCheckReport = { asked: 0, answered: 0, vms: 0, later: 0, tombstones: 0 }
  const heads = init.heads()
  report.vms = heads.length
  if (heads.length === 0) return report
  const end = init.now() + config.connectWithinMs
  while (init.peers().length === 0 && init.now() < end) await init.sleep(config.pollMs)
  const peers = init.peers().slice(0, config.askPeers)
  report.asked = peers.length
  const mine = new Set(heads.map(h => h.vmId))
  await Promise.all(peers.map(async peer => {
    let answered = true
    for (let i = 0; i < heads.length; i += MAX_RECORDS_PER_MESSAGE) {
      try {
        const res = await init.ask(peer, heads.slice(i, i + MAX_RECORDS_PER_MESSAGE))
        // Only what is about the VMs asked: an answer cannot name others.
        for (const h of res.later) {
          if (!mine.has(h.vmId)) continue
          report.later++
          init.heard(h.owner, h.vmId, { epoch: h.epoch, owner: h.owner })
        }
        const ts = res.tombstones.filter(t => mine.has(t.vmId))
        report.tombstones += ts.length
        if (ts.length > 0) init.tombstones(peer, ts)
      } catch (err: any) {
        answered = false
        init.log.debug({ component: 'discovery:replica', peer, err: err.message }, 'restored VMs: a peer could not be asked')
        break
      }
    }
    if (answered) report.answered++
  }))
  init.log.info({ component: 'discovery:replica', ...report }, 'restored VMs checked with peers')
  return report
}
