/**
 * A small QMP client (the QEMU Machine Protocol) over a unix socket: the
 * greeting, capability negotiation, then commands one at a time, each with
 * an id, and the events QEMU sends in between.
 *
 * QEMU serves one client per QMP socket: a second connection is accepted by
 * the kernel but gets no greeting until the first one closes. So the driver
 * keeps one client per VM for the VM's whole life, and `connect` fails with
 * a timeout (not a hang) when someone else holds the socket.
 */
import { DiscoveryError } from '../core/errors.ts'
import { connect as netConnect, type Socket } from 'node:net'

/** What QEMU answered instead of `return`: its error class (e.g. `GenericError`, `CommandNotFound`) and description. */
export class QmpError extends DiscoveryError {
  static name = 'QmpError'
  readonly class: string
  readonly desc: string
  constructor (errorClass = 'GenericError', desc = 'QEMU refused the command', command?: string) {
    super(command != null ? `${command}: ${desc} (${errorClass})` : `${desc} (${errorClass})`)
    this.class = errorClass
    this.desc = desc
  }
}

/** The QMP connection is gone (QEMU exited, or the client was closed). */
export class QmpClosedError extends DiscoveryError {
  static name = 'QmpClosedError'
  static defaultMessage = 'the QMP connection is closed'
}

/** QEMU did not answer in time (or the caller's signal fired first). */
export class QmpTimeoutError extends DiscoveryError {
  static name = 'QmpTimeoutError'
  static defaultMessage = 'QEMU did not answer in time'
}

/** QEMU sent something that is not QMP. */
export class QmpProtocolError extends DiscoveryError {
  static name = 'QmpProtocolError'
  static defaultMessage = 'QEMU sent something that is not QMP'
}

export interface QmpEvent {
  event: string
  data?: Record<string, unknown>
  timestamp?: { seconds: number, microseconds: number }
}

export interface QmpGreeting {
  QMP: { version: { qemu: { major: number, minor: number, micro: number }, package?: string }, capabilities: string[] }
}

export interface QmpCallOptions {
  /** Gives up waiting (the command may still run in QEMU). */
  signal?: AbortSignal
  /** Default: the client's `timeoutMs`. */
  timeoutMs?: number
}

export interface QmpConnectOptions {
  signal?: AbortSignal
  /** For the connection, the greeting and each command. Default 10 s: QEMU under TCG on a busy machine can be slow. */
  timeoutMs?: number
}

/** A line longer than this is not QMP (the largest answer we ask for is a few KiB). */
const MAX_LINE = 4 * 1024 * 1024

export class QmpClient {
  readonly greeting: QmpGreeting
  /** Resolves once the connection is closed, whoever closed it. */
  readonly closed: Promise<void>
  readonly #socket: Socket
  readonly #timeoutMs: number
  readonly #listeners = new Set<(e: QmpEvent) => void>()
  readonly #pending = new Map<number, { resolve: (v: unknown) => void, reject: (e: Error) => void, command: string }>()
  #nextId = 1
  /** Commands go one at a time: each waits for the one before. */
  #queue: Promise<unknown> = Promise.resolve()
  #closedError?: Error

