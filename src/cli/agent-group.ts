/**
 * `discovery agents --spec FILE`: several agents in one process, each its own
 * libp2p node, store, API port and log file — what `cluster up
 * --per-process K` starts, so that a machine runs more agents than it could
 * hold processes (one Node binary, heap and event loop for K agents). The
 * spec lists each agent's flags, exactly as `discovery agent` takes them
 * (parsed with the same definition, agent-options.ts), and its log file,
 * where its JSON logs and then its ready line go (what `cluster up` reads).
 * The agents start one after the other; one that fails to start stops the
 * process (and the others with it): `cluster up` reports it. SIGTERM or
 * SIGINT stops them all.
 */
import { appendFileSync, readFileSync } from 'node:fs'
import pino from 'pino'
import { z } from 'zod'
import { agentLogger, type AgentInstance, shutdownOnSignals, startAgentInstance } from './agent-command.ts'
import { parseAgentArgv } from './agent-options.ts'
import { UsageError } from './errors.ts'

/** Agents one process may run: beyond, one event loop cannot keep their timers. */
export const MAX_AGENTS_PER_PROCESS = 100

export const groupSpecSchema = z.object({
  agents: z.array(z.object({
    /** The agent's flags, as after `discovery agent`. */
    argv: z.array(z.string().max(4096)).max(200),
    /** Its log file (appended to). */
    log: z.string().min(1).max(4096)
  }).strict()).min(1).max(MAX_AGENTS_PER_PROCESS)
}).strict()
export type GroupSpec = z.infer<typeof groupSpecSchema>

export function readGroupSpec (file: string): GroupSpec {
  let raw: unknown
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'))
  } catch (err: any) {
    throw new UsageError(`--spec ${file} cannot be read as JSON (${err.code ?? err.message})`)
  }
  const ok = groupSpecSchema.safeParse(raw)
  if (!ok.success) throw new UsageError(`Expected --spec ${file} to be { "agents": [{ "argv": [...], "log": FILE }] } with 1 to ${MAX_AGENTS_PER_PROCESS} agents: ${ok.error.issues[0]?.path.join('.')} ${ok.error.issues[0]?.message}`)
  return ok.data
}

export async function runAgentGroup (specFile: string): Promise<void> {
  const spec = readGroupSpec(specFile)
  const flags = spec.agents.map(a => parseAgentArgv(a.argv))
  const running: AgentInstance[] = []
  const shutdown = shutdownOnSignals(async (why) => {
    await Promise.all(running.map(async a => {
      a.agent.log.info({ component: 'discovery:agent', why }, 'stopping')
      await a.stop().catch(() => {})
    }))
  })
  for (const [i, entry] of spec.agents.entries()) {
    const log = agentLogger(flags[i], pino.destination({ dest: entry.log, append: true, sync: true }))
    try {
      const instance = await startAgentInstance(flags[i], log)
      running.push(instance)
      appendFileSync(entry.log, JSON.stringify(instance.ready) + '\n')
    } catch (err: any) {
      log.fatal({ component: 'discovery:agent', err: err.message }, 'agent could not start: stopping this process')
      await shutdown('an agent of this process could not start', 1)
      return
    }
  }
}
