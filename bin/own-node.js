// The Node the command needs (≥ 22: libp2p's dependencies call `Promise.withResolvers`, the store is `node:sqlite`),
// and the one `npm install` brings with it (the `node` package: node_modules/node/bin/node). npm scripts and `npx
// discovery` run on that one; `./bin/discovery.js` or `node bin/discovery.js` typed in a shell run on the first Node
// on PATH, which on this machine is its own Node 20: the command then died at its first line with "No such built-in
// module: node:sqlite". Now it runs itself again on the project's Node, and `cluster up` starts its agents on it.
// Plain JavaScript that runs on old Nodes: it is loaded before anything else.
import { existsSync } from 'node:fs'
import { join } from 'node:path'

/** The oldest Node major the command runs on. */
export const MIN_NODE_MAJOR = 22

/**
 * The Node to run the command with instead of this one: undefined when this one is recent enough; the project's
 * own when this one is too old and the project has it; otherwise an Error that says what is needed.
 */
export function ownNode (root, version = process.versions.node, execPath = process.execPath) {
  if (Number(version.split('.')[0]) >= MIN_NODE_MAJOR) return undefined
  const own = join(root, 'node_modules', 'node', 'bin', 'node')
  if (existsSync(own) && own !== execPath) return own
  return new Error(`discovery needs Node ≥ ${MIN_NODE_MAJOR}, and this is Node ${version} (${execPath}); run \`npm install\` in ${root}, which brings Node 24, or install Node ≥ ${MIN_NODE_MAJOR}`)
}

/**
 * Runs the same command line on `node` and ends this process as the child ends (its exit code, or its signal).
 * Signals sent to this process go to the child; one sent to the whole process group (Ctrl-C) reaches the child twice,
 * which an agent and `cluster up` take as one (their stop runs once). An IPC channel from this process's parent is
 * passed on.
 */
export async function runOn (node, script) {
  const { spawn } = await import('node:child_process')
  const ipc = process.channel != null
  const child = spawn(node, [...process.execArgv, script, ...process.argv.slice(2)], {
    stdio: ipc ? ['inherit', 'inherit', 'inherit', 'ipc'] : 'inherit'
  })
  const forward = (signal) => { if (child.exitCode == null && child.signalCode == null) child.kill(signal) }
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, forward)
  if (ipc) {
    process.on('message', (m) => { child.send?.(m) })
    child.on('message', (m) => { process.send?.(m) })
    process.on('disconnect', () => { child.disconnect?.() })
  }
  child.on('error', (err) => {
    process.stderr.write(`discovery: could not start ${node}: ${err.message}\n`)
    process.exit(1)
  })
  child.on('exit', (code, signal) => {
    if (signal != null) {
      for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.removeAllListeners(s)
      process.kill(process.pid, signal)
      return
    }
    process.exit(code ?? 1)
  })
}
