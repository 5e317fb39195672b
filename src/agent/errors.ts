/** One error class per failure the agent reports; callers compare `err.name`. */
import { DiscoveryError } from '../core/errors.ts'

export class NoCapacityError extends DiscoveryError {
  static name = 'NoCapacityError'
  static defaultMessage = 'no node can host this VM'
}

export class VmNotFoundError extends DiscoveryError {
  static name = 'VmNotFoundError'
  static defaultMessage = 'no such VM'
}

export class PeerUnreachableError extends DiscoveryError {
  static name = 'PeerUnreachableError'
  static defaultMessage = 'the peer that owns this VM cannot be reached'
}

export class PlacementUncertainError extends DiscoveryError {
  static name = 'PlacementUncertainError'
  static defaultMessage = 'the chosen node did not confirm the VM; it may still appear'
}

/**
 * A delete that may or may not hold: sent to the VM's owner, whose answer
 * never came (it may have deleted the VM before its stream closed); or done
 * by the owner, whose tombstone did not reach every live holder of the VM's record in time (should the owner die first, a holder may run the VM again).
 */
export class DeleteUncertainError extends DiscoveryError {
  static name = 'DeleteUncertainError'
  static defaultMessage = 'the delete may or may not hold: the VM\'s owner did not answer, or a holder of its record did not take its tombstone'
}

export class MigrationRefusedError extends DiscoveryError {
  static name = 'MigrationRefusedError'
  static defaultMessage = 'the migration was refused'
}

/** An admin operation on an agent started without `--admin` (the API does not even route it there). */
export class AdminDisabledError extends DiscoveryError {
  static name = 'AdminDisabledError'
  static defaultMessage = 'this agent runs without --admin: it has no admin routes'
}

/** `PUT /v1/vms/:id/demand` on a driver that measures demand (qemu) instead of modelling it. */
export class DemandMeasuredError extends DiscoveryError {
  static name = 'DemandMeasuredError'
  static defaultMessage = 'this driver measures each VM\'s demand: it cannot be set'
}
