/** `discovery agent`: one agent in the foreground, structured logs on stderr. */
import { multiaddr } from '@multiformats/multiaddr'
import { readFileSync, statSync } from 'node:fs'
import { resolve } from 'node:path'
import pino, { type Logger } from 'pino'
import { Agent } from '../agent/index.ts'
import { startApi } from '../api/index.ts'
import { availableParallelism, totalmem } from 'node:os'
import { profileConfig, type AgentConfig, type Profile, type QemuConfig } from '../config.ts'
import { labelsSchema, describeIssues } from '../core/messages.ts'
import { MAX_REPLICAS } from '../core/ownership-messages.ts'
import { readSwarmKey } from '../net/swarm-key.ts'
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
  qemuAccel?: string
  qemuBinary?: string
  imagesDir?: string
  migrationHost?: string
  migrationAdvertise?: string
  migrationDeadline?: string
  maxDowntime?: string
  locality?: string
  swarmKey?: string
  apiToken?: string
  apiTokenFile?: string
  admin?: boolean
  openSwarm?: boolean
  mdns?: boolean
  peerLeaseLimit?: string
  peerLeaseShare?: string
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
  maxConnections?: string
  observers?: string
  processCheck?: string
  replicas?: string
  restartQuorum?: boolean
  json?: boolean
}

/** What the checks of the flags noticed that is allowed but worth a warning in the log. */
export interface ConfigWarning { msg: string, fields: Record<string, unknown> }

/**
 * Flags (and `$DISCOVERY_API_TOKEN` from `env`) into one validated
 * AgentConfig, or a UsageError that says what was expected. It reads the
 * swarm key and the token file, so that a bad one stops the agent before it
 * starts. `warnings` collects what is allowed but unwise.
 */
