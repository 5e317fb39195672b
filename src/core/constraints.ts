/**
 * Placement constraints, matched in one place: the placing agent's filter,
 * the owner's reservation and the migration admission all ask this function.
 * A node matches when its `zone` label equals the asked zone, it carries every
 * asked label, and it runs no other VM of the asked spread group
 * (anti-affinity).
 */
import type { Constraints } from './messages.ts'

export type ConstraintKind = 'zone' | 'labels' | 'spread'

export interface ConstraintMiss {
  kind: ConstraintKind
  /** One line for a refusal: what the node lacks. */
  reason: string
}

/**
 * Why a node with `labels`, running the spread groups `runsSpread` says it
 * does, cannot take a VM with `constraints`; undefined when it can.
 */
export function constraintMiss (labels: Readonly<Record<string, string>>, constraints: Constraints | undefined, runsSpread: (group: string) => boolean): ConstraintMiss | undefined {
  if (constraints == null) return undefined
  if (constraints.zone != null && labels.zone !== constraints.zone) return { kind: 'zone', reason: `this node is not in zone ${constraints.zone}` }
  if (constraints.labels != null) {
    for (const [k, v] of Object.entries(constraints.labels)) {
      if (labels[k] !== v) return { kind: 'labels', reason: `this node lacks label ${k}=${v}` }
    }
  }
  if (constraints.spread != null && runsSpread(constraints.spread)) return { kind: 'spread', reason: `this node already hosts spread group ${constraints.spread}` }
  return undefined
}
