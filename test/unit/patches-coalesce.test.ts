/**
 * Write coalescing under noise, on its own: the bytes that go out are the
 * bytes that came in, in order; what is ready together goes out as one chunk.
 * (test/integration/patches-coalesce.test.ts checks it under a real noise
 * handshake between two hosts.)
 */
import { Uint8ArrayList } from 'uint8arraylist'
import { describe, expect, it } from 'vitest'
import { coalesce } from '../../src/net/patches/index.ts'

async function collect (source: AsyncIterable<Uint8ArrayList>): Promise<Uint8Array[]> {
  const out: Uint8Array[] = []
  for await (const chunk of source) out.push(chunk.subarray())
  return out
}

describe('coalesce', () => {
  it('joins the chunks that are ready in one turn, keeps their order, and passes the end through', async () => {
    const ready = [Uint8Array.from([1]), new Uint8ArrayList(Uint8Array.from([2]), Uint8Array.from([3])), Uint8Array.from([4])]
    expect((await collect(coalesce(ready))).map(c => [...c])).toEqual([[1, 2, 3, 4]])
  })

  it('sends a chunk on its own when nothing follows it in the same turn', async () => {
    async function * spaced (): AsyncGenerator<Uint8Array> {
      yield Uint8Array.from([1])
      yield Uint8Array.from([2])
      await new Promise(resolve => setTimeout(resolve, 5))
      yield Uint8Array.from([3])
    }
    expect((await collect(coalesce(spaced()))).map(c => [...c])).toEqual([[1, 2], [3]])
  })

  it('caps a batch at about maxBytes', async () => {
    const chunks = Array.from({ length: 10 }, (_, i) => new Uint8Array(400).fill(i))
    const out = await collect(coalesce(chunks, 1000))
    expect(out.map(c => c.byteLength)).toEqual([1200, 1200, 1200, 400])
    expect(Buffer.concat(out)).toEqual(Buffer.concat(chunks))
  })

  it('rethrows an error of the source', async () => {
    async function * failing (): AsyncGenerator<Uint8Array> {
      yield Uint8Array.from([1])
      await new Promise(resolve => setTimeout(resolve, 1))
      throw new Error('reset')
    }
    await expect(collect(coalesce(failing()))).rejects.toThrow('reset')
  })
})