export function resolveAgentConfig (flags: AgentFlags, env: Record<string, string | undefined> = process.env, warnings: ConfigWarning[] = []): AgentConfig {
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
  resolveDriver(config, flags)
  if (flags.swarmKey != null) {
    config.swarmKeyFile = resolve(flags.swarmKey)
    let exposed: boolean
    try {
      exposed = readSwarmKey(config.swarmKeyFile).exposed
    } catch (err: any) {
      throw new UsageError(`--swarm-key ${err.message}`)
    }
    if (exposed) warnings.push({ msg: 'the swarm key file can be read by other users: it is what guards the cluster (chmod 600)', fields: { file: config.swarmKeyFile } })
  }
  config.openSwarm = flags.openSwarm === true
  if (config.swarmKeyFile == null && !config.openSwarm && !isLoopback(config.listen)) {
    throw new UsageError(`--listen ${config.listen} is reachable from other machines and there is no swarm key: any process that reaches that port would join the cluster as a peer, and could reserve, take and delete VMs whatever the API token. Give --swarm-key FILE (make one with \`discovery keygen --out FILE\`), listen on loopback, or pass --open-swarm to run an open cluster knowingly`)
  }
  if (config.openSwarm && config.swarmKeyFile != null) throw new UsageError('--open-swarm and --swarm-key contradict each other: give one')
  const token = resolveApiToken(flags, env, warnings)
  if (token != null) config.apiToken = token
  config.admin = flags.admin === true
  if (config.admin && config.apiToken == null) {
    throw new UsageError('--admin needs an API token (--api-token-file FILE, or $DISCOVERY_API_TOKEN): the admin routes can cut this agent off its peers')
  }
  config.mdns = flags.mdns === true
  if (flags.peerLeaseLimit != null) config.peerLeases = { ...config.peerLeases, maxLeases: parseInteger('--peer-lease-limit', flags.peerLeaseLimit, 1, 100_000) }
  if (flags.peerLeaseShare != null) config.peerLeases = { ...config.peerLeases, maxShare: parseRatio('--peer-lease-share', flags.peerLeaseShare, 0.01, 1) }
  if (flags.cpuOvercommit != null) config.cpuOvercommit = parseRatio('--cpu-overcommit', flags.cpuOvercommit, 1, 64)
  if (flags.bootDelay != null) config.bootDelayMs = parseDuration('--boot-delay', flags.bootDelay)
  if (flags.demand != null && flags.demand !== 'trace') {
    config.demand = null
    config.staticDemand = parseRatio('--demand', flags.demand, 0, 1)
  }
  if (flags.seed != null) config.seed = parseInteger('--seed', flags.seed, 0, 2 ** 31 - 1)
  if (flags.rngSeed != null) config.rngSeed = parseInteger('--rng-seed', flags.rngSeed, 0, 2 ** 31 - 1)
  if (flags.migrationBandwidth != null) config.migration = { ...config.migration, bandwidthMiBps: parseRatio('--migration-bandwidth', flags.migrationBandwidth.replace(/\s*MiB\/s$/i, ''), 0.001, 1_000_000) }
  if (flags.migrationDeadline != null) {
    config.migration = { ...config.migration, deadlineMs: parseDuration('--migration-deadline', flags.migrationDeadline) }
    if (config.migration.deadlineMs < 1_000) throw new UsageError(`Expected --migration-deadline to be at least 1s, got \`${flags.migrationDeadline}\``)
  }
  if (flags.maxDowntime != null) {
    config.migration = { ...config.migration, maxDowntimeMs: parseDuration('--max-downtime', flags.maxDowntime) }
    if (config.migration.maxDowntimeMs < 1) throw new UsageError(`Expected --max-downtime to be at least 1ms, got \`${flags.maxDowntime}\``)
  }
  if (flags.locality != null) {
    if (flags.locality !== 'on' && flags.locality !== 'off') throw new UsageError(`Expected --locality to be on or off, got \`${flags.locality}\``)
    config.locality = { ...config.locality, enabled: flags.locality === 'on' }
  }
  if (flags.consolidate === true) config.rebalance = { ...config.rebalance, consolidate: true }
  if (flags.maxConnections != null) {
    if (flags.maxConnections.trim() === 'none') config.connection = { ...config.connection, maxConnections: Infinity, warmConnections: 32 }
    else {
      const max = parseInteger('--max-connections', flags.maxConnections, 2, 10_000)
      config.connection = { ...config.connection, maxConnections: max, warmConnections: Math.ceil(max / 2), viewSyncEveryMs: config.connection.viewSyncEveryMs || 30_000 }
    }
  }
  if (flags.processCheck != null) {
    config.detector = { ...config.detector, processCheckMs: flags.processCheck.trim() === 'none' ? null : parseInteger('--process-check', flags.processCheck, 10, 600_000) }
  }
  if (flags.observers != null) {
    config.detector = { ...config.detector, observers: flags.observers.trim() === 'none' ? null : parseInteger('--observers', flags.observers, 1, 16) }
  }
  if (flags.monitorInterval != null) {
    config.monitorIntervalMs = parseDuration('--monitor-interval', flags.monitorInterval)
    if (config.monitorIntervalMs < 50) throw new UsageError('Expected --monitor-interval to be at least 50ms')
  }
  if (flags.replicas != null) config.replica = { ...config.replica, replicas: parseInteger('--replicas', flags.replicas, 1, MAX_REPLICAS) }
  if (flags.restartQuorum === true) config.replica = { ...config.replica, restartQuorum: true }
  return config
}

