/**
 * The HTTP edge of an agent: the JSON API of DESIGN.md, Prometheus metrics
 * and the dashboard page. Every body is validated here, once.
 */
export { startApi, type ApiInit } from './server.ts'
