/**
 * What the kernel shows of a co-hosted peer's process (agent/process-watch.ts):
 * the stat line parsed whatever the command's name, a real child process seen
 * running, stopped (SIGSTOP), running again (SIGCONT) and gone (killed, or
 * its pid taken by another process), and the watch reporting only changes,
 * only for peers on our host, and clearing peers it no longer watches.
 */
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import type { ProcessIdentity } from '../../src/core/messages.ts'
import { ownProcess, parseStat, processRuns, ProcessWatch, StatFiles } from '../../src/agent/process-watch.ts'

const linux = process.platform === 'linux'

/** Waits for `cond`, checking every 10 ms, failing after `ms`. */
async function until (cond: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms`)
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

describe('parseStat', () => {
  it('reads the state and start time after the last parenthesis, whatever the command holds', () => {
    const rest = 'S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 424242 20 21'
    expect(parseStat(`77 (node) ${rest}`)).toEqual({ state: 'S', start: 424242 })
    expect(parseStat(`77 (a) b (c) ) ${rest.replace(/^S/, 'T')}`)).toEqual({ state: 'T', start: 424242 })
    expect(parseStat('77 node S 1')).toBeUndefined()
    expect(parseStat('77 (node) S 1 2')).toBeUndefined()
    expect(parseStat(`77 (node) ${rest.replace('424242', '')}`)).toBeUndefined()
    expect(parseStat('77 (node) ')).toBeUndefined()
  })

  it.runIf(linux)('reads real lines as splitting them on spaces does', () => {
    const split = (line: string): { state: string, start: number } => {
      const fields = line.slice(line.lastIndexOf(')') + 2).split(' ')
      return { state: fields[0], start: Number(fields[19]) }
    }
    for (const pid of ['self', '1', String(process.ppid)]) {
      const line = readFileSync(`/proc/${pid}/stat`, 'utf8')
      expect(parseStat(line), line).toEqual(split(line))
    }
  })
})

describe.runIf(linux)('a real process, as the kernel shows it', () => {
  it('runs, is stopped, runs again, and is gone once killed; a reused pid is not the same process', async () => {
    const child = spawn('sleep', ['30'], { stdio: 'ignore' })
    try {
      const stat = parseStat(readFileSync(`/proc/${child.pid!}/stat`, 'utf8'))!
      const id: ProcessIdentity = { host: 'h', pid: child.pid!, start: stat.start }
      expect(processRuns(id)).toBe(true)
      expect(processRuns({ ...id, start: stat.start + 1 })).toBe(false)
      child.kill('SIGSTOP')
      await until(() => !processRuns(id))
      child.kill('SIGCONT')
      await until(() => processRuns(id))
      const exited = new Promise(resolve => child.once('exit', resolve))
      child.kill('SIGKILL')
      await exited
      await until(() => !processRuns(id))
    } finally {
      child.kill('SIGKILL')
    }
  })

  it('reads a stat file kept open again and again, sees the process stop, and fails with ESRCH once it is gone', async () => {
    const child = spawn('sleep', ['30'], { stdio: 'ignore' })
    const files = new StatFiles()
    try {
      const path = `/proc/${child.pid!}/stat`
      const id: ProcessIdentity = { host: 'h', pid: child.pid!, start: parseStat(files.read(path))!.start }
      const read = (p: string): string => files.read(p)
      expect(processRuns(id, read)).toBe(true)
      expect(files.open).toBe(1)
      child.kill('SIGSTOP')
      await until(() => !processRuns(id, read))
      expect(parseStat(files.read(path))!.state).toBe('T')
      child.kill('SIGCONT')
      await until(() => processRuns(id, read))
      expect(files.open).toBe(1)
      const exited = new Promise(resolve => child.once('exit', resolve))
      child.kill('SIGKILL')
      await exited
      expect(() => files.read(path)).toThrow(expect.objectContaining({ code: 'ESRCH' }))
      expect(files.open).toBe(0)
      expect(processRuns(id, read)).toBe(false)
      files.read('/proc/self/stat')
      files.keepOnly(new Set())
      expect(files.open).toBe(0)
      files.read('/proc/self/stat')
      files.read('/proc/self/schedstat')
      expect(files.open).toBe(2)
      files.closeAll()
      expect(files.open).toBe(0)
    } finally {
      child.kill('SIGKILL')
      files.keepOnly(new Set())
    }
  })

  it('tells our own identity: this boot and pid namespace, our pid and start time', () => {
    const me = ownProcess()!
    expect(me.pid).toBe(process.pid)
    expect(me.host).toMatch(/^[0-9a-f-]{36}\/\d+$/)
    expect(processRuns(me)).toBe(true)
  })
})

describe('ProcessWatch', () => {
  const self: ProcessIdentity = { host: 'here', pid: 1, start: 1 }
  const line = (state: string, start: number): string => `9 (node) ${state} ${Array.from({ length: 18 }, (_, i) => i).join(' ')} ${start} 0`

  it('reports changes only, only for peers on our host, and clears a peer it no longer watches', () => {
    const procs = new Map<number, string>([[10, line('S', 5)], [11, line('S', 6)]])
    const where: Record<string, ProcessIdentity> = { a: { host: 'here', pid: 10, start: 5 }, b: { host: 'elsewhere', pid: 11, start: 6 } }
    const changes: Array<[string, boolean]> = []
    const watch = new ProcessWatch({
      self,
      processOf: p => where[p],
      onChange: (peer, running) => changes.push([peer, running]),
      read: path => {
        const s = procs.get(Number(/\/proc\/(\d+)\//.exec(path)![1]))
        if (s == null) throw Object.assign(new Error('no such file'), { code: 'ENOENT' })
        return s
      }
    })
    watch.check(['a', 'b', 'c'])
    expect(changes).toEqual([])
    procs.set(10, line('T', 5))
    procs.set(11, line('T', 6))
    watch.check(['a', 'b', 'c'])
    watch.check(['a', 'b', 'c'])
    expect(changes).toEqual([['a', false]])
    procs.set(10, line('R', 5))
    watch.check(['a'])
    expect(changes).toEqual([['a', false], ['a', true]])
    procs.delete(10)
    watch.check(['a'])
    expect(changes.at(-1)).toEqual(['a', false])
    watch.check(['b'])
    expect(changes.at(-1)).toEqual(['a', true])
    expect(changes).toHaveLength(4)
    // A read that fails for another reason says nothing: taken as running.
    procs.set(10, line('Z', 5))
    watch.check(['a'])
    expect(changes.at(-1)).toEqual(['a', false])
    expect(processRuns(where.a, () => { throw Object.assign(new Error('too many open files'), { code: 'EMFILE' }) })).toBe(true)
  })

  it('watches nothing without an identity of its own (no /proc)', () => {
    let reads = 0
    const watch = new ProcessWatch({ self: undefined, processOf: () => ({ host: 'x', pid: 1, start: 1 }), onChange: () => { throw new Error('no change expected') }, read: () => { reads++; return '' } })
    watch.check(['a'])
    expect(reads).toBe(0)
  })
})
