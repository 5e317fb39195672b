/**
 * The HTTP edge of an agent: the JSON API of DESIGN.md, the server-sent
 * event stream, Prometheus metrics and the dashboard page. Every input
 * (path, query, headers, body) is validated here, once; every error is
 * answered `{ error, message }` from one table.
 */
export { startApi, type ApiInit } from './server.ts'
