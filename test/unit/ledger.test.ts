import { describe, expect, it } from 'vitest'
import { CLOSED_LEASE_KEEP_MS, CLOSED_LEASE_MAX, Ledger } from '../../src/core/ledger.ts'
import { free, type Resources } from '../../src/core/resources.ts'
import { seededRng } from '../../src/core/rng.ts'

const r = (cpu: number, memMiB: number): Resources => ({ cpu, memMiB })
const CAP = r(4, 4096)
const TTL = 1000

describe('reserve', () => {
  it.each<{ name: string, ratio: number, running: Resources, ask: Resources, ok: boolean }>([
    { name: 'fits in an empty node', ratio: 1, running: r(0, 0), ask: r(2, 1024), ok: true },
    { name: 'takes the whole node', ratio: 1, running: r(0, 0), ask: r(4, 4096), ok: true },
    { name: 'one vCPU too many', ratio: 1, running: r(0, 0), ask: r(5, 1024), ok: false },
    { name: 'one MiB too many', ratio: 1, running: r(0, 0), ask: r(1, 4097), ok: false },
    { name: 'fits next to a running VM', ratio: 1, running: r(2, 2048), ask: r(2, 2048), ok: true },
    { name: 'does not fit next to a running VM', ratio: 1, running: r(2, 2048), ask: r(3, 1024), ok: false },
    { name: 'CPU over-commit 2: 8 vCPU of 4', ratio: 2, running: r(0, 0), ask: r(8, 1024), ok: true },
    { name: 'CPU over-commit 2: 9 vCPU of 4', ratio: 2, running: r(0, 0), ask: r(9, 1024), ok: false },
    { name: 'CPU over-commit 2 next to a running VM', ratio: 2, running: r(4, 1024), ask: r(4, 1024), ok: true },
    { name: 'CPU over-commit 1.5 rounds down to 6', ratio: 1.5, running: r(0, 0), ask: r(6, 1024), ok: true },
    { name: 'CPU over-commit 1.5: 7 vCPU refused', ratio: 1.5, running: r(0, 0), ask: r(7, 1024), ok: false },
    { name: 'memory is never over-committed', ratio: 4, running: r(0, 2048), ask: r(1, 2049), ok: false }
  ])('$name → ok $ok', ({ ratio, running, ask, ok }) => {
    const ledger = new Ledger(CAP, ratio)
    ledger.addVm('vm-running', running)
    const res = ledger.reserve('l1', ask, TTL, 0)
    expect(res.ok).toBe(ok)
    expect(ledger.reserved).toEqual(ok ? ask : r(0, 0))
    expect(ledger.leaseCount).toBe(ok ? 1 : 0)
    expect(ledger.used).toEqual(running)
  })

  it('counts earlier reservations against capacity', () => {
    const ledger = new Ledger(CAP)
    expect(ledger.reserve('a', r(2, 1024), TTL, 0)).toEqual({ ok: true })
    expect(ledger.reserve('b', r(2, 1024), TTL, 0)).toEqual({ ok: true })
    expect(ledger.reserve('c', r(1, 1024), TTL, 0).ok).toBe(false)
    expect(ledger.free).toEqual(r(0, 2048))
    expect(ledger.reserved).toEqual(r(4, 2048))
  })

  it.each<{ running: Resources, ask: Resources, need: string, free: string }>([
    { running: r(0, 0), ask: r(5, 1024), need: 'need 5 vCPU / 1024 MiB', free: 'free 4 vCPU / 4096 MiB' },
    { running: r(3, 1000), ask: r(2, 4000), need: 'need 2 vCPU / 4000 MiB', free: 'free 1 vCPU / 3096 MiB' },
    // Over-committed by a direct addVm: free is shown as 0, not negative.
    { running: r(6, 5000), ask: r(1, 1), need: 'need 1 vCPU / 1 MiB', free: 'free 0 vCPU / 0 MiB' }
  ])('a refusal says what was needed ($need) and what was free ($free)', ({ running, ask, need, free: freeText }) => {
    const ledger = new Ledger(CAP)
    ledger.addVm('vm-running', running)
    const res = ledger.reserve('l1', ask, TTL, 0)
    expect(res.ok).toBe(false)
    if (res.ok) return
    expect(res.reason).toContain(need)
    expect(res.reason).toContain(freeText)
  })

  it('refuses a lease id already in use and keeps the first lease', () => {
    const ledger = new Ledger(CAP)
    expect(ledger.reserve('dup', r(1, 512), TTL, 0).ok).toBe(true)
    const res = ledger.reserve('dup', r(1, 512), TTL, 10)
    expect(res).toEqual({ ok: false, reason: 'lease id already in use' })
    expect(ledger.reserved).toEqual(r(1, 512))
    expect(ledger.leaseCount).toBe(1)
  })

  it('frees an expired lease\'s room, but never takes its id again', () => {
    const ledger = new Ledger(CAP)
    ledger.reserve('dup', r(1, 512), TTL, 0)
    expect(ledger.reserve('dup', r(2, 512), TTL, TTL).ok).toBe(false)
    expect(ledger.reserved).toEqual(r(0, 0))
    expect(ledger.leaseCount).toBe(0)
  })

  it('expires old leases first, so their room can be promised again', () => {
    const ledger = new Ledger(CAP)
    ledger.reserve('old', r(4, 4096), TTL, 0)
    expect(ledger.reserve('new', r(1, 1), TTL, TTL - 1).ok).toBe(false)
    expect(ledger.reserve('new', r(4, 4096), TTL, TTL).ok).toBe(true)
    expect(ledger.audit().reserved).toEqual(r(4, 4096))
  })
})

