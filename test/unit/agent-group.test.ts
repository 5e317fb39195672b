/**
 * The spec of `discovery agents` (several agents in one process,
 * cli/agent-group.ts): each agent's flags parse with the definition
 * `discovery agent` uses, an unknown flag or a malformed spec is refused with
 * what was expected, and the spec's size is bounded.
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { MAX_AGENTS_PER_PROCESS, readGroupSpec } from '../../src/cli/agent-group.ts'
import { parseAgentArgv } from '../../src/cli/agent-options.ts'
import { UsageError } from '../../src/cli/errors.ts'

const dir = mkdtempSync(join(tmpdir(), 'agent-group-'))
const write = (name: string, body: unknown): string => {
  const file = join(dir, name)
  writeFileSync(file, typeof body === 'string' ? body : JSON.stringify(body))
  return file
}

describe('discovery agents', () => {
  it('parses each agent\'s flags as `discovery agent` does', () => {
    const f = parseAgentArgv(['--listen', '/ip4/127.0.0.1/tcp/0', '--api', '127.0.0.1:0', '--data-dir', '/tmp/a', '--json', '--bootstrap', '/ip4/127.0.0.1/tcp/1,/ip4/127.0.0.1/tcp/2', '--cpu', '8', '--labels', 'zone=a', '--labels', 'rack=b'])
    expect(f).toMatchObject({ listen: '/ip4/127.0.0.1/tcp/0', api: '127.0.0.1:0', dataDir: '/tmp/a', json: true, cpu: '8', labels: ['zone=a', 'rack=b'] })
    expect(f.bootstrap).toEqual(['/ip4/127.0.0.1/tcp/1,/ip4/127.0.0.1/tcp/2'])
    // Parsed anew each time: one agent's flags do not leak into the next.
    expect(parseAgentArgv(['--api', '127.0.0.1:1']).cpu).toBeUndefined()
    expect(() => parseAgentArgv(['--no-such-flag'])).toThrow(UsageError)
    expect(() => parseAgentArgv(['--cpu'])).toThrow(/do not parse/)
  })

  it('reads a spec, and refuses one that is not JSON, has no agent, too many, or unknown fields', () => {
    const ok = readGroupSpec(write('ok.json', { agents: [{ argv: ['--api', '127.0.0.1:0'], log: '/tmp/a.log' }] }))
    expect(ok.agents).toHaveLength(1)
    expect(() => readGroupSpec(write('bad.json', '{'))).toThrow(/cannot be read as JSON/)
    expect(() => readGroupSpec(write('none.json', { agents: [] }))).toThrow(UsageError)
    const many = Array.from({ length: MAX_AGENTS_PER_PROCESS + 1 }, (_, i) => ({ argv: [], log: `/tmp/${i}.log` }))
    expect(() => readGroupSpec(write('many.json', { agents: many }))).toThrow(new RegExp(`1 to ${MAX_AGENTS_PER_PROCESS} agents`))
    expect(() => readGroupSpec(write('extra.json', { agents: [{ argv: [], log: '/tmp/a.log', pid: 1 }] }))).toThrow(UsageError)
    expect(() => readGroupSpec(join(dir, 'missing.json'))).toThrow(/ENOENT/)
  })
})
