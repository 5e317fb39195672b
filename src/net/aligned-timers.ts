/**
 * Periodic work on one timer: each task runs at the multiples of its period
 * on the clock (every whole second for a 1 s task, every quarter second for
 * a 250 ms one), and every task due within a few milliseconds of the first
 * runs in the same turn of the event loop. An agent's one-second intervals —
 * its tick, the redialer, the round trips, the rebalancing monitor — and the
 * process watch each had a timer of its own, at phases of their own, so the
 * process woke for each: `strace` of one of 100 idle agents on one host
 * showed four wake-ups within 110 ms every second besides the process
 * watch's four, and a Node process that wakes to do nothing costs about
 * 80 µs a wake-up there (100 processes waking 20 times a second: 16 % of a
 * core). One timer per process (the agents of a `--per-process` group share
 * it), unref'd: it never keeps a process alive.
 *
 * The grid is the same in every process, so the agents of one host wake
 * together, on purpose: a trial that shifted each process's grid by a phase
 * from its pid cost more, not less (`cluster up --nodes 100`, one after the
 * other: 54–70 % of one core idle for the 100, 258 s of CPU until all were
 * up, 13 blocking waits a second for one agent; aligned, 35–42 %, 196 s and
 * 8.4). Why is a guess: woken together, the processes run one after
 * another on the same binary's code the cores still hold; woken apart, each
 * comes to a cold core. Whether the bursts delay requests under load is not
 * measured apart from the machine's noise.
 *
 * Like setInterval, a task that throws throws out of the timer (an uncaught
 * exception); the schedule was set before the tasks run. A run that comes
 * late (a busy event loop) is not made up for: the next is the next multiple.
 */

/** How close to its due time a task may run early, to share a wake-up with one due before it. */
export const SHARED_WAKE_MS = 5

interface Task {
  periodMs: number
  nextMs: number
  fn: () => void
}

const tasks = new Set<Task>()
let timer: ReturnType<typeof setTimeout> | undefined
let timerAtMs = Infinity

/** The first multiple of `periodMs` after `nowMs`. */
function alignedAfter (nowMs: number, periodMs: number): number {
  return (Math.floor(nowMs / periodMs) + 1) * periodMs
}

function arm (): void {
  let next = Infinity
  for (const t of tasks) next = Math.min(next, t.nextMs)
  if (timer != null && next === timerAtMs) return
  clearTimeout(timer)
  timer = undefined
  timerAtMs = next
  if (next === Infinity) return
  timer = setTimeout(fire, Math.max(0, next - Date.now()))
  timer.unref()
}

function fire (): void {
  timer = undefined
  timerAtMs = Infinity
  const now = Date.now()
  const due: Task[] = []
  for (const t of tasks) {
    // A clock set back: due again at the next multiple rather than after the jump.
    if (t.nextMs - now > t.periodMs) t.nextMs = alignedAfter(now, t.periodMs)
    if (t.nextMs > now + SHARED_WAKE_MS) continue
    due.push(t)
    t.nextMs = alignedAfter(Math.max(now, t.nextMs), t.periodMs)
  }
  arm()
  for (const t of due) if (tasks.has(t)) t.fn()
}

/** A task of `everyAligned`, stopped by `clear` (again: nothing). */
export interface AlignedTask {
  clear: () => void
}

/** Runs `fn` every `periodMs` (at its multiples on the clock) until `clear`. */
export function everyAligned (periodMs: number, fn: () => void): AlignedTask {
  if (!(periodMs > 0) || !Number.isFinite(periodMs)) throw new RangeError(`Expected a period in ms above 0, got ${periodMs}`)
  const task: Task = { periodMs, nextMs: alignedAfter(Date.now(), periodMs), fn }
  tasks.add(task)
  arm()
  return {
    clear: () => {
      if (!tasks.delete(task)) return
      arm()
    }
  }
}

/** How many tasks are scheduled (tests). */
export function alignedTasks (): number {
  return tasks.size
}
