/**
 * A holder that refuses an owner's record because the VM was deleted (at a
 * later head, while that owner was cut off or down) answers the `put` with
 * the tombstone, so that the owner stops the copy it still runs (chaos seed
 * 13: an owner partitioned one way ran its copy to the end, its holders
 * refusing its records without telling it why). Real SQLite store and
 * Ed25519 keys; the handler's other parts are not used by `put`.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { Holdings } from '../../src/agent/holdings.ts'
import { ReplicaHandler } from '../../src/agent/replica-handler.ts'
import { designate, headOf, makeTombstone, originLink } from '../../src/core/ownership.ts'
import type { ReplicaRecord } from '../../src/core/replica-messages.ts'
import { DEFAULT_REPLICA } from '../../src/core/replica-rule.ts'
import { ReplicaStore, Store } from '../../src/store/index.ts'
import { type Identity, identities } from '../unit/signers.ts'

let O: Identity, H: Identity
const cleanup: Array<() => void> = []
afterEach(() => { for (const f of cleanup.splice(0)) f() })
beforeAll(async () => { [O, H] = await identities(2) })

function record (vmId: string): ReplicaRecord {
  const chain = [originLink(vmId, O.signer)]
  return { spec: { id: vmId, name: 'web', cpu: 1, memMiB: 256, createdAtMs: 1, restartPolicy: 'always' }, chain, designation: designate(vmId, headOf(chain), [H.id], 1, O.signer) }
}

describe('a put of a deleted VM\'s record', () => {
  it('is refused with the tombstone, which goes back to the owner; a live record is taken and gets none', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'discovery-put-deleted-'))
    const store = Store.open(dir)
    cleanup.push(() => { store.close(); rmSync(dir, { recursive: true, force: true }) })
    const holdings = new Holdings({ self: H.id, signer: H.signer, store: new ReplicaStore(store), config: DEFAULT_REPLICA, now: () => 1_000 })
    const handler = new ReplicaHandler({ holdings, log: pino({ level: 'silent' }), refused: () => {} } as any)
    const deleted = record('vm-0000000000aa')
    const live = record('vm-0000000000bb')
    const t = makeTombstone(deleted.chain, 900, O.signer)
    holdings.addTombstones([t])
    const res = await handler.serve({ v: 1, op: 'put', records: [deleted, live] }, O.id)
    expect(res.ok).toBe(true)
    if (!res.ok) return
    expect(res.refused?.map(r => r.vmId)).toEqual([deleted.spec.id])
    expect(res.tombstones).toEqual([t])
    expect(holdings.get(live.spec.id)).toBeDefined()
    expect(holdings.get(deleted.spec.id)).toBeUndefined()
    const again = await handler.serve({ v: 1, op: 'put', records: [live] }, O.id)
    expect(again.ok && again.tombstones).toBeFalsy()
  })
})
