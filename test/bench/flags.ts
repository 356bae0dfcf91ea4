/** Command-line flags of the benchmark's side tools (held-locks, pairwise, turnaround). */

/** The value after `--name` on the command line, or `fallback` when the flag is absent. */
export const flag = (name: string, fallback: string): string => {
  const index = process.argv.indexOf(`--${name}`)
  return index === -1 ? fallback : process.argv[index + 1] ?? fallback
}
