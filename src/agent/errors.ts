/** One error class per failure the agent reports; callers compare `err.name`. */
export class NoCapacityError extends Error {
  static name = 'NoCapacityError'
  constructor (message = 'no node can host this VM') {
    super(message)
    this.name = NoCapacityError.name
  }
}

export class VmNotFoundError extends Error {
  static name = 'VmNotFoundError'
  constructor (message = 'no such VM') {
    super(message)
    this.name = VmNotFoundError.name
  }
}

export class PeerUnreachableError extends Error {
  static name = 'PeerUnreachableError'
  constructor (message = 'the peer that owns this VM cannot be reached') {
    super(message)
    this.name = PeerUnreachableError.name
  }
}

export class PlacementUncertainError extends Error {
  static name = 'PlacementUncertainError'
  constructor (message = 'the chosen node did not confirm the VM; it may still appear') {
    super(message)
    this.name = PlacementUncertainError.name
  }
}

export class MigrationRefusedError extends Error {
  static name = 'MigrationRefusedError'
  constructor (message = 'the migration was refused') {
    super(message)
    this.name = MigrationRefusedError.name
  }
}
