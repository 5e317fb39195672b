/**
 * `report.html`: one self-contained page (no script, no stylesheet, no font
 * fetched: it opens offline) with the verdict first, every violation with the
 * requests that touched its VM, the seed and the command that replays the
 * run, and the timeline drawn as inline SVG by this file: each agent's faults
 * (killed, paused, partitioned) with the times its peers declared it dead,
 * live agents and VMs running, requests answered and failed, and VM restart
 * times. Pure: a report in, a string out.
 */
import type { ChaosReport } from './report.ts'

const W = 1000
const LEFT = 70
const RIGHT = 60
const PLOT = W - LEFT - RIGHT

function esc (s: unknown): string {
  return String(s).replace(/[&<>"']/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!)
}

function axis (endMs: number, y: number): string {
  const step = endMs > 600_000 ? 60_000 : endMs > 120_000 ? 20_000 : endMs > 30_000 ? 10_000 : 5_000
  let out = `<line x1="${LEFT}" y1="${y}" x2="${LEFT + PLOT}" y2="${y}" stroke="#999"/>`
  for (let t = 0; t <= endMs; t += step) {
    const x = LEFT + PLOT * t / endMs
    out += `<line x1="${x}" y1="${y}" x2="${x}" y2="${y + 4}" stroke="#999"/><text x="${x}" y="${y + 15}" font-size="10" text-anchor="middle">${t / 1000}s</text>`
  }
  return out
}

function faultLanes (r: ChaosReport, endMs: number): string {
  const row = 14
  const h = r.nodes * row + 30
  const x = (t: number): number => LEFT + PLOT * Math.min(t, endMs) / endMs
  let body = ''
  for (let a = 0; a < r.nodes; a++) body += `<text x="${LEFT - 6}" y="${a * row + 11}" font-size="10" text-anchor="end">agent ${a}</text><line x1="${LEFT}" y1="${a * row + row - 1}" x2="${LEFT + PLOT}" y2="${a * row + row - 1}" stroke="#eee"/>`
  const recs = r.faults.records
  const bar = (a: number, from: number, to: number, color: string, title: string): string =>
    `<rect x="${x(from)}" y="${a * row + 2}" width="${Math.max(2, x(to) - x(from))}" height="${row - 4}" fill="${color}"><title>${esc(title)}</title></rect>`
  for (const f of recs) {
    if (!f.ok) continue
    if (f.kind === 'kill' || f.kind === 'pause') {
      // A fault done to a process of several agents: a bar for each.
      const back = recs.find(e => e.atMs >= f.atMs && e.agents.join() === f.agents.join() && (e.kind === 'restart' || e.kind === 'resume'))
      for (const a of f.agents) body += bar(a, f.atMs, back?.atMs ?? endMs, f.kind === 'kill' ? '#d62728' : '#ff7f0e', `agent ${a} ${f.kind === 'kill' ? 'SIGKILLed' : 'SIGSTOPped'} at ${f.atMs} ms${f.agents.length > 1 ? ` with its process (agents ${f.agents.join(', ')})` : ''}, back at ${back?.atMs ?? '?'} ms`)
    }
    if (f.kind === 'partition') {
      const heal = recs.find(e => e.kind === 'heal' && e.atMs >= f.atMs)
      for (const a of f.agents) body += bar(a, f.atMs, heal?.atMs ?? endMs, f.oneWay === true ? '#9ecae1' : '#1f77b4', `agents ${f.agents.join(', ')} partitioned from ${f.peers?.join(', ')} (${f.oneWay === true ? 'one way' : 'both ways'}) at ${f.atMs} ms`)
    }
  }
  for (const d of r.detection.samples) {
    for (const [t, what] of [[d.firstMs, 'first'], [d.lastMs, 'last']] as const) {
      if (t == null) continue
      body += `<line x1="${x(d.atMs + t)}" y1="${d.agent * row}" x2="${x(d.atMs + t)}" y2="${d.agent * row + row}" stroke="#000" stroke-width="1.5"><title>${esc(`agent ${d.agent} declared dead by the ${what} of ${d.observers} peers ${t} ms after the ${d.kind}`)}</title></line>`
    }
  }
  return svg('Faults per agent: killed (red), paused (orange), partitioned both ways (blue) or one way (light blue); black ticks: the first and last peer declaring it dead', h, body + axis(endMs, r.nodes * row + 2))
}

function svg (title: string, h: number, body: string): string {
  return `<figure><figcaption>${esc(title)}</figcaption><svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${h}" viewBox="0 0 ${W} ${h}" font-family="sans-serif">${body}</svg></figure>`
}

function polyline (points: Array<[number, number]>, color: string): string {
  return `<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${points.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(' ')}"/>`
}

function liveAndVms (r: ChaosReport, endMs: number): string {
  const h = 160
  const top = 10
  const bottom = 130
  const maxVms = Math.max(1, ...r.timeline.map(p => p.vmsRunning))
  const x = (t: number): number => LEFT + PLOT * Math.min(t, endMs) / endMs
  const yLive = (n: number): number => bottom - (bottom - top) * n / r.nodes
  const yVms = (n: number): number => bottom - (bottom - top) * n / maxVms
  let body = polyline(r.timeline.map(p => [x(p.atMs), yLive(p.live)]), '#2ca02c') + polyline(r.timeline.map(p => [x(p.atMs), yVms(p.vmsRunning)]), '#9467bd')
  body += `<text x="${LEFT - 6}" y="${top + 8}" font-size="10" text-anchor="end" fill="#2ca02c">${r.nodes} live</text><text x="${LEFT - 6}" y="${bottom}" font-size="10" text-anchor="end" fill="#2ca02c">0</text>`
  body += `<text x="${LEFT + PLOT + 6}" y="${top + 8}" font-size="10" fill="#9467bd">${maxVms} VMs</text><text x="${LEFT + PLOT + 6}" y="${bottom}" font-size="10" fill="#9467bd">0</text>`
  return svg('Live agents (green, left scale) and VMs running (purple, right scale), as sampled', h, body + axis(endMs, bottom + 2))
}

function requests (r: ChaosReport, endMs: number): string {
  const h = 140
  const top = 10
  const bottom = 110
  const max = Math.max(1, ...r.timeline.map(p => p.answered + p.failed))
  const x = (t: number): number => LEFT + PLOT * Math.min(t, endMs) / endMs
  let body = ''
  r.timeline.forEach((p, k) => {
    const from = k === 0 ? 0 : r.timeline[k - 1].atMs
    const w = Math.max(1, x(p.atMs) - x(from) - 1)
    const ok = p.answered - Math.min(p.answered, p.failed)
    const hOk = (bottom - top) * ok / max
    const hBad = (bottom - top) * p.failed / max
    body += `<rect x="${x(from)}" y="${bottom - hOk}" width="${w}" height="${hOk}" fill="#7f7f7f"><title>${ok} succeeded by ${p.atMs} ms</title></rect>`
    body += `<rect x="${x(from)}" y="${bottom - hOk - hBad}" width="${w}" height="${hBad}" fill="#d62728"><title>${p.failed} failed or uncertain by ${p.atMs} ms</title></rect>`
  })
  body += `<text x="${LEFT - 6}" y="${top + 8}" font-size="10" text-anchor="end">${max}</text>`
  return svg('Requests per sample interval: succeeded (grey), failed or uncertain (red)', h, body + axis(endMs, bottom + 2))
}

function restarts (r: ChaosReport, endMs: number): string {
  const h = 130
  const top = 10
  const bottom = 100
  const max = Math.max(1, ...r.restarts.samples.map(s => s.ms))
  const x = (t: number): number => LEFT + PLOT * Math.min(t, endMs) / endMs
  let body = r.restarts.samples.map(s => `<circle cx="${x(s.atMs)}" cy="${bottom - (bottom - top) * s.ms / max}" r="2.5" fill="#17becf"><title>${esc(`VM restarted by agent ${s.agent} ${s.ms} ms after its owner's death`)}</title></circle>`).join('')
  body += `<text x="${LEFT - 6}" y="${top + 8}" font-size="10" text-anchor="end">${max} ms</text><text x="${LEFT - 6}" y="${bottom}" font-size="10" text-anchor="end">0</text>`
  return svg('VM restarts: time from the owner\'s death to the new owner\'s commit (vm.restarted)', h, body + axis(endMs, bottom + 2))
}

function table (rows: Array<[string, unknown]>): string {
  return `<table>${rows.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v ?? '-')}</td></tr>`).join('')}</table>`
}

export function reportHtml (r: ChaosReport): string {
  const endMs = Math.max(1000, r.settle.settledMs ?? 0, ...r.timeline.map(p => p.atMs))
  const clean = r.verdict === 'clean'
  const violations = r.violations.map(v => `<li><b>${esc(v.kind)}</b>: ${esc(v.message)}${(v.context ?? []).length > 0 ? `<br><small>${(v.context ?? []).map(esc).join('<br>')}</small>` : ''}${(v.history ?? []).length > 0 ? `<details><summary>requests on it</summary><pre>${esc(v.history!.map(h => JSON.stringify(h)).join('\n'))}</pre></details>` : ''}</li>`).join('')
  const k = r.faults.injected
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>discovery chaos · seed ${r.seed} · ${clean ? 'clean' : 'violations'}</title>
<style>body{font-family:sans-serif;margin:2em;max-width:1060px}.verdict{padding:1em;border-radius:6px;color:#fff;font-size:1.4em}.ok{background:#2ca02c}.bad{background:#d62728}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;font-size:.9em}code,pre{background:#f4f4f4;padding:2px 4px;font-size:.85em;white-space:pre-wrap}figcaption{font-size:.9em;color:#444}</style></head><body>
<div class="verdict ${clean ? 'ok' : 'bad'}">${clean ? 'CLEAN: no invariant violated' : `${r.violations.length} violation(s)`}</div>
${clean ? '' : `<ul>${violations}</ul>`}
<p>Seed <b>${r.seed}</b>, ${r.nodes} agents, started ${esc(r.startedAt)}. Replay: <code>${esc(r.command)}</code></p>
${faultLanes(r, endMs)}
${liveAndVms(r, endMs)}
${requests(r, endMs)}
${restarts(r, endMs)}
<h2>Figures</h2>
${table([
  ['faults injected', `${k.kill} kills, ${k.restart} restarts, ${k.pause} pauses, ${k.partition} partitions, ${k.heal} heals (${r.faults.failed} failed, ${r.faults.deferred} deferred for max-down, ${r.faults.skipped} skipped)`],
  ['requests', `${r.requests.total}: ${Object.entries(r.requests.byOp).map(([op, b]) => `${op} ${b.ok} ok / ${b.failed} failed / ${b.uncertain} uncertain`).join(', ')}`],
  ['answers by status', Object.entries(r.requests.byStatus).map(([s, n]) => `${s}: ${n}`).join(', ')],
  ['VMs', `${r.counts.creates} creates, ${r.counts.acknowledged} acknowledged, ${r.counts.uncertainCreates} uncertain (${r.counts.uncertainPresent} present, ${r.counts.uncertainAbsent} absent), ${r.counts.deletesAcknowledged} deletes acknowledged`],
  ['verdicts', `${r.counts.ok} ok, ${r.counts.lost} lost, ${r.counts.duplicated} duplicated, ${r.counts.resurrected} resurrected, ${r.counts.phantom} phantom`],
  ['over-commit', `${r.counts.overcommitSamples} of ${r.counts.nodeSamples} samples`],
  ['crashes', r.counts.crashes],
  ['detection (first / last peer), p50', `${r.detection.firstP50Ms ?? '-'} ms / ${r.detection.lastP50Ms ?? '-'} ms (last max ${r.detection.lastMaxMs ?? '-'} ms)`],
  ['VM restarts', `${r.restarts.count} (${r.restarts.again} at an epoch another restart had reached), p50 ${r.restarts.p50Ms ?? '-'} ms, max ${r.restarts.maxMs ?? '-'} ms; ${r.fenced} copies fenced; ${r.lostReported} reported lost`],
  ['views agreed after churn stopped', `${r.settle.convergedAfterMs ?? 'never'} ms (bound ${r.settle.boundMs} ms)`],
  ['fuzzing', r.fuzz == null ? 'not asked' : r.fuzz.available ? `${r.fuzz.messages} messages, ${r.fuzz.crashes} crashes, ${r.fuzz.stateChanges} state changes; ${Object.entries(r.fuzz.byEntry ?? {}).map(([e, b]) => `${e}: ${b.sent} sent, ${b.answered} answered, ${b.dropped} dropped`).join('; ')}` : 'fuzzing not available']
])}
<p>Every request: <code>${esc(r.files.history)}</code>. Agents' logs: <code>${esc(r.files.cluster)}</code>.</p>
</body></html>
`
}
