/**
 * The owner's side of a placement with the store's group commit: a VM is
 * acknowledged only once its record is durable; a commit retried while the
 * first is on its way to disk gets the same answer; a VM on its way to disk
 * already holds its spread group; the list of VMs is rebuilt only on change.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { Ledger } from '../../src/core/ledger.ts'
import type { VmSpec } from '../../src/core/messages.ts'
import { type Change, LocalNode } from '../../src/agent/local-node.ts'
import { SimDriver } from '../../src/hypervisor/sim-driver.ts'
import { Store } from '../../src/store/store.ts'

const cleanup: Array<() => void> = []
afterEach(() => { for (const f of cleanup.splice(0)) f() })

/** A node on a new data dir, or on `dir` again (the same node restarted: its store as it was left). */
function node (capacity = { cpu: 8, memMiB: 8192 }, dir = mkdtempSync(join(tmpdir(), 'discovery-local-'))) {
  const store = Store.open(dir)
  const driver = new SimDriver({ bootDelayMs: 5 })
  const changes: Change[] = []
  // Ownership proofs are not what these tests are about: an origin link stands in (core/ownership.ts makes real ones).
  const proofs = { origin: (vmId: string, epoch: number) => [{ kind: 'create' as const, vmId, epoch, owner: '12D3KooWNodeMe', sig: `${'A'.repeat(86)}==` }], check: () => undefined }
  const local = new LocalNode({ ledger: new Ledger(capacity), store, driver, proofs, now: Date.now, onChange: (change) => { changes.push(change) } })
  cleanup.push(() => { void driver.stop(); store.close(); rmSync(dir, { recursive: true, force: true }) })
  return { local, store, dir, changes }
}

function spec (n: number, spread?: string): VmSpec {
  const id = `vm-${String(n).padStart(8, '0')}`
  const s: VmSpec = { id, name: id, cpu: 1, memMiB: 256, createdAtMs: 1 }
  if (spread != null) s.constraints = { spread }
  return s
}

