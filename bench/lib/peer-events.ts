/**
 * Every agent's `peer.*` and `vm.restarted` events, followed over `GET /v1/events` for the
 * healing benchmark: when each agent marked a peer dead or alive, by the
 * agent's own clock (`atMs`, the machine's: the same for every agent). A
 * stream that ends (its agent was killed and started again) is followed
 * again from the new run.
 */
import { SseParser, type StreamEvent } from '../../src/cli/events.ts'

export interface PeerEvents {
  /** Each observer's first `type` event about `peer` at or after `t0`, as ms after t0; NaN for those that had none by the timeout. */
  waitAll: (observers: number[], type: string, peer: string, t0: number, timeoutMs: number) => Promise<number[]>
  /** How many of `observers` last showed `peer` other than alive (their last `peer.*` status event about it). */
  notAlive: (observers: number[], peer: string) => number
  /** Events of `type` seen so far, all agents together. */
  count: (type: string) => number
  /** The `vm.restarted` events for VMs of `owner` at or after `t0`, all agents together, each with the agent (index) that sent it. */
  restartsOf: (owner: string, t0: number) => Array<StreamEvent & { agent: number }>
  close: () => void
}

const TYPES = 'peer.alive,peer.suspect,peer.dead,peer.refuted,vm.restarted'

export async function followPeers (apis: string[]): Promise<PeerEvents> {
  const seen: StreamEvent[][] = apis.map(() => [])
  const ac = new AbortController()
  const connected: Array<Promise<void>> = []
  apis.forEach((api, i) => {
    let first = true
    let resolveFirst: () => void = () => {}
    connected.push(new Promise<void>(resolve => { resolveFirst = resolve }))
    void (async () => {
      while (!ac.signal.aborted) {
        try {
          const res = await fetch(`${api}/v1/events?types=${TYPES}`, { signal: ac.signal })
          if (first) { first = false; resolveFirst() }
          const parser = new SseParser((id, _type, data) => { if (id != null) seen[i].push(JSON.parse(data)) })
          const decoder = new TextDecoder()
          for await (const chunk of res.body!) parser.push(decoder.decode(chunk, { stream: true }))
        } catch {}
        if (!ac.signal.aborted) await new Promise(r => setTimeout(r, 500))
      }
    })()
  })
  await Promise.race([Promise.all(connected), new Promise(r => setTimeout(r, 30_000))])
  const find = (i: number, type: string, peer: string, t0: number): StreamEvent | undefined =>
    seen[i].find(e => e.type === type && (e.data as { peerId?: string }).peerId === peer && e.atMs >= t0)
  return {
    waitAll: async (observers, type, peer, t0, timeoutMs) => {
      const end = t0 + timeoutMs
      while (Date.now() < end && !observers.every(i => find(i, type, peer, t0) != null)) await new Promise(r => setTimeout(r, 50))
      return observers.map(i => { const e = find(i, type, peer, t0); return e == null ? NaN : e.atMs - t0 })
    },
    notAlive: (observers, peer) => observers.filter(i => {
      const last = seen[i].findLast(e => e.type !== 'vm.restarted' && (e.data as { peerId?: string }).peerId === peer)
      return last != null && last.type !== 'peer.alive' && last.type !== 'peer.refuted'
    }).length,
    count: (type) => seen.reduce((n, s) => n + s.filter(e => e.type === type).length, 0),
    restartsOf: (owner, t0) => seen.flatMap((s, agent) => s.filter(e => e.type === 'vm.restarted' && (e.data as { deadOwner?: string }).deadOwner === owner && e.atMs >= t0).map(e => ({ ...e, agent }))),
    close: () => { ac.abort() }
  }
}
