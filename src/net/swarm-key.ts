/**
 * The private-network key (libp2p pnet): the one thing that decides who may
 * join the cluster. Every connection is encrypted a second time with it, under
 * noise; a peer without the same 32 bytes cannot complete a handshake, so it
 * can neither gossip nor reserve, commit or delete anything.
 *
 * The file's format is go-libp2p's and js-libp2p's (`@libp2p/pnet`), three lines:
 *
 *     /key/swarm/psk/1.0.0/
 *     /base16/
 *     <64 hexadecimal digits: the 32-byte key>
 *
 * `@libp2p/pnet` itself reads only the third line and ignores the first two,
 * and its error names neither the file nor the format; so the file is checked
 * here, whole, before the host starts.
 */
import { randomBytes } from 'node:crypto'
import { readFileSync, statSync } from 'node:fs'
import { DiscoveryError } from '../core/errors.ts'

export const SWARM_KEY_HEADER = '/key/swarm/psk/1.0.0/'
export const SWARM_KEY_CODEC = '/base16/'
export const SWARM_KEY_FORMAT = `three lines: \`${SWARM_KEY_HEADER}\`, \`${SWARM_KEY_CODEC}\`, then 64 hexadecimal digits (make one with \`discovery keygen --out FILE\`)`

export class SwarmKeyError extends DiscoveryError {
  static name = 'SwarmKeyError'
  static defaultMessage = `a swarm key file must hold ${SWARM_KEY_FORMAT}`
}

/** A swarm key file's text for 32 random bytes (or the given ones). */
export function formatSwarmKey (key: Uint8Array = randomBytes(32)): string {
  if (key.byteLength !== 32) throw new SwarmKeyError(`a swarm key is 32 bytes, got ${key.byteLength}`)
  return `${SWARM_KEY_HEADER}\n${SWARM_KEY_CODEC}\n${Buffer.from(key).toString('hex')}\n`
}

/** The 32 bytes of a swarm key file's text; `file` names it in the error. */
export function parseSwarmKey (text: string, file = 'the swarm key'): Uint8Array {
  const lines = text.replace(/^\uFEFF/, '').split(/\r\n|\n|\r/)
  while (lines.length > 0 && lines[lines.length - 1].trim() === '') lines.pop()
  const bad = (what: string): SwarmKeyError => new SwarmKeyError(`${file}: ${what}; expected ${SWARM_KEY_FORMAT}`)
  if (lines.length !== 3) throw bad(`${lines.length} line${lines.length === 1 ? '' : 's'} instead of 3`)
  const [header, codec, hex] = lines.map(l => l.trim())
  if (header !== SWARM_KEY_HEADER) throw bad(`the first line is \`${header.slice(0, 40)}\``)
  if (codec !== SWARM_KEY_CODEC) throw bad(`the second line is \`${codec.slice(0, 40)}\` (only base16 is read)`)
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw bad(`the third line is not 64 hexadecimal digits (${hex.length} characters)`)
  return Uint8Array.from(Buffer.from(hex, 'hex'))
}

export interface SwarmKey {
  /** The key in the canonical file format, what `@libp2p/pnet` takes. */
  psk: Uint8Array
  /** Whether the file can be read by its group or by others (it should be 0600 or 0400). */
  exposed: boolean
}

/** Reads and checks a swarm key file: a missing, unreadable or malformed one is a SwarmKeyError naming it. */
export function readSwarmKey (file: string): SwarmKey {
  let text: string
  let mode: number
  try {
    text = readFileSync(file, 'utf8')
    mode = statSync(file).mode
  } catch (err: any) {
    throw new SwarmKeyError(`${file}: cannot be read (${err.code ?? err.message}); expected a file holding ${SWARM_KEY_FORMAT}`)
  }
  const key = parseSwarmKey(text, file)
  return { psk: new TextEncoder().encode(formatSwarmKey(key)), exposed: (mode & 0o077) !== 0 }
}
