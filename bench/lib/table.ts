/** Plain-text aligned tables: text columns left-aligned, numeric ones right-aligned. */
export function table (headers: string[], rows: Array<Array<string | number>>): string {
  const cells = [headers, ...rows.map(r => r.map(String))]
  const numeric = headers.map((_, i) => rows.length > 0 && rows.every(r => /^[-+]?[\d.]+(\/[\d.]+)*$|^-$/.test(String(r[i] ?? ''))))
  const widths = headers.map((_, i) => Math.max(...cells.map(r => (r[i] ?? '').length)))
  return cells.map(r => r.map((c, i) => numeric[i] ? (c ?? '').padStart(widths[i]) : (c ?? '').padEnd(widths[i])).join('  ').trimEnd()).join('\n')
}

/** Two columns: a label and its value. */
export function keyValues (rows: Array<[string, string | number]>): string {
  const width = Math.max(...rows.map(([k]) => k.length))
  return rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`).join('\n')
}
