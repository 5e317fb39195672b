/** Reading Prometheus text exposition: the sum of one metric's samples whose labels include `labels`. */
export function metricValue (text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue
    const m = /^([a-z_]+)(\{[^}]*\})?\s+([0-9.e+-]+)$/.exec(line)
    if (m == null || m[1] !== name) continue
    const set = m[2] ?? ''
    if (Object.entries(labels).every(([k, v]) => set.includes(`${k}="${v}"`))) total += Number(m[3])
  }
  return total
}

/** Every agent's `/metrics` at once; the result sums one metric over all of them. */
export async function scrapeAll (apis: string[]): Promise<(name: string, labels?: Record<string, string>) => number> {
  const texts = await Promise.all(apis.map(async api => await (await fetch(`${api}/metrics`, { signal: AbortSignal.timeout(10_000) })).text()))
  return (name, labels = {}) => texts.reduce((sum, text) => sum + metricValue(text, name, labels), 0)
}