describe('commit', () => {
  it('turns a live lease into used', () => {
    const ledger = new Ledger(CAP)
    ledger.reserve('l1', r(2, 1024), TTL, 0)
    expect(ledger.commit('l1', 'vm-1', TTL - 1)).toEqual({ ok: true, resources: r(2, 1024) })
    expect(ledger.used).toEqual(r(2, 1024))
    expect(ledger.reserved).toEqual(r(0, 0))
    expect(ledger.leaseCount).toBe(0)
    expect(ledger.hasVm('vm-1')).toBe(true)
    expect(ledger.free).toEqual(r(2, 3072))
  })

  it.each<{ name: string, commitAt: number, result: unknown, used: Resources }>([
    { name: 'just before expiry', commitAt: TTL - 1, result: { ok: true, resources: r(2, 1024) }, used: r(2, 1024) },
    { name: 'at expiry', commitAt: TTL, result: { ok: false, reason: 'expired' }, used: r(0, 0) },
    { name: 'long after expiry', commitAt: TTL * 10, result: { ok: false, reason: 'expired' }, used: r(0, 0) }
  ])('$name', ({ commitAt, result, used }) => {
    const ledger = new Ledger(CAP)
    ledger.reserve('l1', r(2, 1024), TTL, 0)
    expect(ledger.commit('l1', 'vm-1', commitAt)).toEqual(result)
    expect(ledger.used).toEqual(used)
    // Either way the lease is gone and its reservation given back.
    expect(ledger.reserved).toEqual(r(0, 0))
    expect(ledger.leaseCount).toBe(0)
  })

  it('refuses an unknown lease, and a lease committed already', () => {
    const ledger = new Ledger(CAP)
    expect(ledger.commit('nope', 'vm-1', 0)).toEqual({ ok: false, reason: 'unknown-lease' })
    ledger.reserve('l1', r(1, 512), TTL, 0)
    expect(ledger.commit('l1', 'vm-1', 1).ok).toBe(true)
    expect(ledger.commit('l1', 'vm-2', 2)).toEqual({ ok: false, reason: 'unknown-lease' })
    expect(ledger.used).toEqual(r(1, 512))
    expect(ledger.hasVm('vm-2')).toBe(false)
  })
})

describe('closed lease ids', () => {
  it.each<[string, (l: Ledger) => void]>([
    ['committed', l => { l.reserve('l1', r(1, 100), TTL, 0); l.commit('l1', 'vm-1', 1) }],
    ['released', l => { l.reserve('l1', r(1, 100), TTL, 0); l.release('l1', 1) }],
    ['expired', l => { l.reserve('l1', r(1, 100), TTL, 0); l.expire(TTL + 1) }],
    ['asked to commit before it existed', l => { l.commit('l1', 'vm-1', 1) }],
    ['asked to release before it existed', l => { l.release('l1', 1) }]
  ])('refuses to reserve a lease id once it was %s', (_, before) => {
    const ledger = new Ledger(CAP)
    before(ledger)
    const used = ledger.used
    const again = ledger.reserve('l1', r(1, 100), TTL, TTL + 2)
    expect(again.ok).toBe(false)
    expect(again.ok ? '' : again.reason).toMatch(/already used/)
    expect(ledger.reserved).toEqual(r(0, 0))
    expect(ledger.used).toEqual(used)
    // Another id is taken as usual.
    expect(ledger.reserve('l2', r(1, 100), TTL, TTL + 2)).toEqual({ ok: true })
  })

  it('forgets a closed lease id after a while, and keeps at most a bounded number', () => {
    const ledger = new Ledger(CAP)
    ledger.commit('old', 'vm-1', 0)
    ledger.expire(CLOSED_LEASE_KEEP_MS + 1)
    expect(ledger.reserve('old', r(1, 100), TTL, CLOSED_LEASE_KEEP_MS + 1)).toEqual({ ok: true })
    const bounded = new Ledger(CAP)
    for (let i = 0; i <= CLOSED_LEASE_MAX; i++) bounded.release(`l${i}`, 1)
    expect(bounded.reserve('l0', r(1, 100), TTL, 2)).toEqual({ ok: true })
    expect(bounded.reserve('l1', r(1, 100), TTL, 2).ok).toBe(false)
  })
})

