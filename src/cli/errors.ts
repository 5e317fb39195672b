/** The two ways a command fails, each with its exit code. */
import { DiscoveryError } from '../core/errors.ts'

/** Bad usage: the command line itself is wrong. Exit code 2. */
export class UsageError extends DiscoveryError {
  static name = 'UsageError'
  static defaultMessage = 'bad usage: see --help'
}

/** The operation was tried and failed. Exit code 1. */
export class OperationError extends DiscoveryError {
  static name = 'OperationError'
  static defaultMessage = 'the operation failed'
}
