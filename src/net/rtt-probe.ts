/**
 * One round trip to a connected peer over libp2p's ping protocol
 * (`/ipfs/ping/1.0.0`: 32 random bytes out, the same 32 back), timed from
 * the first byte written to the last read, as libp2p's connection monitor
 * times its own pings. `services.ping.ping()` would also count the stream's
 * opening — a second round trip on a link tens of milliseconds long.
 */
import type { Connection } from '@libp2p/interface'
import { randomBytes } from 'node:crypto'
import type { Clock } from '../core/clock.ts'
import { DiscoveryError } from '../core/errors.ts'
import { LIBP2P_UPKEEP_PROTOCOLS } from './protocols.ts'

const PING_PROTOCOL = LIBP2P_UPKEEP_PROTOCOLS[0]
const PING_LENGTH = 32

/** The peer's answer to a ping was not what was sent. */
export class PingMismatchError extends DiscoveryError {
  static name = 'PingMismatchError'
  static defaultMessage = 'the peer did not echo the ping'
}

export async function probeRtt (connection: Connection, clock: Clock, signal: AbortSignal): Promise<number> {
  const stream = await connection.newStream(PING_PROTOCOL, { signal, runOnLimitedConnection: true })
  try {
    const sent = randomBytes(PING_LENGTH)
    const start = clock.now()
    const sending = stream.sink([sent])
    const got: Buffer[] = []
    let n = 0
    for await (const chunk of stream.source) {
      const bytes = Buffer.from(chunk.subarray())
      got.push(bytes)
      n += bytes.byteLength
      if (n >= PING_LENGTH) break
    }
    const ms = clock.now() - start
    await sending
    if (!Buffer.concat(got).subarray(0, PING_LENGTH).equals(sent)) throw new PingMismatchError()
    return ms
  } catch (err) {
    stream.abort(err as Error)
    throw err
  } finally {
    if (stream.status === 'open') await stream.close({ signal }).catch(() => {})
  }
}
