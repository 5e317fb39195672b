/**
 * The one base of the project's error classes, pure so that every layer may
 * import it. A subclass declares its `static name` (which survives bundling
 * and minifying, unlike the class's own name) and a `static defaultMessage`,
 * and nothing else: the base gives each instance that name and, when the
 * thrower passes no message, that message. Callers compare `err.name`.
 *
 *     export class VmNotFoundError extends DiscoveryError {
 *       static name = 'VmNotFoundError'
 *       static defaultMessage = 'no such VM'
 *     }
 */
export class DiscoveryError extends Error {
  static name = 'DiscoveryError'
  static defaultMessage = 'the operation failed'

  constructor (message?: string, options?: ErrorOptions) {
    const self = new.target as typeof DiscoveryError
    super(message ?? self.defaultMessage, options)
    this.name = self.name
  }
}
