/**
 * libp2p's logger while its debug output is off (net/quiet-logger.ts): a
 * logger that writes nothing and builds nothing, its scopes itself; libp2p's
 * own as soon as DEBUG names something.
 */
import { describe, expect, it, vi } from 'vitest'
import { libp2pLogger, quietLogger } from '../../src/net/quiet-logger.ts'

describe('libp2p\'s logger', () => {
  it('is the quiet one without DEBUG (or with it empty), libp2p\'s own with it', () => {
    expect(libp2pLogger({})).toBe(quietLogger)
    expect(libp2pLogger({ DEBUG: '' })).toBe(quietLogger)
    expect(libp2pLogger({ DEBUG: '  ' })).toBe(quietLogger)
    expect(libp2pLogger({ DEBUG: 'libp2p:*' })).toBeUndefined()
  })

  it('writes nothing, says it is off, and gives itself for every component and scope', () => {
    const write = vi.spyOn(process.stderr, 'write')
    try {
      const log = quietLogger.forComponent('libp2p:yamux')
      expect(log.enabled).toBe(false)
      log('a stream opened %s', 'x')
      log.error('an error %o', new Error('boom'))
      log.trace('a trace')
      const scoped = log.newScope('stream-1')
      expect(scoped).toBe(log)
      expect(quietLogger.forComponent('libp2p:gossipsub')).toBe(log)
      expect(write).not.toHaveBeenCalled()
    } finally {
      write.mockRestore()
    }
  })
})
