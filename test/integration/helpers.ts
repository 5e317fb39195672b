/** Shared by the integration tests: run the real CLI, start real agent processes, wait for conditions. */
import type { Stream } from '@libp2p/interface'
import { decode as lpDecode } from 'it-length-prefixed'
import { spawn, type ChildProcess } from 'node:child_process'
import { appendFileSync, existsSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { expect } from 'vitest'
import { BIN } from '../../src/cli/cluster.ts'
import type { ClusterFile } from '../../src/cli/cluster.ts'
import { ApiClient } from '../../src/cli/client.ts'

export { ApiClient }

export function tempDir (prefix: string): string {
  return mkdtempSync(join(tmpdir(), `discovery-${prefix}-`))
}

export interface CliResult { code: number, stdout: string, stderr: string }

/** Runs `discovery ARGS` as a real process (with `env` added to its environment) and waits for it to end. */
export async function runCli (args: string[], timeoutMs = 90_000, env: Record<string, string> = {}): Promise<CliResult> {
  return await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => { stdout += String(d) })
    child.stderr.on('data', (d) => { stderr += String(d) })
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`discovery ${args.join(' ')} took over ${timeoutMs} ms\n${stderr}`)) }, timeoutMs)
    child.on('exit', (code) => { clearTimeout(timer); resolve({ code: code ?? -1, stdout, stderr }) })
  })
}

/** Polls `fn` until it returns something other than undefined, or fails with `what` at the deadline. */
export async function waitFor<T> (what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000, everyMs = 100): Promise<T> {
  const end = Date.now() + timeoutMs
  let last: unknown
  while (true) {
    try {
      const v = await fn()
      if (v !== undefined) return v
    } catch (err) {
      last = err
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`)
    await new Promise(r => setTimeout(r, everyMs))
  }
}

export function readCluster (dir: string): ClusterFile {
  return JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8'))
}

export interface AgentProcess {
  proc: ChildProcess
  api: ApiClient
  peerId: string
  /** Its libp2p addresses, `/ip4/…/tcp/…/p2p/ID`. */
  addrs: string[]
  exited: Promise<number | null>
}

/**
 * Starts `discovery agent ARGS --json` and resolves once it printed its ready
 * line; `opts.env` is added to the environment, `opts.token` is what the
 * returned client sends.
 */
export async function startAgent (args: string[], timeoutMs = 30_000, opts: { env?: Record<string, string>, token?: string, logFile?: string } = {}): Promise<AgentProcess> {
  const proc = spawn(process.execPath, [BIN, 'agent', '--json', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } })
  let stderr = ''
  proc.stderr!.on('data', (d) => {
    stderr = (stderr + String(d)).slice(-4000)
    if (opts.logFile != null) appendFileSync(opts.logFile, d)
  })
  const exited = new Promise<number | null>(resolve => proc.on('exit', (code) => { resolve(code) }))
  const lines = createInterface({ input: proc.stdout! })
  const ready = await new Promise<any>((resolve, reject) => {
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error(`agent not ready in ${timeoutMs} ms: ${stderr}`)) }, timeoutMs)
    lines.once('line', (line) => { clearTimeout(timer); resolve(JSON.parse(line)) })
    void exited.then((code) => { clearTimeout(timer); reject(new Error(`agent exited with ${code}: ${stderr}`)) })
  })
  return { proc, api: new ApiClient(ready.api, opts.token), peerId: ready.peerId, addrs: ready.addrs, exited }
}

export { metricValue } from '../../bench/lib/metrics.ts'

/** The report a `discovery chaos --report DIR` run wrote (its stderr's tail names what went wrong when there is none). */
export function readChaosReport (dir: string, run: CliResult): any {
  expect(existsSync(join(dir, 'report.json')), run.stderr.slice(-2000)).toBe(true)
  return JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8'))
}

/** A chaos report's violations, each `kind: message`: none. */
export function expectNoViolations (report: { violations: Array<{ kind: string, message: string }> }): void {
  expect(report.violations.map(v => `${v.kind}: ${v.message}`)).toEqual([])
}

/** Reads a stream of length-prefixed JSON frames until it ends; resolves to its frames and how it ended. */
export async function drainFrames (stream: Stream): Promise<{ frames: unknown[], error?: string }> {
  const frames: unknown[] = []
  try {
    for await (const f of lpDecode(stream.source)) frames.push(JSON.parse(new TextDecoder().decode(f.subarray())))
    return { frames }
  } catch (err: any) {
    return { frames, error: err.name }
  }
}
