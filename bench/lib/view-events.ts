/**
 * When each process's view got a VM, by the process's own clock: its
 * `GET /v1/events` stream (`vm.created` where it was created, `vm.placed`
 * where it was placed or where gossip brought it; the baseline's
 * bench/bare-node.ts sends the same `vm.placed` frames), opened before the
 * creates. Every process of the benchmark runs on this host, so their clocks
 * are this process's clock.
 *
 * Why beside `GET ?wait=` (measure.ts, `convergence`): at 100 agents on two
 * cores, the 100 answers to those requests, read by this one process, come
 * 100–300 ms after the views had the VM (docs/many-agents.md):
 * the benchmark's own requests queue behind the CPU burst each create causes.
 */
import http, { type ClientRequest } from 'node:http'
import { SseParser } from '../../src/cli/events.ts'

export interface ViewEvents {
  /** When process `i` first had VM `id` (epoch ms), if it said so yet. */
  at: (i: number, id: string) => number | undefined
  /** Waits until every process had `id`, or `timeoutMs`. */
  waitAll: (id: string, timeoutMs: number) => Promise<void>
  close: () => void
}

const TYPES = 'vm.created,vm.placed'

/** Opens one event stream per API; resolves once every stream answered. */
export async function watchViews (apis: readonly string[], timeoutMs = 15_000): Promise<ViewEvents> {
  const seen = apis.map(() => new Map<string, number>())
  const requests: ClientRequest[] = []
  const waiters = new Set<() => void>()
  const open = apis.map(async (api, i) => await new Promise<void>((resolve, reject) => {
    const url = new URL(`/v1/events?types=${TYPES}`, api)
    const req = http.get(url, { agent: false, timeout: timeoutMs }, (res) => {
      if (res.statusCode !== 200) { reject(new Error(`${api}/v1/events answered HTTP ${res.statusCode}`)); res.resume(); return }
      req.setTimeout(0)
      resolve()
      const parser = new SseParser((_id, _type, data) => {
        try {
          const e = JSON.parse(data) as { atMs?: number, data?: { id?: string } }
          const id = e.data?.id
          if (typeof id === 'string' && typeof e.atMs === 'number' && !seen[i].has(id)) seen[i].set(id, e.atMs)
        } catch {}
      })
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        parser.push(chunk)
        for (const wake of waiters) wake()
      })
    })
    req.on('error', reject)
    req.on('timeout', () => { req.destroy(new Error(`${api}/v1/events did not answer within ${timeoutMs} ms`)) })
    requests.push(req)
  }))
  try {
    await Promise.all(open)
  } catch (err) {
    for (const req of requests) req.destroy()
    throw err
  }
  return {
    at: (i, id) => seen[i].get(id),
    waitAll: async (id, ms) => {
      const done = (): boolean => seen.every(m => m.has(id))
      if (done()) return
      await new Promise<void>(resolve => {
        const timer = setTimeout(finish, ms)
        function finish (): void { clearTimeout(timer); waiters.delete(check); resolve() }
        function check (): void { if (done()) finish() }
        waiters.add(check)
      })
    },
    close: () => { for (const req of requests) req.destroy() }
  }
}
