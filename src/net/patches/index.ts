/**
 * Performance patches of libraries we depend on, kept together because each
 * reaches into a package's internals and must be re-checked when that package
 * is upgraded (the tests in test/unit/patches-*.test.ts and
 * test/integration/coalesce.test.ts fail, naming the package, when what they
 * patch has changed). Each keeps the bytes on the wire exactly as they were
 * but the last (fewer yamux window updates); only the CPU a message costs
 * changes.
 *
 * - `ed25519-keys.ts` replaces `sign` and `verify` on the prototypes of
 *   @libp2p/crypto's Ed25519 key classes (written against @libp2p/crypto
 *   5.1.23): each key becomes a Node key object once instead of on every call
 *   (a JWK import per gossip signature and per check, about a tenth of an
 *   agent's CPU under load).
 * - `noise-crypto.ts` is a `crypto` option for @chainsafe/libp2p-noise (16.1.5):
 *   noise's `defaultCrypto` with ChaCha20-Poly1305 on a cached session key
 *   object from 1 KiB on (Node rebuilt the key, and a TypeError with its stack
 *   trace, on every message: a third of the cost of a 10 kB message).
 * - `coalesce.ts` wraps the connection encrypter (noise 16.1.5 under libp2p
 *   2.10.0, yamux 7.0.4 above it): the frames yamux writes in one turn of the
 *   event loop are encrypted as one noise message and sent with one system
 *   call, instead of one each — on one host, the largest single cost of a
 *   cluster.
 * - `yamux-window.ts` replaces `sendWindowUpdate` on yamux 7.0.4's
 *   YamuxStream: a window update once half the receive window is consumed
 *   (as hashicorp/yamux and go-yamux), not after every data frame — one
 *   frame, noise message and system call less per small message. The one
 *   patch that changes what goes on the wire: fewer WINDOW_UPDATE frames,
 *   within the yamux spec.
 * - `peer-protocols.ts` wraps `merge` on libp2p 2.10.0's peer store instance:
 *   the protocol libp2p records on every stream it opens or accepts is not
 *   written again when the peer's record lists it already (6 % of an agent's
 *   CPU under the placement load).
 */
export { coalesce, coalescingEncrypter, UnexpectedEncrypterError } from './coalesce.ts'
export { ed25519Prototypes, installEd25519KeyCache, PATCHED_ARITY } from './ed25519-keys.ts'
export { NATIVE_FROM_BYTES, noiseCrypto } from './noise-crypto.ts'
export { installProtocolMergeCache, UnexpectedPeerStoreError } from './peer-protocols.ts'
export { installYamuxWindowUpdates, UnexpectedYamuxError } from './yamux-window.ts'

/** The versions each patch was written and checked against; the tests name them when what they patch has changed. */
export const PATCHED_VERSIONS = Object.freeze({
  '@libp2p/crypto': '5.1.23',
  '@chainsafe/libp2p-noise': '16.1.5',
  '@chainsafe/libp2p-yamux': '7.0.4',
  libp2p: '2.10.0'
})