const lease = (n: number): string => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`

describe('LocalNode', () => {
  it('acknowledges a VM only once its record is on disk, many at once in one batch', async () => {
    const { local, dir } = node()
    for (let i = 0; i < 8; i++) expect(local.reserve(lease(i), { cpu: 1, memMiB: 256 }, undefined, 10_000).ok).toBe(true)
    const commits = Array.from({ length: 8 }, async (_, i) => {
      const r = await local.commit(lease(i), spec(i))
      // Durable when acknowledged: another connection to the file sees it.
      const reader = Store.open(dir)
      const seen = reader.listVms().some(v => v.spec.id === spec(i).id)
      reader.close()
      return { ok: r.ok, seen }
    })
    expect(await Promise.all(commits)).toEqual(Array.from({ length: 8 }, () => ({ ok: true, seen: true })))
    expect(local.summaries()).toHaveLength(8)
    expect(local.ledger.used).toEqual({ cpu: 8, memMiB: 2048 })
  })

  it('answers a commit retried while the first is on its way to disk with the same outcome', async () => {
    const { local } = node()
    local.reserve(lease(1), { cpu: 1, memMiB: 256 }, undefined, 10_000)
    const [a, b] = await Promise.all([local.commit(lease(1), spec(1)), local.commit(lease(1), spec(1))])
    expect(a).toEqual({ ok: true, state: 'creating' })
    expect(b).toEqual(a)
    expect(local.ledger.used.cpu).toBe(1)
  })

  it('counts a VM on its way to disk for its spread group', async () => {
    const { local } = node()
    local.reserve(lease(1), { cpu: 1, memMiB: 256 }, { spread: 'web' }, 10_000)
    const committing = local.commit(lease(1), spec(1, 'web'))
    expect(local.reserve(lease(2), { cpu: 1, memMiB: 256 }, { spread: 'web' }, 10_000)).toMatchObject({ ok: false, reason: expect.stringMatching(/spread group web/) })
    await committing
    expect(local.reserve(lease(3), { cpu: 1, memMiB: 256 }, { spread: 'web' }, 10_000).ok).toBe(false)
  })

  it('keeps one list of summaries until something changes, and shows a VM running once booted', async () => {
    const { local, store } = node()
    local.reserve(lease(1), { cpu: 1, memMiB: 256 }, undefined, 10_000)
    await local.commit(lease(1), spec(1))
    const first = local.summaries()
    expect(local.summaries()).toBe(first)
    expect(first[0].state).toBe('creating')
    await new Promise(resolve => setTimeout(resolve, 30))
    const after = local.summaries()
    expect(after).not.toBe(first)
    expect(after[0].state).toBe('running')
    store.flush()
    expect(store.listVms()[0].state).toBe('running')
  })

  it('deletes durably, once, even when asked twice at the same time', async () => {
    const { local, store } = node()
    local.reserve(lease(1), { cpu: 1, memMiB: 256 }, undefined, 10_000)
    await local.commit(lease(1), spec(1))
    const [a, b] = await Promise.all([local.deleteVm(spec(1).id), local.deleteVm(spec(1).id)])
    expect([a, b]).toEqual([true, true])
    expect(await local.deleteVm(spec(1).id)).toBe(false)
    expect(store.listVms()).toEqual([])
    expect(local.ledger.used).toEqual({ cpu: 0, memMiB: 0 })
    expect(local.summaries()).toEqual([])
  })

  it('does not answer a user\'s delete as done when it meets our copy leaving because a later one runs elsewhere (fenced)', async () => {
    const { local, store } = node()
    local.reserve(lease(1), { cpu: 1, memMiB: 256 }, undefined, 10_000)
    await local.commit(lease(1), spec(1))
    const [moved, user] = await Promise.all([local.deleteVm(spec(1).id, 'moved'), local.deleteVm(spec(1).id, 'user')])
    // Our copy is gone; the VM is not deleted: it runs on at the node that fenced us, where the delete must go.
    expect([moved, user]).toEqual([true, false])
    expect(store.listVms()).toEqual([])
  })

  it('answers a commit asked again after its VM left (fenced, moved, deleted) as taken, not as no such reservation', async () => {
    // Seen in a chaos run: the owner took a create's commit and was killed before answering; restarted, it was
    // fenced by the restart a holder had made meanwhile; the placer's commit asked again then heard "no such
    // reservation" and placed a second copy elsewhere, with a chain of its own.
    const { local, dir } = node()
    local.reserve(lease(1), { cpu: 1, memMiB: 256 }, undefined, 10_000)
    expect(await local.commit(lease(1), spec(1))).toEqual({ ok: true, state: 'creating' })
    // The same node after a restart on its data dir: the VM comes back from the store, then is fenced.
    const again = node()
    const { local: restarted, store: store2 } = node(undefined, dir)
    expect(await restarted.restore()).toBe(1)
    expect(await restarted.remove(spec(1).id, 'moved')).toBe('deleted')
    expect(await restarted.commit(lease(1), spec(1))).toEqual({ ok: true, state: 'creating' })
    // Never taken here: the lease is unknown, and that answer stands.
    expect(await restarted.commit(lease(2), spec(2))).toEqual({ ok: false, reason: 'no such reservation' })
    // Restarted once more after the fence: the departure was stored with the delete, and is remembered.
    store2.close()
    const { local: third, store: store3 } = node(undefined, dir)
    expect(await third.restore()).toBe(0)
    expect(await third.commit(lease(1), spec(1))).toEqual({ ok: true, state: 'creating' })
    expect(await third.commit(lease(2), spec(2))).toEqual({ ok: false, reason: 'no such reservation' })
    expect(store3.departures(0).map(d => [d.id, d.why])).toEqual([[spec(1).id, 'moved']])
    // Older than the ten minutes kept: not listed, and once forgotten, gone.
    expect(store3.departures(Date.now() + 1)).toEqual([])
    store3.forgetDepartures(Date.now() + 1)
    expect(store3.departures(0)).toEqual([])
    // A user's delete: taken, and deleted (the placer must not place it again).
    again.local.reserve(lease(3), { cpu: 1, memMiB: 256 }, undefined, 10_000)
    await again.local.commit(lease(3), spec(3))
    expect(await again.local.remove(spec(3).id, 'user')).toBe('deleted')
    expect(await again.local.commit(lease(3), spec(3))).toEqual({ ok: true, state: 'deleted' })
    expect(again.local.summaries()).toEqual([])
    expect(again.local.ledger.used.cpu).toBe(0)
  })
})