  private constructor (socket: Socket, greeting: QmpGreeting, timeoutMs: number, lines: LineReader) {
    this.#socket = socket
    this.greeting = greeting
    this.#timeoutMs = timeoutMs
    this.closed = new Promise(resolve => {
      socket.once('close', () => {
        this.#closedError ??= new QmpClosedError()
        for (const p of this.#pending.values()) p.reject(this.#closedError)
        this.#pending.clear()
        resolve()
      })
    })
    lines.onLine = line => { this.#receive(line) }
  }

  /** Connects to a QMP socket, reads the greeting and leaves capability negotiation mode. */
  static async connect (path: string, opts: QmpConnectOptions = {}): Promise<QmpClient> {
    const timeoutMs = opts.timeoutMs ?? 10_000
    const signal = opts.signal != null ? AbortSignal.any([opts.signal, AbortSignal.timeout(timeoutMs)]) : AbortSignal.timeout(timeoutMs)
    const socket = netConnect({ path })
    const lines = new LineReader(socket)
    try {
      const greeting = await new Promise<QmpGreeting>((resolve, reject) => {
        const fail = (err: Error): void => { reject(err) }
        const onAbort = (): void => { reject(abortError(signal, `no QMP greeting on ${path} within ${timeoutMs} ms (is another client connected?)`)) }
        if (signal.aborted) onAbort()
        signal.addEventListener('abort', onAbort, { once: true })
        socket.once('error', fail)
        socket.once('close', () => { reject(new QmpClosedError(`${path} closed before its QMP greeting`)) })
        lines.onLine = line => {
          signal.removeEventListener('abort', onAbort)
          socket.off('error', fail)
          try {
            const msg = JSON.parse(line)
            if (msg?.QMP == null) throw new QmpProtocolError(`expected a QMP greeting on ${path}, got ${line.slice(0, 200)}`)
            resolve(msg)
          } catch (err: any) {
            reject(err instanceof QmpProtocolError ? err : new QmpProtocolError(`expected a QMP greeting on ${path}, got ${line.slice(0, 200)}`))
          }
        }
      })
      const client = new QmpClient(socket, greeting, timeoutMs, lines)
      socket.on('error', () => { /* 'close' follows and fails what is pending */ })
      await client.execute('qmp_capabilities', undefined, { signal: opts.signal })
      return client
    } catch (err) {
      socket.destroy()
      throw err
    }
  }

  /** Runs one command once those before it have been answered; rejects with QmpError on QEMU's error. */
  async execute<T = any>(command: string, args?: Record<string, unknown>, opts: QmpCallOptions = {}): Promise<T> {
    const run = this.#queue.then(async () => await this.#send<T>(command, args, opts))
    this.#queue = run.catch(() => {})
    return await run
  }

  /** Listens to QEMU's events; returns the function that stops listening. */
  onEvent (listener: (event: QmpEvent) => void): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }

  get isClosed (): boolean {
    return this.#socket.destroyed
  }

  /** Closes the connection (QEMU keeps running and accepts the next client). */
  close (): void {
    this.#closedError ??= new QmpClosedError('the QMP client was closed')
    this.#socket.destroy()
  }

  async #send<T>(command: string, args: Record<string, unknown> | undefined, opts: QmpCallOptions): Promise<T> {
    if (this.#socket.destroyed) throw this.#closedError ?? new QmpClosedError()
    const id = this.#nextId++
    const timeoutMs = opts.timeoutMs ?? this.#timeoutMs
    const signal = opts.signal != null ? AbortSignal.any([opts.signal, AbortSignal.timeout(timeoutMs)]) : AbortSignal.timeout(timeoutMs)
    return await new Promise<T>((resolve, reject) => {
      const onAbort = (): void => {
        // A late answer carries this id and is dropped.
        this.#pending.delete(id)
        reject(abortError(signal, `QEMU did not answer ${command} within ${timeoutMs} ms`))
      }
      if (signal.aborted) {
        onAbort()
        return
      }
      signal.addEventListener('abort', onAbort, { once: true })
      const done = (): void => { signal.removeEventListener('abort', onAbort) }
      this.#pending.set(id, {
        command,
        resolve: v => { done(); resolve(v as T) },
        reject: e => { done(); reject(e) }
      })
      this.#socket.write(JSON.stringify(args != null ? { execute: command, arguments: args, id } : { execute: command, id }) + '\n')
    })
  }

  #receive (line: string): void {
    let msg: any
    try {
      msg = JSON.parse(line)
    } catch {
      this.#closedError = new QmpProtocolError(`QEMU sent a line that is not JSON: ${line.slice(0, 200)}`)
      this.#socket.destroy()
      return
    }
    if (typeof msg?.event === 'string') {
      for (const l of this.#listeners) l(msg as QmpEvent)
      return
    }
    const pending = typeof msg?.id === 'number' ? this.#pending.get(msg.id) : undefined
    if (pending == null) return
    this.#pending.delete(msg.id)
    if (msg.error != null) pending.reject(new QmpError(String(msg.error.class), String(msg.error.desc), pending.command))
    else pending.resolve(msg.return)
  }
}

/** Splits the socket's bytes into lines (QMP ends each message with CRLF). */
class LineReader {
  onLine: (line: string) => void = () => {}
  #buf = ''

  constructor (socket: Socket) {
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => {
      this.#buf += chunk
      let nl: number
      while ((nl = this.#buf.indexOf('\n')) >= 0) {
        const line = this.#buf.slice(0, nl).trim()
        this.#buf = this.#buf.slice(nl + 1)
        if (line !== '') this.onLine(line)
      }
      if (this.#buf.length > MAX_LINE) socket.destroy(new QmpProtocolError(`a QMP line over ${MAX_LINE} bytes`))
    })
  }
}

function abortError (signal: AbortSignal, timeoutMessage: string): Error {
  const reason = signal.reason
  if (reason instanceof Error && reason.name === 'TimeoutError') return new QmpTimeoutError(timeoutMessage)
  if (reason instanceof Error) return reason
  return new QmpTimeoutError(reason != null ? String(reason) : timeoutMessage)
}
