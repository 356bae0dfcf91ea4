/**
 * One demo worker (a child process of demo.ts): contends for the shared resource through
 * `Redlock.withLock` in a loop, does some "work" while holding it, and reports every step to the
 * demo as JSON lines on stdout (see demo/Protocol.ts). Stops on SIGTERM/SIGINT, or when its stdin
 * closes because the demo is gone, leaving the critical section and releasing the lock first.
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as HashMap from "effect/HashMap"
import * as Logger from "effect/Logger"
import * as Random from "effect/Random"
import * as Schema from "effect/Schema"
import { Redlock } from "../../src/index.js"
import * as Ledger from "./demo/Ledger.js"
import * as Protocol from "./demo/Protocol.js"

/** What the demo hands each worker, as JSON in the `DEMO_WORKER` environment variable. */
export const WorkerConfig = Schema.Struct({
  worker: Schema.Number,
  run: Schema.String,
  resource: Schema.String,
  nodes: Schema.Array(Schema.String),
  ledger: Schema.String,
  ttlMs: Schema.Number
})
export type WorkerConfig = typeof WorkerConfig.Type

const readConfig = Schema.decodeUnknown(Schema.parseJson(WorkerConfig))(process.env["DEMO_WORKER"])

/** Library logs (e.g. "release did not reach every node" while a node is down) go to the demo too. */
const reportLogs = (worker: number) =>
  Logger.replace(
    Logger.defaultLogger,
    Logger.make(({ annotations, logLevel, message }) => {
      const text = (Array.isArray(message) ? message : [message]).map(String).join(" ")
      const details = [...HashMap.toEntries(annotations)].map(([key, value]) => `${key}=${String(value)}`)
      Protocol.emit(Protocol.Log.make({
        worker,
        level: logLevel.label,
        message: details.length === 0 ? text : `${text} (${details.join(", ")})`
      }))
    })
  )

/** Mostly short jobs; one in 25 outlives the ttl, so it only survives by automatic extension. */
const workTime = (ttlMs: number) =>
  Effect.flatMap(Random.nextIntBetween(0, 25), (dice) =>
    dice === 0
      ? Random.nextIntBetween(Math.round(ttlMs * 1.1), Math.round(ttlMs * 1.8))
      : Random.nextIntBetween(20, 150))

/**
 * Completed on SIGTERM or SIGINT, and when the demo closes our stdin (it is gone, however it
 * went): the work in hand ends at once, the critical section still exits through the ledger, and
 * no new round starts.
 */
const stopSignal = Effect.acquireRelease(
  Effect.sync(() => {
    const stop = Deferred.unsafeMake<void>(FiberId.none)
    const onStop = () => Deferred.unsafeDone(stop, Effect.void)
    process.on("SIGTERM", onStop).on("SIGINT", onStop)
    process.stdin.on("end", onStop).resume()
    process.stdout.on("error", onStop) // EPIPE: the demo is gone
    const remove = () => {
      process.off("SIGTERM", onStop).off("SIGINT", onStop)
      process.stdin.off("end", onStop).destroy()
    }
    return { stop, remove }
  }),
  ({ remove }) => Effect.sync(remove)
).pipe(Effect.map(({ stop }) => stop))

const contend = (config: WorkerConfig) =>
  Effect.gen(function*() {
    const { worker } = config
    const stop = yield* stopSignal
    const ledger = yield* Ledger.make(config.ledger, config.run, worker)
    // The work ends early when the worker is asked to stop (and is interrupted if the lock is lost).
    const work = Effect.flatMap(workTime(config.ttlMs), (ms) => Effect.sleep(ms)).pipe(
      Effect.raceFirst(Deferred.await(stop))
    )

    /** The critical section: ledger enter, work, ledger exit (the exit runs even when interrupted). */
    const criticalSection = (waitingSince: number) =>
      Effect.acquireUseRelease(
        Effect.gen(function*() {
          const entry = yield* ledger.enter
          const enteredAt = yield* Clock.currentTimeMillis
          Protocol.emit(Protocol.Entered.make({ worker, ...entry, waitedMs: enteredAt - waitingSince }))
          return { entry, enteredAt }
        }),
        () => work,
        ({ entry, enteredAt }) =>
          Effect.gen(function*() {
            yield* Effect.ignore(ledger.exit(entry))
            const heldMs = (yield* Clock.currentTimeMillis) - enteredAt
            Protocol.emit(Protocol.Exited.make({ worker, token: entry.token, heldMs }))
          })
      )

    /** One round: wait for the lock, work, release, pause. */
    const cycle = Effect.gen(function*() {
      Protocol.emit(Protocol.Waiting.make({ worker }))
      const since = yield* Clock.currentTimeMillis
      yield* criticalSection(since).pipe(
        Redlock.withLock(config.resource, {
          ttl: config.ttlMs,
          // Poll every ~50 ms, give up after 5 s: LockContended.
          retry: { times: Infinity, delay: "50 millis" },
          deadline: "5 seconds"
        }),
        Effect.catchTags({
          LockContended: (error) => Effect.sync(() => Protocol.emit(failed(worker, error))),
          QuorumUnavailable: (error) => Effect.sync(() => Protocol.emit(failed(worker, error))),
          LockLost: (error) => Effect.sync(() => Protocol.emit(failed(worker, error)))
        })
      )
      yield* Effect.sleep(yield* Random.nextIntBetween(10, 60)).pipe(Effect.raceFirst(Deferred.await(stop)))
    })

    Protocol.emit(Protocol.Ready.make({ worker, pid: process.pid }))
    yield* ledger.awaitStart.pipe(Effect.raceFirst(Deferred.await(stop)))
    while (!(yield* Deferred.isDone(stop))) yield* cycle
  })

const failed = (worker: number, error: { readonly _tag: string; readonly message: string }) =>
  Protocol.Failed.make({ worker, error: error._tag, message: error.message })

const main = Effect.gen(function*() {
  const config = yield* readConfig
  yield* contend(config).pipe(
    Effect.scoped,
    Effect.provide(Redlock.layer({ nodes: config.nodes, ttl: config.ttlMs })),
    Effect.provide(reportLogs(config.worker))
  )
})

Effect.runFork(main).addObserver((exit) => {
  if (Exit.isFailure(exit)) process.stderr.write(`${Cause.pretty(exit.cause)}\n`)
  process.exit(Exit.isSuccess(exit) ? 0 : 1)
})
