/**
 * The parts of the hostile-input campaign (`../fuzz.ts`, `discovery chaos
 * --fuzz N`): the mutations drawn by fast-check (mutate.ts), the valid-shaped
 * messages of each entry point and what keeps a valid variant harmless
 * (corpus.ts), the HTTP requests (http.ts), the rogue peer's raw streams
 * (streams.ts), one entry point's run and tally (entries.ts), and the state
 * compared before and after (snapshot.ts).
 */
export { drawArbitrary, mutate, damage, frame, sampleDraws } from './mutate.ts'
export type { Draw, Mutation, MutationKind, FrameKind, TextDamage } from './mutate.ts'
export { httpCases, sendHttp, COUNTED_STATUSES } from './http.ts'
export { differences, snapshot, invalidCounts } from './snapshot.ts'
