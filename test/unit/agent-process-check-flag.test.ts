/**
 * `discovery agent --process-check <ms|none>` (src/cli/agent-command.ts): the
 * failure detector's process checks of co-hosted peers, on by default every
 * 250 ms, off with none, refused with a clear error otherwise.
 */
import { describe, expect, it } from 'vitest'
import { resolveAgentConfig } from '../../src/cli/agent-command.ts'

describe('--process-check', () => {
  it('defaults to 250 ms, takes a number of ms or none, and names the flag when it refuses', () => {
    expect(resolveAgentConfig({}, {}).detector.processCheckMs).toBe(250)
    expect(resolveAgentConfig({ processCheck: '50' }, {}).detector.processCheckMs).toBe(50)
    expect(resolveAgentConfig({ processCheck: 'none' }, {}).detector.processCheckMs).toBeNull()
    expect(() => resolveAgentConfig({ processCheck: 'soon' }, {})).toThrow(/--process-check/)
    expect(() => resolveAgentConfig({ processCheck: '1' }, {})).toThrow(/--process-check/)
  })
})
