/**
 * Logs follow the events: one structured line per event that an operator
 * wants in the log, at its level, with the component the event belongs to.
 * Per-VM events of a busy cluster are debug: at hundreds of creates a second,
 * a line each is a cost of its own.
 */
import type { Logger } from 'pino'
import type { EventLog } from './event-log.ts'
import type { AgentEvent, AgentEventType } from './events.ts'

type Level = 'debug' | 'info' | 'warn'

const LEVELS: Partial<Record<AgentEventType, Level>> = {
  'peer.alive': 'info',
  'peer.suspect': 'info',
  'peer.dead': 'info',
  'peer.refuted': 'info',
  // An agent cut off its peers on purpose: an operator reading the log must see it.
  'peer.partitioned': 'warn',
  'peer.healed': 'warn',
  'vm.placed': 'debug',
  'vm.deleted': 'debug',
  'vm.restarted': 'info',
  'vm.lost': 'warn',
  'vm.fenced': 'info',
  // Logged once per sender by the count of invalid input; a line for each of a rogue's claims would flood it.
  'replica.refused': 'debug',
  // A VM's process died: the operator's business.
  'vm.stopped': 'warn',
  'migration.committed': 'info',
  'migration.aborted': 'info',
  'rebalance.started': 'info',
  'rebalance.planned': 'info',
  'rebalance.progress': 'info',
  'rebalance.ended': 'info',
  'overload.started': 'info',
  'overload.ended': 'info'
}

export function logEvents (events: EventLog, log: Logger): () => void {
  return events.onAny((e: AgentEvent) => {
    let level = LEVELS[e.type]
    // A placement that failed for want of room is the cluster answering, not a fault.
    if (e.type === 'vm.failed') level = (e as AgentEvent<'vm.failed'>).data.uncertain ? 'warn' : 'debug'
    if (level == null) return
    log[level]({ component: `discovery:${e.type.split('.')[0]}`, event: e.type, ...e.data }, e.type)
  })
}
