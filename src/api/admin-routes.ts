/**
 * The admin routes, registered only when the agent runs with `--admin` (and
 * so with a token: the agent refuses `--admin` without one). Without
 * `--admin` they do not exist: `404` like any unknown route.
 *
 * - `POST /v1/admin/partition { peers, direction? }`: refuse and drop the
 *   connections with the peers (`both`, the default) or refuse what they
 *   start (`inbound`, one way); answers every block now in force.
 * - `POST /v1/admin/heal { peers? }`: lift the blocks of the peers, or all.
 * - `GET /v1/admin/partition`: the blocks in force.
 */
import type { FastifyInstance } from 'fastify'
import type { Agent } from '../agent/index.ts'
import { healRequestSchema, partitionRequestSchema } from '../core/admin-messages.ts'
import { BadRequestError } from './errors.ts'
import { noQuery, parseBody, parseQuery } from './input.ts'

export function adminRoutes (server: FastifyInstance, agent: Agent): void {
  server.get('/v1/admin/partition', async (req) => {
    parseQuery(noQuery, req.query, 'no parameters')
    return { blocked: agent.partitions() }
  })

  server.post('/v1/admin/partition', async (req) => {
    parseQuery(noQuery, req.query, 'no parameters')
    const body = parseBody(partitionRequestSchema, req.body, ' (peers: a list of peer ids; direction: both or inbound)')
    if (body.peers.includes(agent.peerId)) throw new BadRequestError(`peers names this agent itself (${agent.peerId}): an agent cannot be partitioned from itself`)
    return { blocked: await agent.partition(body.peers, body.direction) }
  })

  server.post('/v1/admin/heal', async (req) => {
    parseQuery(noQuery, req.query, 'no parameters')
    // No body (or an empty one) heals every peer.
    const body = parseBody(healRequestSchema, req.body === undefined ? {} : req.body, ' (peers: a list of peer ids, or no body to heal all)')
    const healed = agent.heal(body.peers)
    return { healed, blocked: agent.partitions() }
  })
}
