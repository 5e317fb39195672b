/** `discovery agent`: one agent in the foreground, structured logs on stderr. */
import { multiaddr } from '@multiformats/multiaddr'
import { resolve } from 'node:path'
import pino from 'pino'
import { Agent } from '../agent/index.ts'
import { startApi } from '../api/index.ts'
import { profileConfig, type AgentConfig, type Profile } from '../config.ts'
import { labelsSchema, describeIssues } from '../core/messages.ts'
import { MAX_REPLICAS } from '../core/ownership-messages.ts'
import { UsageError } from './errors.ts'
import { parseDuration, parseHostPort, parseInteger, parseLabels, parseRatio, parseSize } from './parse.ts'

export interface AgentFlags {
  listen?: string
  bootstrap?: string[]
  api?: string
  dataDir?: string
  cpu?: string
  mem?: string
  labels?: string[]
  driver?: string
  swarmKey?: string
  apiToken?: string
  profile?: string
  cpuOvercommit?: string
  bootDelay?: string
  logLevel?: string
  demand?: string
  seed?: string
  rngSeed?: string
  migrationBandwidth?: string
  consolidate?: boolean
  monitorInterval?: string
  replicas?: string
  restartQuorum?: boolean
  json?: boolean
}

/** Flags into one validated AgentConfig, or a UsageError that says what was expected. */
export function resolveAgentConfig (flags: AgentFlags): AgentConfig {
  const profile = (flags.profile ?? 'local') as Profile
  if (!['local', 'lan', 'wan'].includes(profile)) throw new UsageError(`Expected --profile to be local, lan or wan, got \`${flags.profile}\``)
  const config = profileConfig(profile)
  if (flags.listen != null) config.listen = checkMultiaddr('--listen', flags.listen)
  if (flags.bootstrap != null) config.bootstrap = flags.bootstrap.flatMap(b => b.split(',')).filter(b => b !== '').map(b => checkMultiaddr('--bootstrap', b))
  if (flags.api != null) {
    const { host, port } = parseHostPort('--api', flags.api)
    config.apiHost = host
    config.apiPort = port
  }
  config.dataDir = resolve(flags.dataDir ?? config.dataDir)
  if (flags.cpu != null) config.capacity = { ...config.capacity, cpu: parseInteger('--cpu', flags.cpu, 1, 4096) }
  if (flags.mem != null) config.capacity = { ...config.capacity, memMiB: parseSize('--mem', flags.mem) }
  if (flags.labels != null) {
    const labels = parseLabels('--labels', flags.labels)
    const ok = labelsSchema.safeParse(labels)
    if (!ok.success) throw new UsageError(`Expected --labels to be key=value pairs: ${describeIssues(ok.error)}`)
    config.labels = ok.data
  }
  if (flags.driver != null && flags.driver !== 'sim') {
    if (flags.driver === 'qemu') throw new UsageError('the qemu driver is not available yet: use --driver sim (the default)')
    throw new UsageError(`Expected --driver to be sim or qemu, got \`${flags.driver}\``)
  }
  if (flags.swarmKey != null) config.swarmKeyFile = resolve(flags.swarmKey)
  if (flags.apiToken != null) {
    if (flags.apiToken.length < 8) throw new UsageError('Expected --api-token to be at least 8 characters')
    config.apiToken = flags.apiToken
  }
  if (flags.cpuOvercommit != null) config.cpuOvercommit = parseRatio('--cpu-overcommit', flags.cpuOvercommit, 1, 64)
  if (flags.bootDelay != null) config.bootDelayMs = parseDuration('--boot-delay', flags.bootDelay)
  if (flags.demand != null && flags.demand !== 'trace') {
    config.demand = null
    config.staticDemand = parseRatio('--demand', flags.demand, 0, 1)
  }
  if (flags.seed != null) config.seed = parseInteger('--seed', flags.seed, 0, 2 ** 31 - 1)
  if (flags.rngSeed != null) config.rngSeed = parseInteger('--rng-seed', flags.rngSeed, 0, 2 ** 31 - 1)
  if (flags.migrationBandwidth != null) config.migration = { ...config.migration, bandwidthMiBps: parseRatio('--migration-bandwidth', flags.migrationBandwidth.replace(/\s*MiB\/s$/i, ''), 0.001, 1_000_000) }
  if (flags.consolidate === true) config.rebalance = { ...config.rebalance, consolidate: true }
  if (flags.monitorInterval != null) {
    config.monitorIntervalMs = parseDuration('--monitor-interval', flags.monitorInterval)
    if (config.monitorIntervalMs < 50) throw new UsageError('Expected --monitor-interval to be at least 50ms')
  }
  if (flags.replicas != null) config.replica = { ...config.replica, replicas: parseInteger('--replicas', flags.replicas, 1, MAX_REPLICAS) }
  if (flags.restartQuorum === true) config.replica = { ...config.replica, restartQuorum: true }
  return config
}

function checkMultiaddr (flag: string, value: string): string {
  try {
    return multiaddr(value).toString()
  } catch {
    throw new UsageError(`Expected ${flag} to be a multiaddr like /ip4/127.0.0.1/tcp/4001, got \`${value}\``)
  }
}

export async function runAgent (flags: AgentFlags): Promise<void> {
  const config = resolveAgentConfig(flags)
  const level = flags.logLevel ?? process.env.DISCOVERY_LOG ?? 'info'
  const log = pino({ level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ fd: 2, sync: true }))
  const agent = await Agent.start(config, log)
  let api: Awaited<ReturnType<typeof startApi>>
  try {
    api = await startApi({ agent, host: config.apiHost, port: config.apiPort, token: config.apiToken })
  } catch (err: any) {
    await agent.stop()
    throw new UsageError(`cannot serve the API on ${config.apiHost}:${config.apiPort} (${err.code ?? err.message}): pick another with --api HOST:PORT`)
  }
  agent.apiUrl = api.url
  const ready = { event: 'ready', peerId: agent.peerId, api: api.url, addrs: agent.addrs(), dataDir: config.dataDir }
  process.stdout.write(flags.json === true ? JSON.stringify(ready) + '\n' : `agent ${agent.peerId} ready: api ${api.url}, p2p ${ready.addrs.join(' ')}\n`)
  log.info({ component: 'discovery:api', url: api.url }, 'api listening')

  let stopping = false
  const shutdown = async (why: string): Promise<void> => {
    if (stopping) return
    stopping = true
    log.info({ component: 'discovery:agent', why }, 'stopping')
    const force = setTimeout(() => { process.exit(1) }, 10_000)
    force.unref()
    await api.server.close()
    await agent.stop()
    process.exit(0)
  }
  process.on('SIGINT', () => { void shutdown('SIGINT') })
  process.on('SIGTERM', () => { void shutdown('SIGTERM') })
  // Started by `cluster up --foreground`: leave with the parent, even if it was killed.
  if (process.channel != null) process.on('disconnect', () => { void shutdown('parent gone') })
}
