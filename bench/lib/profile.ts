/**
 * A CPU profile of one running agent, taken from outside: SIGUSR1 opens its
 * inspector (the benchmark starts agents with `--inspect-port=0`, so the port
 * is the system's pick, written to the agent's log), then V8's sampling
 * profiler runs over the inspector protocol for a while, and the inspector
 * is closed again. Summed by self time: where the agent's CPU goes.
 *
 * V8's sampler ticks in wall time: a process the kernel has not run for a
 * while is sampled only when it runs again, and that sample's time delta
 * holds the whole wait. On a saturated host (the benchmark's load) whichever
 * function happened to be running then took the wait: a profile of an agent
 * joining 100 others gave one varint decoder 78 ms of "self time" in 5
 * samples. So each sample counts at most `maxSampleMs`: about CPU time.
 */
import { existsSync, readFileSync } from 'node:fs'
import { SourceMap } from 'node:module'
import { fileURLToPath } from 'node:url'
import { BUNDLE } from '../../bin/bundle-stamp.js'

export interface ProfileSummary {
  /** Sampled time in all, ms (idle excluded; each sample counts at most MAX_SAMPLE_MS). */
  busyMs: number
  /** Self time per package, file of ours, or V8/Node part: [name, ms], largest first. */
  byPart: Array<[string, number]>
  /** Self time per function: [function file:line, ms], largest first. */
  byFunction: Array<[string, number]>
}

interface CallFrame { functionName: string, url: string, lineNumber: number, columnNumber?: number }
interface CpuProfile { nodes: Array<{ id: number, callFrame: CallFrame }>, samples: number[], timeDeltas: number[] }

/** Where a function of a bundled script was written: its source file (relative to the map) and line, both 0-based. */
export type Locate = (frame: CallFrame) => { url: string, lineNumber: number } | undefined

/**
 * Reads the source map bin/bundle.js writes beside the bundle (`discovery.cjs.map`), so that a profile of an agent
 * run from the bundle names the package or source file of each function instead of the bundle (bin/bundle-run.js
 * compiles the bundle with its wrapper's line taken off: the profile's lines are the bundle's). `bundle` is the
 * script's URL in the profile: a path or a `file:` URL. Undefined without a map.
 */
export function bundleLocator (bundle: string): Locate | undefined {
  const file = `${bundle.startsWith('file:') ? fileURLToPath(bundle) : bundle}.map`
  if (!existsSync(file)) return undefined
  const map = new SourceMap(JSON.parse(readFileSync(file, 'utf8')))
  return (frame) => {
    if (frame.url !== bundle || frame.lineNumber < 0) return undefined
    const e = map.findEntry(frame.lineNumber, frame.columnNumber ?? 0)
    // The bundle's own helpers (its first columns) come from no source.
    return 'originalSource' in e && e.originalSource != null ? { url: e.originalSource, lineNumber: e.originalLine } : undefined
  }
}

const sleep = async (ms: number): Promise<void> => { await new Promise(r => setTimeout(r, ms)) }

/**
 * The inspector's WebSocket URL, once the agent wrote it to its log (after `fromByte`). Within 30 s: an agent of 100
 * under the load, niced, took more than 10 s to open it (2026-12-03).
 */
async function inspectorUrl (log: string, fromByte: number): Promise<string> {
  const end = Date.now() + 30_000
  while (Date.now() < end) {
    const m = /Debugger listening on (ws:\/\/\S+)/.exec(readFileSync(log).subarray(fromByte).toString('utf8'))
    if (m != null) return m[1]
    await sleep(100)
  }
  throw new Error(`no inspector address in ${log} within 30 s`)
}

/** The sampling interval asked of V8, ms. */
const SAMPLE_MS = 1

/** What one sample counts for at most: a longer delta is time the process waited for a CPU (above). */
export const MAX_SAMPLE_MS = 2 * SAMPLE_MS

export function summarize (profile: CpuProfile, top = 25, maxSampleMs = MAX_SAMPLE_MS, locate?: Locate): ProfileSummary {
  const byId = new Map(profile.nodes.map(n => [n.id, n]))
  const part = new Map<string, number>()
  const fn = new Map<string, number>()
  let busy = 0
  profile.samples.forEach((id, i) => {
    const ms = Math.min((profile.timeDeltas[i + 1] ?? 0) / 1000, maxSampleMs)
    const frame = byId.get(id)!.callFrame
    const { functionName } = frame
    if (functionName === '(idle)') return
    const { url, lineNumber } = locate?.(frame) ?? frame
    busy += ms
    const pkg = [...url.matchAll(/node_modules\/((@[^/]+\/)?[^/]+)/g)].at(-1)?.[1]
    const name = pkg ?? (url.includes('/src/') ? `src/${url.split('/src/')[1]}` : url.includes('/dist/') ? 'the bundle (dist/)' : url !== '' ? url : functionName)
    part.set(name, (part.get(name) ?? 0) + ms)
    const f = `${functionName !== '' ? functionName : '(anonymous)'} ${url.split('/').at(-1) ?? ''}:${lineNumber + 1}`
    fn.set(f, (fn.get(f) ?? 0) + ms)
  })
  const sorted = (m: Map<string, number>): Array<[string, number]> => [...m].sort((a, b) => b[1] - a[1]).slice(0, top)
  return { busyMs: busy, byPart: sorted(part), byFunction: sorted(fn) }
}

export async function profileAgent (pid: number, log: string, ms: number): Promise<ProfileSummary> {
  let fromByte = 0
  try { fromByte = readFileSync(log).byteLength } catch {}
  process.kill(pid, 'SIGUSR1')
  const ws = new WebSocket(await inspectorUrl(log, fromByte))
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject })
  let nextId = 1
  const waiting = new Map<number, (result: any) => void>()
  ws.onmessage = (evt) => {
    const msg = JSON.parse(String(evt.data)) as { id?: number, result?: unknown }
    if (msg.id != null) waiting.get(msg.id)?.(msg.result)
  }
  const call = async (method: string, params: unknown = {}): Promise<any> => await new Promise(resolve => {
    const id = nextId++
    waiting.set(id, resolve)
    ws.send(JSON.stringify({ id, method, params }))
  })
  try {
    await call('Profiler.enable')
    await call('Profiler.setSamplingInterval', { interval: SAMPLE_MS * 1000 })
    await call('Profiler.start')
    await sleep(ms)
    const { profile } = await call('Profiler.stop') as { profile: CpuProfile }
    const bundle = profile.nodes.map(n => n.callFrame.url).find(u => u.endsWith(BUNDLE))
    return summarize(profile, undefined, undefined, bundle != null ? bundleLocator(bundle) : undefined)
  } finally {
    await Promise.race([call('Runtime.evaluate', { expression: 'process.getBuiltinModule("node:inspector").close()' }), sleep(2_000)])
    ws.close()
  }
}
