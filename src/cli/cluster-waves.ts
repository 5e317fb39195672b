/**
 * The plan of `cluster up`, without I/O: how many agents start at once, whom
 * each one dials first, and when a cluster coming up has stopped making
 * progress. A hundred agents started at once on two cores each wait seconds
 * for the CPU before they answer, and their health checks time out; in waves
 * each wave is answering before the next one starts, and a slow machine only
 * makes the whole take longer.
 */

/**
 * Agents started at once: four per core. One agent's start costs about 0.5 s
 * of CPU (bin/bundle.js): a wave answers in about half a second of each
 * core, while the agents already up take in the newcomers.
 */
export function waveSize (cores: number): number {
  return Math.max(4, 4 * Math.max(1, Math.floor(cores)))
}

/**
 * Agents a core held on this kind of 2-core machine (docs/many-agents.md):
 * 200 on two cores came up, fifty to a process, and idled at under half a
 * core; 400 saturated both while they came up (once up after 431 s, once
 * not); 1,000 answered but their views had not converged after 9.5
 * minutes. An idle agent costs about 0.2 % of a core fifty to a process
 * (its messages and their garbage, not its timers) and more alone, so past
 * this many a core the cores are the limit however the agents are grouped.
 */
export const AGENTS_PER_CORE_HELD = 150

/**
 * What `cluster up` says before it starts, when the machine is small for
 * the cluster asked (undefined: nothing to say): past 12 agents a core one
 * to a process, several to a process come up faster (each agent alone
 * takes about 2 s of CPU to start and join); past AGENTS_PER_CORE_HELD a
 * core, the cluster may not come up at all.
 */
export function crowdingAdvice (nodes: number, perProcess: number, cores: number): string | undefined {
  const c = Math.max(1, Math.floor(cores))
  if (nodes > AGENTS_PER_CORE_HELD * c) {
    return `${nodes} agents on ${c} core${c === 1 ? '' : 's'}: past about ${AGENTS_PER_CORE_HELD} agents a core their idle messages alone take the cores, and they may not come up (1,000 on 2 cores answered but had not converged after 9.5 minutes; README, Many agents on one machine)`
  }
  if (perProcess === 1 && nodes > 12 * c) {
    return `${nodes} agents one to a process on ${c} core${c === 1 ? '' : 's'}: expect minutes to come up; \`--per-process 10\` starts them about twice as fast in a quarter of the memory (each process then fails as one)`
  }
  return undefined
}

/** The waves of `nodes` agents: indexes, in order. With ports picked by the system, agent 0 comes alone first (the others need its address). */
export function waves (nodes: number, size: number, autoPorts: boolean): number[][] {
  const out: number[][] = []
  let i = 0
  if (autoPorts && nodes > 0) {
    out.push([0])
    i = 1
  }
  while (i < nodes) {
    const wave: number[] = []
    for (; i < nodes && wave.length < size; i++) wave.push(i)
    out.push(wave)
  }
  return out
}

/**
 * Agents an agent dials first, among those already up (`up`, in the order
 * they came up): up to three, spread over the cluster so that no one agent
 * takes every newcomer's first connection (each newcomer also syncs its view
 * from the first it reaches).
 */
export function bootstrapFor (index: number, up: readonly number[]): number[] {
  if (up.length === 0) return []
  const picks = new Set<number>()
  const want = Math.min(3, up.length)
  // A stride of 7 from a start of the index's own: the agents up are visited in an order of their own per newcomer.
  for (let j = 0; picks.size < want && j < up.length * 7; j++) picks.add(up[(index * 13 + 7 * j) % up.length])
  for (const k of up) { if (picks.size >= want) break; picks.add(k) }
  return [...picks]
}

/**
 * Whether a cluster coming up still makes progress: `progress(score, now)`
 * is fed a number that grows while it does (agents answering, peers seen
 * alive); `stalled(now)` is true once it has not grown for `stallMs`.
 */
export class StallWatch {
  readonly #stallMs: number
  #best = -Infinity
  #since: number

  constructor (stallMs: number, nowMs: number) {
    this.#stallMs = stallMs
    this.#since = nowMs
  }

  /** Records the current score; true if it is higher than ever before. */
  progress (score: number, nowMs: number): boolean {
    if (score <= this.#best) return false
    this.#best = score
    this.#since = nowMs
    return true
  }

  /** Milliseconds since the score last grew. */
  idleMs (nowMs: number): number {
    return nowMs - this.#since
  }

  stalled (nowMs: number): boolean {
    return this.idleMs(nowMs) >= this.#stallMs
  }
}
