/**
 * Reads deploy/systemd's unit and environment file the way systemd does, so
 * that tests can run the agent with exactly the command line the unit gives it
 * (systemd itself is not PID 1 on a test machine).
 */
import { readFileSync } from 'node:fs'

export interface Unit {
  /** Every `Key=value` of each section, in order; a key may repeat. */
  sections: Map<string, Array<[string, string]>>
}

/** Parses a unit file: sections, `Key=value`, `#`/`;` comments, lines continued with a trailing backslash. */
export function parseUnit (text: string): Unit {
  const sections = new Map<string, Array<[string, string]>>()
  let current: Array<[string, string]> | undefined
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i].trim()
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue
    const header = /^\[(.+)\]$/.exec(line)
    if (header != null) {
      current = []
      sections.set(header[1], current)
      continue
    }
    while (line.endsWith('\\') && i + 1 < lines.length) {
      line = line.slice(0, -1) + ' '
      // Comment lines inside a continued line are skipped, as systemd does.
      do i++; while (i < lines.length && /^\s*[#;]/.test(lines[i]))
      line += lines[i].trim()
    }
    const eq = line.indexOf('=')
    if (eq <= 0 || current == null) throw new Error(`not a unit line: ${line}`)
    current.push([line.slice(0, eq).trim(), line.slice(eq + 1).trim()])
  }
  return { sections }
}

export function unitValues (unit: Unit, section: string, key: string): string[] {
  return (unit.sections.get(section) ?? []).filter(([k]) => k === key).map(([, v]) => v)
}

export function unitValue (unit: Unit, section: string, key: string): string | undefined {
  return unitValues(unit, section, key).at(-1)
}

/** An EnvironmentFile: `VAR=value` lines, comments, optional quotes around the value. */
export function parseEnvFile (text: string): Map<string, string> {
  const env = new Map<string, string>()
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line)
    if (m == null) throw new Error(`not an environment line: ${line}`)
    env.set(m[1], m[2].replace(/^"(.*)"$/, '$1').replace(/^'(.*)'$/, '$1'))
  }
  return env
}

/**
 * systemd's expansion of a command line (systemd.service(5), "Command lines"):
 * specifiers (`%S`, `%C`, `%d`...) first, then `${VAR}` (one argument, also
 * inside a word) and `$VAR` standing alone as a word (split at whitespace, zero
 * or more arguments). Our ExecStart uses no quotes or escapes.
 */
export function expandCommandLine (line: string, env: Map<string, string>, specifiers: Record<string, string>): string[] {
  const withSpecifiers = line.replace(/%(.)/g, (_, c: string) => {
    if (c === '%') return '%'
    const v = specifiers[c]
    if (v == null) throw new Error(`no value for the specifier %${c}`)
    return v
  })
  const out: string[] = []
  for (const word of withSpecifiers.split(/\s+/).filter(w => w !== '')) {
    const alone = /^\$([A-Za-z_][A-Za-z0-9_]*)$/.exec(word)
    if (alone != null) {
      out.push(...(env.get(alone[1]) ?? '').split(/\s+/).filter(w => w !== ''))
      continue
    }
    out.push(word.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => env.get(name) ?? ''))
  }
  return out
}

/** The variables a command line refers to, `${VAR}` or `$VAR`. */
export function referencedVariables (line: string): string[] {
  return [...new Set([...line.matchAll(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g)].map(m => m[1]))]
}

export function readUnit (path: string): Unit {
  return parseUnit(readFileSync(path, 'utf8'))
}
