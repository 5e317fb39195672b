/**
 * The `ip` commands of a namespaced cluster (src/cli/netns.ts): the drop
 * rules must come before the local table's rule, or packets to the agent's
 * own address would be delivered before any drop is looked at.
 */
import { describe, expect, it } from 'vitest'
import { agentIp, dropLines, labLines, liftLines, type NetLab, nsLines, nsName } from '../../src/cli/netns.ts'

const lab: NetLab = { name: 'dnabc123', bridge: 'dnabc123br', subnet: '10.77.9', size: 3 }
const pref = (line: string): number => Number(/pref (\d+)/.exec(line)![1])

describe('netns commands', () => {
  it('one namespace and one veth to the bridge per agent; agent i at .i+2, the bridge at .1', () => {
    const lines = labLines(lab, 3)
    expect(lines.slice(0, 3)).toEqual(['link add dnabc123br type bridge', 'addr add 10.77.9.1/24 dev dnabc123br', 'link set dnabc123br up'])
    expect(lines.filter(l => l.startsWith('netns add'))).toEqual(['netns add dnabc123-0', 'netns add dnabc123-1', 'netns add dnabc123-2'])
    expect(lines).toContain('link add dnabc123-2 type veth peer name eth0 netns dnabc123-2')
    expect(lines).toContain('link set dnabc123-2 master dnabc123br')
    expect(nsName(lab, 2)).toBe('dnabc123-2')
    expect(agentIp(lab, 0)).toBe('10.77.9.2')
    expect(nsLines(lab, 1)).toContain('addr add 10.77.9.3/24 dev eth0')
    // Names fit the kernel's 15 characters at the most agents a lab holds.
    expect(nsName(lab, 252).length).toBeLessThanOrEqual(15)
  })

  it('drops are ahead of the local table, which moves from priority 0; lifting names the same rules', () => {
    const setup = nsLines(lab, 0)
    const local = setup.find(l => l.includes('lookup local'))!
    expect(setup).toContain('rule del pref 0')
    expect(setup.indexOf(local)).toBeLessThan(setup.indexOf('rule del pref 0'))
    const drops = dropLines(['10.77.9.3', '10.77.9.4'])
    expect(drops).toEqual(['rule add pref 10 from 10.77.9.3/32 blackhole', 'rule add pref 10 from 10.77.9.4/32 blackhole'])
    for (const d of drops) expect(pref(d)).toBeLessThan(pref(local))
    expect(liftLines(['10.77.9.3'])).toEqual(['rule del pref 10 from 10.77.9.3/32 blackhole'])
  })
})
