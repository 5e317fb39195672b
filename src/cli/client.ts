/** A small client of an agent's HTTP API, used by the CLI, the tests and the benchmarks. */
import { OperationError } from './errors.ts'

export const DEFAULT_API = 'http://127.0.0.1:7100'

export interface ApiError { error: string, message: string }

export class ApiClient {
  readonly url: string
  readonly #token?: string
  readonly #timeoutMs: number

  constructor (url: string = process.env.DISCOVERY_API ?? DEFAULT_API, token: string | undefined = process.env.DISCOVERY_API_TOKEN, timeoutMs = 30_000) {
    this.url = url.replace(/\/+$/, '')
    this.#token = token
    this.#timeoutMs = timeoutMs
  }

  /** Sends a request; returns status and parsed body, or throws OperationError when the agent cannot be reached. */
  async request<T = any> (method: string, path: string, body?: unknown): Promise<{ status: number, body: T }> {
    const headers: Record<string, string> = {}
    if (body !== undefined) headers['content-type'] = 'application/json'
    if (this.#token != null) headers.authorization = `Bearer ${this.#token}`
    let res: Response
    try {
      res = await fetch(this.url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(this.#timeoutMs) })
    } catch (err: any) {
      throw new OperationError(`cannot reach the agent at ${this.url} (${err.cause?.code ?? err.name}): start one with \`npm start\`, or pass --api URL`)
    }
    const text = await res.text()
    let parsed: any = text
    try { parsed = text === '' ? undefined : JSON.parse(text) } catch {}
    return { status: res.status, body: parsed }
  }

  /** Like `request`, but a non-2xx answer becomes an OperationError with the agent's message. */
  async call<T = any> (method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.request<T>(method, path, body)
    if (res.status >= 300) {
      const err = res.body as unknown as ApiError
      throw new OperationError(`${err?.message ?? `HTTP ${res.status}`} (HTTP ${res.status} from ${this.url})`)
    }
    return res.body
  }
}
