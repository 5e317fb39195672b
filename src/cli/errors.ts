/** Bad usage: the command line itself is wrong. Exit code 2. */
export class UsageError extends Error {
  static name = 'UsageError'
  constructor (message = 'bad usage: see --help') {
    super(message)
    this.name = UsageError.name
  }
}

/** The operation was tried and failed. Exit code 1. */
export class OperationError extends Error {
  static name = 'OperationError'
  constructor (message = 'the operation failed') {
    super(message)
    this.name = OperationError.name
  }
}