/** `--driver` and the qemu driver's flags (which only mean something with it); capacity defaults to the host's under qemu. */
function resolveDriver (config: AgentConfig, flags: AgentFlags): void {
  const driver = flags.driver ?? 'sim'
  if (driver !== 'sim' && driver !== 'qemu') throw new UsageError(`Expected --driver to be sim or qemu, got \`${driver}\``)
  config.driver = driver
  const qemuFlags = { '--qemu-accel': flags.qemuAccel, '--qemu-binary': flags.qemuBinary, '--images-dir': flags.imagesDir, '--migration-host': flags.migrationHost, '--migration-advertise': flags.migrationAdvertise }
  const given = Object.entries(qemuFlags).filter(([, v]) => v != null).map(([k]) => k)
  if (driver !== 'qemu') {
    if (given.length > 0) throw new UsageError(`${given.join(', ')} only apply to the qemu driver: add --driver qemu`)
    return
  }
  const qemu = { ...config.qemu }
  if (flags.qemuAccel != null) {
    if (!['auto', 'kvm', 'tcg'].includes(flags.qemuAccel)) throw new UsageError(`Expected --qemu-accel to be auto, kvm or tcg, got \`${flags.qemuAccel}\``)
    qemu.accel = flags.qemuAccel as QemuConfig['accel']
  }
  if (flags.qemuBinary != null) qemu.binary = nonEmpty('--qemu-binary', flags.qemuBinary)
  if (flags.imagesDir != null) qemu.imagesDir = resolve(nonEmpty('--images-dir', flags.imagesDir))
  if (flags.migrationHost != null) qemu.migrationHost = checkHost('--migration-host', flags.migrationHost)
  if (flags.migrationAdvertise != null) qemu.migrationAdvertiseHost = checkHost('--migration-advertise', flags.migrationAdvertise)
  config.qemu = qemu
  // QEMU allocates what it is given: offer what the host has unless told otherwise.
  if (flags.cpu == null) config.capacity = { ...config.capacity, cpu: availableParallelism() }
  if (flags.mem == null) config.capacity = { ...config.capacity, memMiB: Math.max(512, Math.floor(totalmem() / 1024 / 1024) - 1024) }
}

function nonEmpty (flag: string, value: string): string {
  if (value.trim() === '') throw new UsageError(`Expected ${flag} to be non-empty`)
  return value
}

/** A host name or an IP address: what QEMU's `tcp:HOST:PORT` takes (and what a peer's URI check accepts). */
function checkHost (flag: string, value: string): string {
  if (!/^([A-Za-z0-9.-]{1,253}|[0-9A-Fa-f:.]+)$/.test(value)) throw new UsageError(`Expected ${flag} to be a host name or an IP address like 10.0.0.7, got \`${value}\``)
  return value
}

/** The API token from `--api-token-file`, `--api-token` or `$DISCOVERY_API_TOKEN` (in that order; two flags at once are refused). */
function resolveApiToken (flags: AgentFlags, env: Record<string, string | undefined>, warnings: ConfigWarning[]): string | undefined {
  if (flags.apiTokenFile != null && flags.apiToken != null) throw new UsageError('--api-token and --api-token-file both give the API token: give one (the file keeps it out of the process list)')
  if (flags.apiTokenFile != null) {
    const file = resolve(flags.apiTokenFile)
    let text: string
    try {
      text = readFileSync(file, 'utf8')
      if ((statSync(file).mode & 0o077) !== 0) warnings.push({ msg: 'the API token file can be read by other users (chmod 600)', fields: { file } })
    } catch (err: any) {
      throw new UsageError(`--api-token-file ${file} cannot be read (${err.code ?? err.message}): expected a file holding the token on one line`)
    }
    return checkToken(text.trim(), `the token in --api-token-file ${file}`)
  }
  if (flags.apiToken != null) {
    warnings.push({ msg: 'the API token was given with --api-token: every local user can read it in the process list; use --api-token-file FILE or $DISCOVERY_API_TOKEN', fields: {} })
    return checkToken(flags.apiToken, '--api-token')
  }
  const fromEnv = env.DISCOVERY_API_TOKEN
  if (fromEnv != null && fromEnv !== '') return checkToken(fromEnv.trim(), '$DISCOVERY_API_TOKEN')
  return undefined
}

function checkToken (token: string, what: string): string {
  if (token.length < 8) throw new UsageError(`Expected ${what} to be at least 8 characters, got ${token.length}`)
  if (!/^[\x21-\x7e]+$/.test(token)) throw new UsageError(`Expected ${what} to be printable ASCII with no spaces (it travels in an HTTP header)`)
  return token
}

/** Whether a listen address is reachable from this machine only (127.0.0.0/8, ::1, localhost). */
export function isLoopback (listen: string): boolean {
  const opts = multiaddr(listen).toOptions()
  if (opts.host === 'localhost') return true
  if (opts.family === 4) return opts.host.startsWith('127.')
  return opts.host === '::1'
}

