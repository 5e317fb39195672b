/**
 * Yamux window updates as the spec's reference implementation sends them.
 * @chainsafe/libp2p-yamux (7.0.4) sends a WINDOW_UPDATE frame after every
 * data frame its reader consumes, whatever its size: for the failure
 * detector's pings and acks (about 100 bytes each) one more frame, one more
 * noise message and one more system call on each side for every message —
 * a third of an idle agent's writes on one host (`strace`). hashicorp/yamux
 * and go-yamux send one only once half of the receive window has been
 * consumed (or with a flag: the SYN or ACK of a new stream). So does this:
 * the sender always keeps at least half a window (128 KiB at first) to write
 * into, and a bulk transfer still gets its window back as fast as it reads.
 */
import { StreamState, YamuxStream } from '@chainsafe/libp2p-yamux/stream'
import { DiscoveryError } from '../../core/errors.ts'

/** What the patch reaches into changed (a yamux upgrade): it says what to re-check. */
export class UnexpectedYamuxError extends DiscoveryError {
  static name = 'UnexpectedYamuxError'
  static defaultMessage = 'YamuxStream is not what src/net/patches/yamux-window.ts was written against: re-check it against @chainsafe/libp2p-yamux'
}

const PATCHED = Symbol.for('discovery.yamuxWindowUpdates')

interface StreamFields { state: StreamState, recvWindow: number, recvWindowCapacity: number }

/** Installs the rule on YamuxStream's prototype, once per process. */
export function installYamuxWindowUpdates (): void {
  const proto = YamuxStream.prototype as unknown as Record<string | symbol, unknown>
  if (proto[PATCHED] === true) return
  const original = proto.sendWindowUpdate
  if (typeof original !== 'function' || original.length !== 0) throw new UnexpectedYamuxError('YamuxStream.prototype.sendWindowUpdate() is gone or takes arguments: re-check src/net/patches/yamux-window.ts against @chainsafe/libp2p-yamux')
  if (StreamState.SYNReceived !== 2 || StreamState.Init !== 0) throw new UnexpectedYamuxError('yamux\'s StreamState values changed: re-check src/net/patches/yamux-window.ts against @chainsafe/libp2p-yamux')
  proto.sendWindowUpdate = function (this: StreamFields): void {
    // Init and SYNReceived: the update carries the stream's SYN or ACK, and must go.
    const flagged = this.state === StreamState.Init || this.state === StreamState.SYNReceived
    if (!flagged && this.recvWindow - this.recvWindowCapacity < this.recvWindow / 2) return
    original.call(this)
  }
  proto[PATCHED] = true
}
