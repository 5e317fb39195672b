/** bin/own-node.js: which Node runs the command when the one it was started with is too old. */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { MIN_NODE_MAJOR, ownNode } from '../../bin/own-node.js'

function projectWithNode (): { root: string, own: string } {
  const root = mkdtempSync(join(tmpdir(), 'own-node-'))
  mkdirSync(join(root, 'node_modules', 'node', 'bin'), { recursive: true })
  const own = join(root, 'node_modules', 'node', 'bin', 'node')
  writeFileSync(own, '')
  return { root, own }
}

describe('ownNode', () => {
  it('keeps a Node that is recent enough, whatever the project holds', () => {
    const { root } = projectWithNode()
    expect(ownNode(root, `${MIN_NODE_MAJOR}.0.0`, '/usr/bin/node')).toBeUndefined()
    expect(ownNode(root, '24.21.0', '/usr/bin/node')).toBeUndefined()
  })

  it('runs an old Node\'s command on the project\'s own Node', () => {
    const { root, own } = projectWithNode()
    expect(ownNode(root, '20.20.2', '/usr/bin/node')).toBe(own)
    expect(ownNode(root, `${MIN_NODE_MAJOR - 1}.9.9`, '/usr/bin/node')).toBe(own)
  })

  it('says what is needed when the project has no Node of its own, or its own is the old one', () => {
    const bare = mkdtempSync(join(tmpdir(), 'own-node-bare-'))
    const none = ownNode(bare, '20.20.2', '/usr/bin/node')
    expect(none).toBeInstanceOf(Error)
    expect((none as Error).message).toMatch(new RegExp(`needs Node ≥ ${MIN_NODE_MAJOR}, and this is Node 20\\.20\\.2 .*npm install`))
    const { root, own } = projectWithNode()
    expect(ownNode(root, '20.20.2', own)).toBeInstanceOf(Error)
  })
})
