/**
 * The QMP client against a scripted QMP server on a unix socket: the cases a
 * real QEMU shows only by accident (a slow answer, a server that never
 * greets, a connection that drops mid-command). The qemu driver's tests
 * cover the client against real QEMU.
 */
import { createServer, type Server, type Socket } from 'node:net'
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { QmpClient, type QmpEvent } from '../../src/hypervisor/qmp.ts'
import { tempDir, waitFor } from './helpers.ts'

const GREETING = { QMP: { version: { qemu: { major: 7, minor: 2, micro: 0 }, package: 'test' }, capabilities: ['oob'] } }

interface Fake {
  path: string
  /** Every command the server received, in order. */
  received: Array<{ execute: string, arguments?: any, id?: unknown }>
  sockets: Socket[]
}

const servers: Server[] = []
const dirs: string[] = []
afterEach(() => {
  for (const s of servers.splice(0)) s.close()
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

/** A QMP server whose answer to each command is given by `answer` (undefined: never answer). */
async function fake (answer: (cmd: any, sock: Socket) => object | undefined | Promise<object | undefined>, opts: { greet?: boolean } = {}): Promise<Fake> {
  const dir = tempDir('qmp')
  dirs.push(dir)
  const f: Fake = { path: join(dir, 'qmp.sock'), received: [], sockets: [] }
  const server = createServer(sock => {
    f.sockets.push(sock)
    if (opts.greet !== false) sock.write(JSON.stringify(GREETING) + '\r\n')
    let buf = ''
    sock.on('data', d => {
      buf += String(d)
      let nl: number
      while ((nl = buf.indexOf('\n')) >= 0) {
        const cmd = JSON.parse(buf.slice(0, nl))
        buf = buf.slice(nl + 1)
        f.received.push(cmd)
        void Promise.resolve(answer(cmd, sock)).then(a => { if (a != null && !sock.destroyed) sock.write(JSON.stringify({ ...a, id: cmd.id }) + '\r\n') })
      }
    })
    sock.on('error', () => {})
  })
  servers.push(server)
  await new Promise<void>(resolve => server.listen(f.path, resolve))
  return f
}

describe('QMP client', () => {
  it('negotiates capabilities, then runs commands with ids and returns their results', async () => {
    const f = await fake(cmd => cmd.execute === 'query-status' ? { return: { status: 'running', running: true } } : { return: {} })
    const qmp = await QmpClient.connect(f.path)
    expect(qmp.greeting.QMP.version.qemu.major).toBe(7)
    expect(await qmp.execute('query-status')).toEqual({ status: 'running', running: true })
    await qmp.execute('migrate-set-parameters', { 'downtime-limit': 30 })
    expect(f.received.map(c => c.execute)).toEqual(['qmp_capabilities', 'query-status', 'migrate-set-parameters'])
    expect(f.received[2].arguments).toEqual({ 'downtime-limit': 30 })
    const ids = f.received.map(c => c.id)
    expect(new Set(ids).size).toBe(ids.length)
    qmp.close()
    await qmp.closed
  })

  it('turns QEMU\'s error into a QmpError with its class and description', async () => {
    const f = await fake(cmd => cmd.execute === 'qmp_capabilities' ? { return: {} } : { error: { class: 'CommandNotFound', desc: 'The command nope has not been found' } })
    const qmp = await QmpClient.connect(f.path)
    const err = await qmp.execute('nope').catch((e: unknown) => e)
    expect(err).toMatchObject({ name: 'QmpError', class: 'CommandNotFound', desc: 'The command nope has not been found' })
    qmp.close()
  })

  it('sends one command at a time and delivers events in between', async () => {
    let release!: () => void
    const held = new Promise<void>(resolve => { release = resolve })
    const f = await fake(async (cmd, sock) => {
      if (cmd.execute === 'slow') {
        sock.write(JSON.stringify({ event: 'STOP', timestamp: { seconds: 1, microseconds: 2 } }) + '\r\n')
        await held
      }
      return { return: cmd.execute }
    })
    const qmp = await QmpClient.connect(f.path)
    const events: QmpEvent[] = []
    qmp.onEvent(e => { events.push(e) })
    const slow = qmp.execute('slow')
    const fast = qmp.execute('fast')
    await waitFor('the STOP event', () => events.length > 0 ? true : undefined, 5_000, 5)
    expect(f.received.map(c => c.execute)).toEqual(['qmp_capabilities', 'slow'])
    release()
    expect(await slow).toBe('slow')
    expect(await fast).toBe('fast')
    expect(events[0]).toMatchObject({ event: 'STOP' })
    qmp.close()
  })

  it('times out a command QEMU does not answer, drops the late answer, and goes on', async () => {
    let late: Socket | undefined
    const f = await fake((cmd, sock) => {
      if (cmd.execute === 'hang') {
        late = sock
        return undefined
      }
      return { return: cmd.execute }
    })
    const qmp = await QmpClient.connect(f.path, { timeoutMs: 2_000 })
    await expect(qmp.execute('hang', undefined, { timeoutMs: 100 })).rejects.toMatchObject({ name: 'QmpTimeoutError' })
    const hangId = f.received.find(c => c.execute === 'hang')!.id
    late!.write(JSON.stringify({ return: 'late', id: hangId }) + '\r\n')
    expect(await qmp.execute('next')).toBe('next')
    qmp.close()
  })

  it('gives up on the caller\'s signal with its reason', async () => {
    const f = await fake(cmd => cmd.execute === 'qmp_capabilities' ? { return: {} } : undefined)
    const qmp = await QmpClient.connect(f.path)
    const ctl = new AbortController()
    const p = qmp.execute('hang', undefined, { signal: ctl.signal })
    ctl.abort(new Error('the agent is stopping'))
    await expect(p).rejects.toThrow('the agent is stopping')
    qmp.close()
  })

  it('fails to connect, with a timeout, to a socket that never greets (another client holds it)', async () => {
    const f = await fake(() => ({ return: {} }), { greet: false })
    const started = Date.now()
    await expect(QmpClient.connect(f.path, { timeoutMs: 200 })).rejects.toMatchObject({ name: 'QmpTimeoutError', message: expect.stringMatching(/no QMP greeting/) })
    expect(Date.now() - started).toBeLessThan(5_000)
  })

  it('fails what is pending with QmpClosedError when QEMU goes away, and says it is closed', async () => {
    const f = await fake(cmd => cmd.execute === 'qmp_capabilities' ? { return: {} } : undefined)
    const qmp = await QmpClient.connect(f.path)
    const p = qmp.execute('quit')
    await waitFor('the command at the server', () => f.received.length === 2 ? true : undefined, 5_000, 5)
    f.sockets[0].destroy()
    await expect(p).rejects.toMatchObject({ name: 'QmpClosedError' })
    await qmp.closed
    expect(qmp.isClosed).toBe(true)
    await expect(qmp.execute('query-status')).rejects.toMatchObject({ name: 'QmpClosedError' })
  })

  it('refuses a server that does not speak QMP', async () => {
    const dir = tempDir('qmp')
    dirs.push(dir)
    const path = join(dir, 'qmp.sock')
    const server = createServer(sock => { sock.write('SSH-2.0-OpenSSH\r\n') })
    servers.push(server)
    await new Promise<void>(resolve => server.listen(path, resolve))
    await expect(QmpClient.connect(path)).rejects.toMatchObject({ name: 'QmpProtocolError' })
  })
})
