/**
 * A list of members that many failure detectors share, for the simulator:
 * at 10,000 simulated nodes, a table of every member in every detector would
 * be 10^8 entries. With a directory, a detector starts knowing every member
 * alive at incarnation (0, 0) and keeps only what it has learnt beyond that
 * (suspicions, refutations, deaths, restarts): memory grows with the events,
 * not with n². The agent does not use one: its members come and go with the
 * view.
 */
export class MemberDirectory {
  readonly ids: readonly string[]
  readonly #index = new Map<string, number>()

  constructor (ids: string[]) {
    this.ids = Object.freeze([...ids])
    this.ids.forEach((id, i) => this.#index.set(id, i))
  }

  get size (): number {
    return this.ids.length
  }

  has (id: string): boolean {
    return this.#index.has(id)
  }
}
