/**
 * One process of the placement benchmark's baseline (bench/placement.ts): the
 * agent's libp2p host — src/net/host.ts, with the `local` profile's settings:
 * TCP, noise, yamux, gossipsub — and its wire — the place protocol's
 * pipelined stream — with no Discovery logic: no view, no gossip policy, no
 * ledger, no store, no placement. What the machine itself can do with the
 * same stack, on the same number of processes:
 * - `POST /v1/vms`: one request/response (a reserve) with a peer drawn at
 *   random, then `201 { id, node }`; with `?announce=1` the id is also
 *   published on a gossipsub topic before the answer;
 * - `GET /v1/vms/:id?wait=D`: `200` once this process has the id (its own
 *   announce, or gossip), else `404` at the deadline;
 * - `GET /v1/events`: server-sent events as the agent's, one `vm.placed`
 *   (`data: {"type":"vm.placed","atMs":…,"data":{"id":…}}`) when this process
 *   first has an id: when its view would have it, by its own clock;
 * - `GET /v1/health`.
 * It dials up to four of its `--bootstrap` peers (again while it has no
 * connection), and any peer it sends a request to; it never closes a
 * connection.
 *
 *   node bench/bare-node.ts --listen MULTIADDR --api HOST:PORT [--bootstrap A,B,…] --peers FILE
 *
 * `--peers FILE` (one multiaddr per line, `/p2p/ID` included) is read at the
 * first create: the benchmark writes it once every process is up.
 */
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { parseArgs } from 'node:util'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { defaultLocalConfig } from '../src/config.ts'
import { PROTOCOL_VERSION } from '../src/core/messages.ts'
import { createHost, PlaceClient, PlaceServer } from '../src/net/index.ts'

const TOPIC = '/discovery-bench/announce/1'
const { values } = parseArgs({ options: { listen: { type: 'string' }, api: { type: 'string' }, bootstrap: { type: 'string', default: '' }, peers: { type: 'string' } } })
const [apiHost, apiPort] = (values.api ?? '127.0.0.1:0').split(':')
const config = defaultLocalConfig()

const host = await createHost({
  privateKey: await generateKeyPair('Ed25519') as any,
  listen: values.listen ?? '/ip4/127.0.0.1/tcp/0',
  meshDegree: config.gossip.meshDegree,
  pingIntervalMs: config.connection.pingIntervalMs,
  pingTimeoutMs: config.connection.pingTimeoutMs,
  gossipHeartbeatMs: config.connection.gossipHeartbeatMs,
  gossipLazyPeers: config.connection.gossipLazyPeers
})
const self = host.peerId.toString()
const seen = new Set<string>()
const waiting = new Map<string, Array<() => void>>()
/** The open `GET /v1/events` streams. */
const streams = new Set<ServerResponse>()
const see = (id: string): void => {
  if (seen.has(id)) return
  seen.add(id)
  const frame = `event: vm.placed\ndata: ${JSON.stringify({ type: 'vm.placed', atMs: Date.now(), data: { id } })}\n\n`
  for (const res of streams) res.write(frame)
  for (const wake of waiting.get(id) ?? []) wake()
  waiting.delete(id)
}
const pubsub = host.services.pubsub
pubsub.addEventListener('message', (evt: CustomEvent<{ topic: string, data: Uint8Array }>) => {
  if (evt.detail.topic === TOPIC) see(new TextDecoder().decode(evt.detail.data))
})
pubsub.subscribe(TOPIC)

const server = new PlaceServer({ libp2p: host as any, timeoutMs: config.requestTimeoutMs, onInvalid: () => {}, handle: async () => ({ v: PROTOCOL_VERSION, ok: true }) })
await server.start()
const client = new PlaceClient({ libp2p: host as any, timeoutMs: config.requestTimeoutMs })

// Up to four bootstrap peers; again every 2 s while none answered (a saturated machine fails dials).
const bootstrap = values.bootstrap.split(',').filter(a => a !== '').slice(0, 4).map(a => multiaddr(a))
const dialBootstrap = (): void => { for (const addr of bootstrap) host.dial(addr, { signal: AbortSignal.timeout(10_000) }).catch(() => {}) }
dialBootstrap()
const redial = setInterval(() => { if (host.getConnections().length === 0) dialBootstrap() }, 2_000)
redial.unref()

let peers: Multiaddr[][] | undefined
function pickPeer (): Multiaddr[] {
  peers ??= readFileSync(values.peers!, 'utf8').split('\n').filter(l => l !== '' && !l.endsWith(self)).map(l => [multiaddr(l)])
  return peers[Math.floor(Math.random() * peers.length)]
}

function send (res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

async function route (req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://bench')
  if (req.method === 'GET' && url.pathname === '/v1/health') return send(res, 200, { status: 'ok', peerId: self, connections: host.getConnections().length })
  if (req.method === 'GET' && url.pathname === '/v1/events') {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
    res.write(': events\n\n')
    streams.add(res)
    res.on('close', () => { streams.delete(res) })
    return
  }
  if (req.method === 'POST' && url.pathname === '/v1/vms') {
    for await (const _ of req) {} // the body is not read: a create is the same request whatever it asks
    const peer = pickPeer()
    const id = `vm-${randomUUID().replace(/-/g, '').slice(0, 12)}`
    const answer = await client.request(peer, { v: PROTOCOL_VERSION, op: 'reserve', leaseId: randomUUID(), resources: { cpu: 1, memMiB: 256 }, ttlMs: 10_000 })
    if (!answer.ok) return send(res, 503, { error: 'refused', message: answer.reason })
    if (url.searchParams.get('announce') === '1') {
      see(id)
      await pubsub.publish(TOPIC, new TextEncoder().encode(id)).catch(() => {})
    }
    return send(res, 201, { id, node: peer[0].getPeerId(), state: 'creating' })
  }
  const m = /^\/v1\/vms\/([^/]+)$/.exec(url.pathname)
  if (req.method === 'GET' && m != null) {
    const id = m[1]
    const wait = Number(/^(\d+)ms$/.exec(url.searchParams.get('wait') ?? '')?.[1] ?? 0)
    if (!seen.has(id) && wait > 0) {
      await new Promise<void>(resolve => {
        const timer = setTimeout(resolve, wait)
        waiting.set(id, [...(waiting.get(id) ?? []), () => { clearTimeout(timer); resolve() }])
      })
    }
    return seen.has(id) ? send(res, 200, { id }) : send(res, 404, { error: 'vm_not_found', message: id })
  }
  send(res, 404, { error: 'route_not_found', message: url.pathname })
}

const http = createServer((req, res) => { route(req, res).catch(err => { send(res, 500, { error: 'internal', message: String(err?.message ?? err) }) }) })
await new Promise<void>(resolve => http.listen(Number(apiPort), apiHost, resolve))
const address = http.address()
const api = `http://${apiHost}:${typeof address === 'object' && address != null ? address.port : apiPort}`
process.stdout.write(JSON.stringify({ event: 'ready', peerId: self, api, addrs: host.getMultiaddrs().map(a => a.toString()) }) + '\n')

const stop = (): void => {
  http.close()
  client.stop()
  void Promise.resolve(host.stop()).finally(() => process.exit(0))
  setTimeout(() => process.exit(0), 5_000).unref()
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
