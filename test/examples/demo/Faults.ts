/**
 * The fault schedule: at 30 % of the run, SIGKILL one of the three lock nodes; restart it after
 * twice the ttl. The nodes keep nothing on disk, so the restarted node comes back empty; waiting
 * longer than the ttl first means every key it lost had expired anyway, so the restart cannot hand
 * a held lock to someone else (the Redlock "delayed restart" rule). Two nodes stay up, a quorum,
 * so the workers carry on while it is down.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type { DemoNodes } from "./Nodes.js"
import type { DemoOptions } from "./Options.js"
import type { Fault, Stats } from "./Stats.js"

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`

/** The kill and restart times, in ms from the start; undefined when the run is too short for both. */
export const plan = (options: DemoOptions): { readonly killAt: number; readonly restartAt: number } | undefined => {
  const killAt = Math.round(options.seconds * 1000 * 0.3)
  const restartAt = killAt + 2 * options.ttlMs
  return restartAt <= options.seconds * 1000 - 500 ? { killAt, restartAt } : undefined
}

const sleepUntil = (stats: Stats, at: number) =>
  Effect.suspend(() => Effect.sleep(Duration.millis(Math.max(0, at - stats.elapsed()))))

export const run = (nodes: DemoNodes, options: DemoOptions, stats: Stats) =>
  Effect.gen(function*() {
    const victim = nodes.owned[1]
    if (victim === undefined) return stats.note("no faults: the nodes were given, not started by the demo")
    const times = plan(options)
    if (times === undefined) return stats.note(`no faults: the run is too short to restart a node after 2 × ttl`)
    const label = `127.0.0.1:${victim.port}`

    yield* sleepUntil(stats, times.killAt)
    const pid = victim.pid
    yield* victim.kill
    const fault: Fault = { label, killedAt: stats.elapsed(), restartAt: times.restartAt, restartedAt: undefined }
    stats.faults.push(fault)
    stats.note(`killed node ${label} (SIGKILL pid ${pid}); restart at ${seconds(times.restartAt)}`)

    yield* sleepUntil(stats, times.restartAt)
    yield* victim.restart
    const restartedAt = stats.elapsed()
    fault.restartedAt = restartedAt
    stats.note(
      `restarted node ${label} (pid ${victim.pid}) after ${seconds(restartedAt - fault.killedAt)} down (ttl ${
        seconds(options.ttlMs)
      }), empty`
    )
  }).pipe(Effect.catchAll((error) => Effect.sync(() => stats.note(`fault injection failed: ${error.message}`))))
