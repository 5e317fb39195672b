/** JSON over HTTP with node's fetch (undici: keep-alive connections, reused per origin). */
export interface Reply<T = any> { status: number, body: T, ms: number }

export async function request<T = any> (method: string, url: string, body?: unknown, timeoutMs = 30_000): Promise<Reply<T>> {
  const t0 = performance.now()
  const res = await fetch(url, {
    method,
    headers: body === undefined ? undefined : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs)
  })
  const text = await res.text()
  let parsed: any = text
  try { parsed = text === '' ? undefined : JSON.parse(text) } catch {}
  return { status: res.status, body: parsed, ms: performance.now() - t0 }
}

export async function getJson<T = any> (url: string, timeoutMs = 10_000): Promise<T> {
  const res = await request<T>('GET', url, undefined, timeoutMs)
  if (res.status !== 200) throw new Error(`GET ${url}: HTTP ${res.status}`)
  return res.body
}
