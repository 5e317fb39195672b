/**
 * The chaos harness (`discovery chaos`): starts real agent processes (or
 * attaches to a local cluster), runs a workload through them while a seeded
 * schedule kills, restarts, pauses and partitions them, records every request
 * in a history, and afterwards has a checker that knows nothing of the agents'
 * workings judge the history against DESIGN.md's invariants; then writes the
 * report (JSON and a self-contained HTML page). The schedule (schedule.ts),
 * the checker (checker.ts) and the HTML (report-html.ts) are pure; the rest
 * does the I/O.
 */
export { check, type CheckResult, type Violation } from './checker.ts'
export { crashLines, type Observations, type Op, outcome } from './history.ts'
export { type ChaosOptions, parseChaosOptions, replayCommand } from './options.ts'
export { type ChaosReport, summaryText } from './report.ts'
export { runChaos } from './run.ts'
export { buildSchedule, scheduleMaxDown } from './schedule.ts'
