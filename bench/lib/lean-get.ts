/**
 * GET requests to many agents at once from one process, for as little of
 * that process's CPU as HTTP/1.1 allows: one kept-alive socket per agent, the
 * request written by hand, the answer's status read from its first line and
 * its body skipped by Content-Length. The convergence phase (measure.ts) asks
 * every agent `GET /v1/vms/:id?wait=` right after each create and times the
 * answers; with `fetch` (undici) the benchmark's own process spent 130 ms of
 * CPU on each round of 100 requests and its event loop stalled up to 240 ms
 * at p99 (1 s at worst), so the answers — and the agents' pushed events read
 * by the same process — reached it 250–350 ms after the agents had sent them
 * (docs/many-agents.md, **What the convergence figure measured**).
 */
import net from 'node:net'

export interface LeanAnswer {
  status: number
  /** When the status line was read (epoch ms). */
  atMs: number
}

interface Pending { resolve: (a: LeanAnswer) => void, reject: (err: Error) => void, timer: NodeJS.Timeout }

/** One agent's connection: a request at a time, reopened when the agent closed it. */
class Conn {
  readonly #host: string
  readonly #port: number
  #socket?: net.Socket
  #buf = ''
  #pending?: Pending
  /** Body bytes still to skip of the answer being read (-1: its head is not read yet). */
  #need = -1

  constructor (origin: string) {
    const u = new URL(origin)
    this.#host = u.hostname
    this.#port = Number(u.port)
  }

  async get (path: string, timeoutMs: number): Promise<LeanAnswer> {
    if (this.#pending != null) throw new Error('one request at a time per agent')
    const socket = this.#open()
    return await new Promise<LeanAnswer>((resolve, reject) => {
      const timer = setTimeout(() => { this.#fail(new Error(`GET ${path} not answered within ${timeoutMs} ms`)) }, timeoutMs)
      this.#pending = { resolve, reject, timer }
      socket.write(`GET ${path} HTTP/1.1\r\nHost: ${this.#host}:${this.#port}\r\nConnection: keep-alive\r\n\r\n`)
    })
  }

  close (): void {
    const socket = this.#socket
    this.#socket = undefined
    socket?.destroy()
    this.#fail(new Error('closed'))
  }

  #open (): net.Socket {
    if (this.#socket != null && !this.#socket.destroyed) return this.#socket
    const socket = net.connect(this.#port, this.#host)
    socket.setNoDelay(true)
    socket.setEncoding('latin1')
    // A socket closed and replaced may still report: only the current one's news counts.
    socket.on('data', (chunk: string) => { if (this.#socket === socket) this.#read(chunk) })
    socket.on('error', (err) => { if (this.#socket === socket) this.#fail(err) })
    socket.on('close', () => {
      if (this.#socket !== socket) return
      this.#socket = undefined
      this.#fail(new Error('the agent closed the connection'))
    })
    this.#socket = socket
    this.#buf = ''
    this.#need = -1
    return socket
  }

  #read (chunk: string): void {
    this.#buf += chunk
    while (true) {
      if (this.#need < 0) {
        const end = this.#buf.indexOf('\r\n\r\n')
        if (end < 0) return
        const head = this.#buf.slice(0, end)
        const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0)
        const length = /\r\ncontent-length: *(\d+)/i.exec(head)?.[1]
        if (length == null) {
          this.#fail(new Error(`an answer without Content-Length: ${head.split('\r\n')[0]}`))
          this.close()
          return
        }
        this.#buf = this.#buf.slice(end + 4)
        this.#need = Number(length)
        const p = this.#pending
        if (p != null) {
          this.#pending = undefined
          clearTimeout(p.timer)
          p.resolve({ status, atMs: Date.now() })
        }
      }
      if (this.#buf.length < this.#need) return
      this.#buf = this.#buf.slice(this.#need)
      this.#need = -1
    }
  }

  #fail (err: Error): void {
    const p = this.#pending
    if (p == null) return
    this.#pending = undefined
    clearTimeout(p.timer)
    p.reject(err)
  }
}

/** Kept-alive connections to a fixed list of agents (`origins`: `http://host:port`). */
export class LeanClients {
  readonly #conns: Conn[]

  constructor (origins: readonly string[]) {
    this.#conns = origins.map(o => new Conn(o))
  }

  /** GET `path` from agent `i`: its status and when the status line arrived. */
  async get (i: number, path: string, timeoutMs: number): Promise<LeanAnswer> {
    return await this.#conns[i].get(path, timeoutMs)
  }

  close (): void {
    for (const c of this.#conns) c.close()
  }
}
