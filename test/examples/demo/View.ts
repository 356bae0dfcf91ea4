/**
 * The live view: redrawn in place five times a second on a TTY; on anything else (a pipe, CI, or
 * `--plain`), the notable events as they happen and a summary line every 2 s.
 */
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { at, duration, fit, styles } from "./Format.js"
import type { NodeStatus } from "./Nodes.js"
import type { DemoOptions } from "./Options.js"
import { percentile, type Stats } from "./Stats.js"

/** What the view (and the report) show. */
export interface Context {
  readonly options: DemoOptions
  readonly stats: Stats
  readonly status: () => ReadonlyArray<NodeStatus>
  readonly quorum: number
}

const totalFailures = (stats: Stats): number => [...stats.failures.values()].reduce((a, b) => a + b, 0)

/** `holding w2 · waiting w0 w3 (longest 1.10 s) · idle w1` */
const workersLine = (stats: Stats, now: number): string => {
  const byStatus = new Map<string, Array<string>>()
  let longestWait = 0
  stats.workers.forEach((state, index) => {
    byStatus.set(state.status, [...(byStatus.get(state.status) ?? []), `w${index}`])
    if (state.status === "waiting") longestWait = Math.max(longestWait, now - state.since)
  })
  return ["holding", "waiting", "idle", "starting", "stopped"].flatMap((status) => {
    const names = byStatus.get(status)
    if (names === undefined) return []
    return [`${status} ${names.join(" ")}${status === "waiting" ? ` (longest ${duration(longestWait)})` : ""}`]
  }).join(" · ")
}

/** The view's lines: always as many, so that a redraw overwrites the previous frame exactly. */
export const frame = ({ options, quorum, stats, status }: Context, color: boolean): Array<string> => {
  const { bold, dim, green, red, yellow } = styles(color)
  const now = stats.elapsed()
  const nodes = status()
  const header = `${bold(" effect-redlock demo")}  ${at(now)} / ${at(options.seconds * 1000)}  ·  ${options.workers} ` +
    `workers · ttl ${duration(options.ttlMs)} · quorum ${quorum}/${nodes.length}`
  const nodeLines = nodes.map((node, index) => {
    const fault = stats.faults.find((f) => f.label === node.label && f.restartedAt === undefined)
    const plan = fault === undefined ? "" : dim(`  killed at ${at(fault.killedAt)}, restart at ${at(fault.restartAt)}`)
    return ` node ${index + 1}    ${node.label.padEnd(16)} ${node.up ? green("up") : red("DOWN")}${plan}`
  })
  const { holder } = stats
  const holderText = holder === undefined
    ? dim("nobody")
    : `w${holder.worker} · token ${holder.token} · ${duration(now - holder.since)}`
  const counts = [
    `acquired  ${bold(String(stats.acquisitions))}`,
    `overlaps ${stats.overlaps === 0 ? green("0") : red(String(stats.overlaps))}`,
    `lost ${stats.lost === 0 ? "0" : yellow(String(stats.lost))}`,
    `failed ${totalFailures(stats)}`,
    `held past ttl ${stats.heldPastTtl}`
  ]
  const recent = stats.notes.slice(-4).map((note) => `${at(note.at).padStart(7)}  ${note.text}`)
  while (recent.length < 4) recent.push("")
  return [
    header,
    ...nodeLines,
    ` holder    ${holderText}`,
    ` workers   ${workersLine(stats, now)}`,
    ` ${counts.join("   ")}`,
    ` waits     p50 ${duration(percentile(stats.waits, 50))} · p99 ${duration(percentile(stats.waits, 99))}`,
    ...recent.map((line, index) => (index === 0 ? " recent " : "        ") + dim(line))
  ]
}

/** The plain mode's periodic line. */
const summary = ({ stats, status }: Context): string =>
  [
    `[${at(stats.elapsed()).padStart(7)}] acquired ${stats.acquisitions}`,
    `overlaps ${stats.overlaps}`,
    `lost ${stats.lost}`,
    `failed ${totalFailures(stats)}`,
    `holder ${stats.holder === undefined ? "-" : `w${stats.holder.worker}`}`,
    `waiting ${stats.workers.filter((state) => state.status === "waiting").length}`,
    `nodes ${status().map((node) => node.up ? "up" : "DOWN").join(" ")}`,
    `wait p50 ${duration(percentile(stats.waits, 50))} p99 ${duration(percentile(stats.waits, 99))}`
  ].join(" · ")

export interface LiveView {
  /** Stops redrawing and draws the last frame. */
  readonly stop: Effect.Effect<void>
}

/** Starts the live view in the current scope. */
export const start = (context: Context): Effect.Effect<LiveView, never, Scope.Scope> =>
  Effect.gen(function*() {
    const out = process.stdout
    const color = out.hasColors?.() ?? false
    let linesDrawn = 0
    let notesShown = 0
    let ticks = 0

    const draw = (last: boolean) => {
      if (context.options.plain) {
        for (const note of context.stats.notes.slice(notesShown)) {
          out.write(`[${at(note.at).padStart(7)}] ${note.text}\n`)
        }
        notesShown = context.stats.notes.length
        if (!last && ticks++ % 10 === 0) out.write(summary(context) + "\n")
        return
      }
      const width = Math.max(40, (out.columns || 80) - 1)
      const lines = frame(context, color).map((line) => `\x1b[2K${fit(line, width)}\n`)
      // Move to the start of the previous frame, then overwrite it line by line.
      out.write((linesDrawn > 0 ? `\x1b[${linesDrawn}F` : "") + lines.join(""))
      linesDrawn = lines.length
    }

    if (!context.options.plain) {
      const hideCursor = Effect.sync(() => out.write("\x1b[?25l"))
      yield* Effect.acquireRelease(hideCursor, () => Effect.sync(() => out.write("\x1b[?25h")))
    }
    const fiber = yield* Effect.sync(() => draw(false)).pipe(
      Effect.repeat(Schedule.spaced("200 millis")),
      Effect.forkScoped
    )
    return { stop: Effect.zipRight(Fiber.interrupt(fiber), Effect.sync(() => draw(true))) }
  })
