/**
 * For the tests of src/net/patches: what is installed, and the message a
 * failing check gives, which names the package that changed and what to
 * re-check.
 */
import { readFileSync } from 'node:fs'
import { PATCHED_VERSIONS } from '../src/net/patches/index.ts'

export type PatchedPackage = keyof typeof PATCHED_VERSIONS

const versions = new Map<string, string>()

/** The version of `pkg` at the top of node_modules (read once). */
export function installedVersion (pkg: string): string {
  let version = versions.get(pkg)
  if (version == null) {
    const file = new URL(`../node_modules/${pkg}/package.json`, import.meta.url)
    version = (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version
    versions.set(pkg, version)
  }
  return version
}

/** "`pkg` changed (installed X, the patch was written against Y): WHAT. Re-check RECHECK." */
export function changed (pkg: PatchedPackage, what: string, recheck: string): string {
  return `${pkg} changed (installed ${installedVersion(pkg)}, the patch was written against ${PATCHED_VERSIONS[pkg]}): ${what}. Re-check ${recheck}.`
}