function checkMultiaddr (flag: string, value: string): string {
  try {
    return multiaddr(value).toString()
  } catch {
    throw new UsageError(`Expected ${flag} to be a multiaddr like /ip4/127.0.0.1/tcp/4001, got \`${value}\``)
  }
}

/** A running agent with its API: what `discovery agent` runs once and `discovery agents` several times. */
export interface AgentInstance {
  agent: Agent
  /** The ready line: its id, API and libp2p addresses, data dir. */
  ready: { event: 'ready', peerId: string, api: string, addrs: string[], dataDir: string }
  stop: () => Promise<void>
}

/** Validates the flags, starts the agent and its API; logs to `log`. */
export async function startAgentInstance (flags: AgentFlags, log: Logger): Promise<AgentInstance> {
  const warnings: ConfigWarning[] = []
  const config = resolveAgentConfig(flags, process.env, warnings)
  for (const w of warnings) log.warn({ component: 'discovery:config', ...w.fields }, w.msg)
  if (config.openSwarm && !isLoopback(config.listen)) log.warn({ component: 'discovery:config', listen: config.listen }, 'open swarm: no swarm key, any process that reaches the libp2p port is a peer')
  const agent = await Agent.start(config, log)
  let api: Awaited<ReturnType<typeof startApi>>
  try {
    api = await startApi({ agent, host: config.apiHost, port: config.apiPort, token: config.apiToken })
  } catch (err: any) {
    await agent.stop()
    throw new UsageError(`cannot serve the API on ${config.apiHost}:${config.apiPort} (${err.code ?? err.message}): pick another with --api HOST:PORT`)
  }
  agent.apiUrl = api.url
  log.info({ component: 'discovery:api', url: api.url }, 'api listening')
  const ready = { event: 'ready' as const, peerId: agent.peerId, api: api.url, addrs: agent.addrs(), dataDir: config.dataDir }
  return { agent, ready, stop: async () => { await api.server.close(); await agent.stop() } }
}

/** The level of an agent's log: `--log-level`, else `$DISCOVERY_LOG`, else info. */
export function logLevel (flags: AgentFlags): string {
  return flags.logLevel ?? process.env.DISCOVERY_LOG ?? 'info'
}

/** An agent's JSON log, at its level (`logLevel`), written to `dest`. */
export function agentLogger (flags: AgentFlags, dest: pino.DestinationStream): Logger {
  return pino({ level: logLevel(flags), base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, dest)
}

/**
 * Runs `stop` (the process's agents) once, on SIGINT, SIGTERM, or when the
 * parent that started the process with an IPC channel (`cluster up
 * --foreground`) is gone, even killed; then exits with `code` (1 when
 * stopping takes more than 10 s). Returns that shutdown, for a caller that
 * must stop the process itself.
 */
export function shutdownOnSignals (stop: (why: string) => Promise<void>): (why: string, code?: number) => Promise<void> {
  let stopping = false
  const shutdown = async (why: string, code = 0): Promise<void> => {
    if (stopping) return
    stopping = true
    const force = setTimeout(() => { process.exit(1) }, 10_000)
    force.unref()
    await stop(why)
    process.exit(code)
  }
  process.on('SIGINT', () => { void shutdown('SIGINT') })
  process.on('SIGTERM', () => { void shutdown('SIGTERM') })
  if (process.channel != null) process.on('disconnect', () => { void shutdown('parent gone') })
  return shutdown
}

export async function runAgent (flags: AgentFlags): Promise<void> {
  const log = agentLogger(flags, pino.destination({ fd: 2, sync: true }))
  const { ready, stop } = await startAgentInstance(flags, log)
  process.stdout.write(flags.json === true ? JSON.stringify(ready) + '\n' : `agent ${ready.peerId} ready: api ${ready.api}, p2p ${ready.addrs.join(' ')}\n`)
  shutdownOnSignals(async (why) => {
    log.info({ component: 'discovery:agent', why }, 'stopping')
    await stop()
  })
}
