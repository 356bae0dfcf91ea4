/**
 * The worker processes: `node --import tsx test/examples/worker.ts`, one per worker, spawned with
 * @effect/platform's Command (each in its own process group, which the scope kills on close).
 */
import * as Command from "@effect/platform/Command"
import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { fileURLToPath } from "node:url"
import type { WorkerConfig } from "../worker.js"
import * as Protocol from "./Protocol.js"
import type { Stats } from "./Stats.js"

export class WorkerError extends Data.TaggedError("WorkerError")<{ readonly message: string }> {}

const repoRoot = fileURLToPath(new URL("../../..", import.meta.url))
const workerScript = fileURLToPath(new URL("../worker.ts", import.meta.url))

export interface Workers {
  /** Asks every worker to stop (SIGTERM: it releases the lock and exits), then waits for their last events. */
  readonly stop: Effect.Effect<void>
}

interface Spawned {
  readonly worker: number
  readonly process: CommandExecutor.Process
  readonly ready: Deferred.Deferred<void, WorkerError>
  readonly reader: Fiber.Fiber<void>
}

const tail = (lines: ReadonlyArray<string>) => lines.join("").trim().split("\n").slice(-8).join("\n")

const spawn = (config: WorkerConfig, stats: Stats, stopping: { value: boolean }) =>
  Effect.gen(function*() {
    const { worker } = config
    const command = Command.make(process.execPath, "--import", "tsx", workerScript).pipe(
      Command.workingDirectory(repoRoot),
      Command.env({ DEMO_WORKER: JSON.stringify(config) })
    )
    const child = yield* Command.start(command).pipe(
      Effect.mapError((error) => new WorkerError({ message: `cannot start worker ${worker}: ${error.message}` }))
    )
    const ready = yield* Deferred.make<void, WorkerError>()
    const stderr: Array<string> = []

    const reader = yield* child.stdout.pipe(
      Stream.decodeText(),
      Stream.splitLines,
      Stream.runForEach((line) =>
        Effect.sync(() => {
          const event = Protocol.parse(worker, line)
          stats.record(event)
          if (event._tag === "Ready") Deferred.unsafeDone(ready, Effect.void)
        })
      ),
      Effect.ignore,
      Effect.forkScoped
    )
    yield* child.stderr.pipe(
      Stream.decodeText(),
      Stream.runForEach((text) => Effect.sync(() => stderr.push(text))),
      Effect.ignore,
      Effect.forkScoped
    )
    // A worker that exits on its own is a failure of the demo, reported with its stderr.
    yield* child.exitCode.pipe(
      Effect.either,
      Effect.flatMap((exit) =>
        Effect.sync(() => {
          stats.stopped(worker)
          if (stopping.value) return
          const how = exit._tag === "Right" ? `with code ${exit.right}` : exit.left.message
          const message = `worker ${worker} exited ${how}${stderr.length > 0 ? `:\n${tail(stderr)}` : ""}`
          stats.crashed++
          stats.note(message)
          Deferred.unsafeDone(ready, Effect.fail(new WorkerError({ message })))
        })
      ),
      Effect.forkScoped
    )
    return { worker, process: child, ready, reader } satisfies Spawned
  })

/** SIGTERM: the worker finishes its round (at most one acquisition, whose work ends at once) and exits. */
const stopOne = ({ process, reader }: Spawned) =>
  process.kill("SIGTERM").pipe(
    Effect.timeout("10 seconds"),
    Effect.catchAll(() => Effect.ignore(process.kill("SIGKILL"))),
    Effect.zipRight(Fiber.await(reader).pipe(Effect.timeout("1 second"), Effect.ignore))
  )

/** Starts the workers and waits until each one has connected and reported `Ready`. */
export const start = (
  configs: ReadonlyArray<WorkerConfig>,
  stats: Stats
): Effect.Effect<Workers, WorkerError, CommandExecutor.CommandExecutor | Scope.Scope> =>
  Effect.gen(function*() {
    const stopping = { value: false }
    const spawned = yield* Effect.forEach(configs, (config) => spawn(config, stats, stopping), {
      concurrency: "unbounded"
    })
    yield* Effect.forEach(spawned, ({ ready }) => Deferred.await(ready), { discard: true }).pipe(
      Effect.timeoutFail({
        duration: "30 seconds",
        onTimeout: () => new WorkerError({ message: "the workers did not start within 30 s" })
      })
    )
    return {
      stop: Effect.suspend(() => {
        stopping.value = true
        return Effect.forEach(spawned, stopOne, { concurrency: "unbounded", discard: true })
      })
    }
  })
