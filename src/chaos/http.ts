/**
 * The harness's HTTP requests to the agents: like the CLI's client, but a
 * failure is a recorded outcome, not an exception — `refused` (the request
 * never reached an agent), `timeout`, or `error` (the connection broke after
 * the request went out: it may have taken effect).
 */
import type { OpStatus } from './history.ts'

export interface Answer<T = any> { status: OpStatus, body?: T }

/** Bodies kept in the history are cut to this many characters. */
const BODY_CHARS = 400

export async function send<T = any> (api: string, token: string | undefined, method: string, path: string, body: unknown, timeoutMs: number): Promise<Answer<T>> {
  const headers: Record<string, string> = {}
  if (body !== undefined) headers['content-type'] = 'application/json'
  if (token != null) headers.authorization = `Bearer ${token}`
  let res: Response
  try {
    res = await fetch(api + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(timeoutMs) })
  } catch (err: any) {
    if (err?.name === 'TimeoutError' || err?.name === 'AbortError') return { status: 'timeout' }
    return { status: err?.cause?.code === 'ECONNREFUSED' ? 'refused' : 'error', body: String(err?.cause?.code ?? err?.message) as any }
  }
  let text: string
  try {
    text = await res.text()
  } catch (err: any) {
    return { status: err?.name === 'TimeoutError' ? 'timeout' : 'error' }
  }
  let parsed: any = text
  try { parsed = text === '' ? undefined : JSON.parse(text) } catch {}
  return { status: res.status, body: parsed }
}

/** A body small enough for the history. */
export function trimBody (body: unknown): unknown {
  if (body === undefined) return undefined
  const s = JSON.stringify(body)
  return s.length <= BODY_CHARS ? body : s.slice(0, BODY_CHARS) + '…'
}

/** `send` that resolves to the body of a 2xx answer, or undefined. */
export async function get<T = any> (api: string, token: string | undefined, path: string, timeoutMs = 3_000): Promise<T | undefined> {
  const a = await send<T>(api, token, 'GET', path, undefined, timeoutMs)
  return typeof a.status === 'number' && a.status < 300 ? a.body : undefined
}
