/**
 * `discovery keygen [--out FILE]`: a new swarm key, in the libp2p pnet format
 * (net/swarm-key.ts), from 32 bytes of the system's CSPRNG. Written with mode
 * 0600 and never over an existing file (`--force` to replace one: every agent
 * would then need the new key), or printed on stdout without `--out`.
 */
import { closeSync, fchmodSync, openSync, writeSync } from 'node:fs'
import { resolve } from 'node:path'
import { formatSwarmKey } from '../net/swarm-key.ts'
import { OperationError } from './errors.ts'

export function keygen (opts: { out?: string, force?: boolean }): { file?: string, text: string } {
  const text = formatSwarmKey()
  if (opts.out == null) return { text }
  const file = resolve(opts.out)
  let fd: number
  try {
    fd = openSync(file, opts.force === true ? 'w' : 'wx', 0o600)
  } catch (err: any) {
    if (err.code === 'EEXIST') throw new OperationError(`${file} exists already: every agent of a cluster needs the same key; pass --force to replace it`)
    throw new OperationError(`cannot write ${file} (${err.code ?? err.message})`)
  }
  try {
    // An existing file keeps its mode on open: make it 0600 whatever it was.
    fchmodSync(fd, 0o600)
    writeSync(fd, text)
  } finally {
    closeSync(fd)
  }
  return { file, text }
}
