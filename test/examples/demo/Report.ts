/** The final report. */
import { at, duration, styles } from "./Format.js"
import type { Totals } from "./Ledger.js"
import { percentile } from "./Stats.js"
import type { Context } from "./View.js"

export interface Verdict {
  readonly ok: boolean
  readonly interrupted: boolean
}

/**
 * Whether the run proves mutual exclusion: the ledger could be read, no entry found another holder
 * inside, every holder left, and no worker died on the way (its events would be missing).
 */
export const isOk = (totals: Totals | undefined, crashed: number): boolean =>
  totals !== undefined && totals.overlaps === 0 && totals.inside.length === 0 && crashed === 0

/** The report's lines. `totals` is what the ledger counted (undefined if it could not be read). */
export const lines = (
  { options, quorum, stats, status }: Context,
  totals: Totals | undefined,
  verdict: Verdict,
  color: boolean
): Array<string> => {
  const { bold, green, red } = styles(color)
  const row = (label: string, value: string) => `  ${label.padEnd(15)}${value}`
  const rows = (label: string, values: ReadonlyArray<string>) =>
    values.length === 0 ? [row(label, "none")] : values.map((value, index) => row(index === 0 ? label : "", value))

  const elapsed = at(stats.elapsed())
  const overlaps = totals === undefined
    ? `${stats.overlaps} (as reported by the workers; the ledger could not be read)`
    : `${totals.overlaps === 0 ? green("0") : red(String(totals.overlaps))} ` +
      `(ledger: entries into the critical section that found another holder inside)`
  const failures = [...stats.failures].map(([tag, count]) => `${tag} ${count}`).join(" · ")
  const faults = stats.faults.map(({ killedAt, label, restartedAt }) =>
    restartedAt === undefined
      ? `${label} killed at ${at(killedAt)}, not restarted before the end`
      : `${label} killed at ${at(killedAt)}, restarted at ${at(restartedAt)} ` +
        `(down ${at(restartedAt - killedAt)}, ttl ${duration(options.ttlMs)})`
  )
  const problems = [
    ...(stats.crashed > 0 ? [row("workers", red(`${stats.crashed} exited during the run`))] : []),
    ...(totals !== undefined && totals.inside.length > 0
      ? [row("ledger", red(`never left the critical section: ${totals.inside.join(", ")} (worker:token)`))]
      : [])
  ]
  return [
    "",
    bold(verdict.interrupted ? `Report (interrupted after ${elapsed})` : "Report"),
    row("run", `${elapsed} · ${options.workers} workers · ${status().length} nodes, quorum ${quorum} · ttl ${
      duration(options.ttlMs)
    }`),
    row("acquisitions", `${stats.acquisitions}${totals === undefined ? "" : ` (ledger: ${totals.entries} entries)`}`),
    row("overlaps", overlaps),
    row("locks lost", String(stats.lost)),
    row("failed", failures === "" ? "0" : failures),
    row("held past ttl", `${stats.heldPastTtl} (kept alive by automatic extension)`),
    row(
      "wait",
      `p50 ${duration(percentile(stats.waits, 50))} · p99 ${duration(percentile(stats.waits, 99))} · ` +
        `max ${duration(percentile(stats.waits, 100))} (from calling withLock to entering)`
    ),
    ...rows("node faults", faults),
    ...rows("worker logs", [...stats.logs].map(([message, count]) => `${count} × ${message}`)),
    ...problems,
    row(
      "result",
      verdict.ok ? green("OK: no two workers ever held the lock at the same time") : red("FAILED: see above")
    )
  ]
}