describe('release', () => {
  it('gives a lease back once', () => {
    const ledger = new Ledger(CAP)
    ledger.reserve('l1', r(3, 3000), TTL, 0)
    ledger.reserve('l2', r(1, 1000), TTL, 0)
    expect(ledger.release('l1', 0)).toBe(true)
    expect(ledger.reserved).toEqual(r(1, 1000))
    expect(ledger.release('l1', 0)).toBe(false)
    expect(ledger.reserved).toEqual(r(1, 1000))
    expect(ledger.release('unknown', 0)).toBe(false)
    expect(ledger.commit('l1', 'vm-1', 1)).toEqual({ ok: false, reason: 'unknown-lease' })
  })
})

describe('expire', () => {
  it.each<{ now: number, expired: string[], reserved: Resources }>([
    { now: 0, expired: [], reserved: r(3, 1536) },
    { now: 99, expired: [], reserved: r(3, 1536) },
    { now: 100, expired: ['a'], reserved: r(2, 1024) },
    { now: 250, expired: ['a', 'c'], reserved: r(1, 512) },
    { now: 300, expired: ['a', 'b', 'c'], reserved: r(0, 0) }
  ])('at $now returns $expired', ({ now, expired, reserved }) => {
    const ledger = new Ledger(CAP)
    ledger.reserve('a', r(1, 512), 100, 0)
    ledger.reserve('b', r(1, 512), 300, 0)
    ledger.reserve('c', r(1, 512), 200, 0)
    expect(ledger.expire(now).sort()).toEqual(expired)
    expect(ledger.reserved).toEqual(reserved)
    expect(ledger.audit().reserved).toEqual(reserved)
    expect(ledger.leaseCount).toBe(3 - expired.length)
    // A second call finds nothing more.
    expect(ledger.expire(now)).toEqual([])
  })
})

describe('VMs', () => {
  it('addVm replaces the usage of a VM it already has; removeVm gives it back once', () => {
    const ledger = new Ledger(CAP)
    ledger.addVm('vm-1', r(1, 512))
    ledger.addVm('vm-1', r(2, 1024))
    expect(ledger.used).toEqual(r(2, 1024))
    expect(ledger.removeVm('vm-1')).toBe(true)
    expect(ledger.removeVm('vm-1')).toBe(false)
    expect(ledger.used).toEqual(r(0, 0))
    expect(ledger.hasVm('vm-1')).toBe(false)
  })
})

describe('audit after random sequences', () => {
  const seeds = [1, 2, 42, 1337, 20_240_601, 0xC0FFEE, 987_654_321, 7]

  it.each(seeds)('totals match a recount after 500 random operations (seed %i)', (seed) => {
    const rng = seededRng(seed)
    const int = (n: number) => Math.floor(rng.next() * n)
    const ratio = [1, 1.5, 2][int(3)]
    const capacity = r(16, 32768)
    const ledger = new Ledger(capacity, ratio)
    const leases: string[] = []
    const vms: string[] = []
    let now = 0
    let nextId = 0
    let reservedOk = 0

    for (let step = 0; step < 500; step++) {
      const where = `seed ${seed}, step ${step}`
      now += int(50)
      const op = int(6)
      if (op <= 1) {
        const id = `l${nextId++}`
        const res = ledger.reserve(id, r(int(6), int(8) * 512), 50 + int(400), now)
        if (res.ok) { leases.push(id); reservedOk++ }
      } else if (op === 2 && leases.length > 0) {
        const id = leases.splice(int(leases.length), 1)[0]
        const vmId = `vm-${id}`
        if (ledger.commit(id, vmId, now).ok) vms.push(vmId)
      } else if (op === 3 && leases.length > 0) {
        ledger.release(leases.splice(int(leases.length), 1)[0], now)
      } else if (op === 4) {
        ledger.expire(now)
      } else if (op === 5 && vms.length > 0) {
        expect(ledger.removeVm(vms.splice(int(vms.length), 1)[0]), where).toBe(true)
      }

      const audit = ledger.audit()
      expect(ledger.used, where).toEqual(audit.used)
      expect(ledger.reserved, where).toEqual(audit.reserved)
      // Nothing is ever promised beyond capacity (CPU times the ratio, memory as is).
      expect(free(capacity, { cpu: audit.used.cpu + audit.reserved.cpu, memMiB: audit.used.memMiB + audit.reserved.memMiB }, ratio).cpu, where).toBeGreaterThanOrEqual(0)
      expect(capacity.memMiB - audit.used.memMiB - audit.reserved.memMiB, where).toBeGreaterThanOrEqual(0)
      expect(vms.every(id => ledger.hasVm(id)), where).toBe(true)
    }
    // The run must have exercised reservations, or the check above proved little.
    expect(reservedOk).toBeGreaterThan(20)
  })
})
