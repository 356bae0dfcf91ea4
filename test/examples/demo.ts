/**
 * `npm run demo`: Redlock under contention and under a node crash.
 *
 * 1. Starts three redis-server nodes for the lock and a fourth for the ledger (or uses the nodes in
 *    REDLOCK_NODES and starts none).
 * 2. Spawns worker processes (worker.ts) that loop on `Redlock.withLock` over one shared resource,
 *    with a short ttl, "work" a random time inside, and report each step on stdout.
 * 3. At 30 % of the run it SIGKILLs one lock node and restarts it after twice the ttl.
 * 4. Shows a live view, then stops the workers and prints the report. The mutual exclusion check
 *    is the ledger's (see demo/Ledger.ts): a redis-server that no fault touches, where each
 *    worker, inside the lock, registers on entry and deregisters on exit; an entry that finds
 *    another holder registered is an overlap. The demo exits 0 only when there were none.
 *
 * Ctrl-C (SIGINT) interrupts the run: the workers are stopped, a partial report is printed and
 * every process the demo started is gone before it exits.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import { randomUUID } from "node:crypto"
import * as Faults from "./demo/Faults.js"
import * as Ledger from "./demo/Ledger.js"
import { ExitCode, run } from "./demo/Main.js"
import * as Nodes from "./demo/Nodes.js"
import * as Options from "./demo/Options.js"
import * as Report from "./demo/Report.js"
import { Stats } from "./demo/Stats.js"
import * as View from "./demo/View.js"
import * as Workers from "./demo/Workers.js"
import type { WorkerConfig } from "./worker.js"

const demo = Effect.gen(function*() {
  const options = yield* Options.parse(process.argv.slice(2), process.env, process.stdout.isTTY === true)
  const runId = randomUUID().slice(0, 8)
  const color = !options.plain && (process.stdout.hasColors?.() ?? false)

  const nodes = yield* Nodes.make(options)
  yield* Console.log(
    `${nodes.owned.length > 0 ? "Started" : "Using"} lock nodes ${nodes.urls.join(" ")}; ledger ${nodes.ledger}`
  )
  const quorum = Math.floor(nodes.urls.length / 2) + 1
  const stats = new Stats(options.workers, options.ttlMs)
  const context = { options, stats, quorum, status: nodes.status }

  yield* Console.log(`Starting ${options.workers} workers…`)
  const configs = Array.from({ length: options.workers }, (_, worker): WorkerConfig => ({
    worker,
    run: runId,
    resource: `demo:${runId}:account`,
    nodes: nodes.urls,
    ledger: nodes.ledger,
    ttlMs: options.ttlMs
  }))
  const workers = yield* Workers.start(configs, stats)
  yield* Ledger.start(nodes.ledger, runId)
  stats.startedAt = Date.now()

  const view = yield* View.start(context)
  const faults = yield* Effect.forkScoped(Faults.run(nodes, options, stats))

  /** Stops everything in order and prints the report; also runs when the demo is interrupted. */
  const finish = (interrupted: boolean) =>
    Effect.gen(function*() {
      yield* Fiber.interrupt(faults)
      yield* workers.stop
      yield* view.stop
      const totals = yield* Ledger.read(nodes.ledger, runId).pipe(
        Effect.timeout("2 seconds"),
        Effect.option,
        Effect.map(Option.getOrUndefined)
      )
      const ok = Report.isOk(totals, stats.crashed)
      yield* Console.log(Report.lines(context, totals, { interrupted, ok }, color).join("\n"))
      return ok
    })

  yield* Effect.sleep(Duration.seconds(options.seconds)).pipe(Effect.onInterrupt(() => finish(true)))
  if (!(yield* finish(false))) return yield* new ExitCode({ code: 1 })
})

const exitWith = (code: number, message: string) => Effect.zipRight(Console.error(message), new ExitCode({ code }))

const main = demo.pipe(
  Effect.scoped,
  Effect.catchAll((error) => {
    switch (error._tag) {
      case "ExitCode":
        return Effect.fail(error)
      case "HelpRequested":
        return Console.log(Options.usage)
      case "UsageError":
        return exitWith(2, `${error.message}\n\n${Options.usage}`)
      default: // redis-server missing, a node or a worker failing to start, the ledger unreachable
        return exitWith(1, error.message)
    }
  }),
  Effect.provide(NodeContext.layer)
)

run(main)
