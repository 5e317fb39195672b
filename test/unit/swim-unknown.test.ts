/** A detector message that names a peer we do not watch (core/swim-messages.ts `namesUnknown`): the cue to ask its sender for the states we lack. */
import { describe, expect, it } from 'vitest'
import { namesUnknown, type SwimMessage } from '../../src/core/swim-messages.ts'

const known = new Set(['a', 'b'])
const status = (p: string): string | undefined => known.has(p) ? 'alive' : undefined
const ping = (updates: SwimMessage['updates']): SwimMessage => ({ v: 1, type: 'ping', seq: 1, run: 1, inc: 0, updates } as unknown as SwimMessage)

describe('namesUnknown', () => {
  it('an unknown sender, or an update saying an unknown peer is alive, names one', () => {
    expect(namesUnknown('self', 'z', ping([]), status)).toBe(true)
    expect(namesUnknown('self', 'a', ping([{ peer: 'n', status: 'alive', run: 1, inc: 0 }]), status)).toBe(true)
  })
  it('known peers, ourselves, and unknown peers said suspect or dead do not', () => {
    expect(namesUnknown('self', 'a', ping([]), status)).toBe(false)
    expect(namesUnknown('self', 'a', ping([{ peer: 'b', status: 'alive', run: 1, inc: 0 }, { peer: 'self', status: 'alive', run: 1, inc: 0 }]), status)).toBe(false)
    expect(namesUnknown('self', 'b', ping([{ peer: 'gone', status: 'dead', run: 1, inc: 0 }, { peer: 'x', status: 'suspect', run: 1, inc: 0 }]), status)).toBe(false)
  })
})
