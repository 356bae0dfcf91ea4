/** Small formatting helpers shared by the live view and the report. */

/** `850 ms`, `1.62 s` */
export const duration = (ms: number): string => ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`

/** A point in the run: `6.0 s` */
export const at = (ms: number): string => `${(ms / 1000).toFixed(1)} s`

/** ANSI styles, or plain text when `color` is off. */
export const styles = (color: boolean) => {
  const ansi = (code: string) => (text: string) => color ? `\x1b[${code}m${text}\x1b[0m` : text
  return { bold: ansi("1"), dim: ansi("2"), red: ansi("31"), green: ansi("32"), yellow: ansi("33") }
}

const stripAnsi = (text: string) => text.replace(/\x1b\[[0-9;]*m/g, "")

/** Cuts a line to the terminal's width (dropping its colors if it has to be cut), so it never wraps. */
export const fit = (line: string, width: number): string => {
  const plain = stripAnsi(line)
  return plain.length <= width ? line : plain.slice(0, width - 1) + "…"
}
