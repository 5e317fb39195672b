/**
 * An AbortSignal that aborts after `ms` unless cleared first. Node's
 * `AbortSignal.timeout` cannot be cleared: its timer fires whatever became of
 * the request, and aborting a signal that libp2p's streams still listen to
 * builds a DOMException with its stack each time — per request on paths taken
 * hundreds of times a second across a local cluster (1–2 % of an agent's CPU
 * under the placement load). Clear it once the request is done.
 */
export interface Deadline {
  readonly signal: AbortSignal
  clear: () => void
}

export function deadline (ms: number): Deadline {
  const controller = new AbortController()
  const timer = setTimeout(() => { controller.abort(new DOMException(`timed out after ${ms} ms`, 'TimeoutError')) }, ms)
  timer.unref()
  return { signal: controller.signal, clear: () => { clearTimeout(timer) } }
}

/** Runs `f` with a deadline's signal, and clears the deadline however `f` ends. */
export async function withDeadline<T> (ms: number, f: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const { signal, clear } = deadline(ms)
  try {
    return await f(signal)
  } finally {
    clear()
  }
}
