/**
 * A partition on the simulator (sim/swim-world.ts): the cluster is cut in
 * two halves, silently (what crosses is lost: no connection reset tells
 * anyone), and every node must come to hold every member of the other side
 * dead. Updates ride on a bounded number of messages, most of them lost
 * across the cut, and quorums differ where views of who is alive differ:
 * without the syncs (core/swim-sync.ts), the confirmations of members held
 * dead and the overdue rule (core/swim-members.ts), some nodes held a member
 * of the other side suspect, or alive, for as long as the partition lasted
 * (each case below did, for 60 s). Each case names its seed.
 */
import { describe, expect, it } from 'vitest'
import { DETECTOR_PROFILES } from '../../src/core/detector-config.ts'
import { SwimWorld } from '../../src/sim/swim-world.ts'
import { shuffled } from './shuffled.ts'

/** Nothing lost but across the cut, 1–3 ms each way. */
const TCP = { baseMs: 1, jitterMs: 2, loss: 0 }
const BOUND_MS = 60_000

function halves (n: number, seed: number): [number[], number[]] {
  const order = shuffled(Array.from({ length: n }, (_, i) => i), seed)
  return [order.slice(0, Math.floor(n / 2)), order.slice(Math.floor(n / 2))]
}

/** What is not yet as it should be: "a sees b suspect" for each a, b on different sides not dead to a. */
function undecided (w: SwimWorld, L: number[], R: number[]): string[] {
  const out: string[] = []
  for (const [from, to] of [[L, R], [R, L]]) for (const a of from) for (const b of to) if (w.statusOf(a, b) !== 'dead') out.push(`${a} sees ${b} ${String(w.statusOf(a, b))}`)
  return out
}

describe('a silent partition in two halves', () => {
  it.each([
    { nodes: 6, seed: 9, lagMs: 0 },
    { nodes: 6, seed: 8, lagMs: 200 },
    { nodes: 10, seed: 2, lagMs: 0 },
    { nodes: 20, seed: 7, lagMs: 0 },
    { nodes: 20, seed: 19, lagMs: 50 },
    { nodes: 40, seed: 2, lagMs: 0 },
    { nodes: 40, seed: 13, lagMs: 200 },
    // Undecided for minutes before each observer told the member's other observers its own accusation (swim-sync.ts
    // `about`), a member held dead passed on the accusers it heard of later (swim-members.ts), and the periodic syncs
    // went round the list of members not alive instead of naming its first 24 every time.
    { nodes: 40, seed: 7, lagMs: 0 },
    { nodes: 60, seed: 3, lagMs: 0 },
    { nodes: 80, seed: 1, lagMs: 0, boundMs: 90_000 },
    { nodes: 120, seed: 2, lagMs: 200, boundMs: 120_000 }
  ])('leaves every node holding the other side dead within the bound ($nodes nodes, seed $seed, timers late by up to $lagMs ms)', ({ nodes, seed, lagMs, boundMs = BOUND_MS }) => {
    const w = new SwimWorld({ nodes, seed, config: DETECTOR_PROFILES.local, link: TCP, lagMs })
    w.run(10_000)
    const [L, R] = halves(nodes, seed)
    for (const a of L) for (const b of R) { w.block(a, b); w.block(b, a) }
    const t0 = w.now
    while (w.now - t0 < boundMs && undecided(w, L, R).length > 0) w.run(w.now + 500)
    expect(undecided(w, L, R).slice(0, 8), `seed ${seed}: after ${w.now - t0} ms`).toEqual([])
    // Nobody on its own side was declared dead on the way.
    const ownSide: string[] = []
    for (const side of [L, R]) for (const a of side) for (const b of side) if (a !== b && w.statusOf(a, b) === 'dead') ownSide.push(`${a} sees ${b} dead`)
    expect(ownSide, `seed ${seed}`).toEqual([])
  })
})
