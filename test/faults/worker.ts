/**
 * A worker process of the mutual-exclusion checker: `node --import tsx test/faults/worker.ts ARGS`
 * (ARGS is the base64url JSON of `WorkerArgs`: its id and the ledger's port). It takes jobs (one
 * `WorkerConfig` per run) from its list in the ledger until it gets `exit`. For each job it opens
 * one ioredis client per lock node, builds a Redlock over them through the public API, reports
 * ready, waits for the run's go signal, and runs its fibers against the one resource until the run
 * ends. Every critical section writes enter / act / exit records to the ledger. At the end of a
 * job it pushes its `WorkerResult` to the run's results.
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import type { Redis as Redis5 } from "ioredis"
import { createRequire } from "node:module"
import * as Lock from "../../src/Lock.js"
import * as Redlock from "../../src/Redlock.js"
import * as Ledger from "./support/Ledger.js"
import {
  acquireBudgetMs,
  decode,
  lostBudgetMs,
  type Role,
  type TypedTag,
  typedTags,
  type WorkerConfig,
  type WorkerResult
} from "./support/Protocol.js"

const args = decode(process.argv[2] ?? "")

// If the process that started us dies without stopping us (a killed test run), leave too.
setInterval(() => {
  try {
    process.kill(args.parentPid, 0)
  } catch {
    process.exit(4)
  }
}, 1_000).unref()

const describeUnknown = (u: unknown) => (u instanceof Error ? `${u.name}: ${u.message}` : String(u)).slice(0, 300)
const unhandled = { rejections: 0, exceptions: 0, errorEvents: 0, samples: [] as Array<string> }
process.on("unhandledRejection", (reason) => {
  unhandled.rejections++
  if (unhandled.samples.length < 5) unhandled.samples.push(`unhandledRejection ${describeUnknown(reason)}`)
})
process.on("uncaughtException", (error) => {
  unhandled.exceptions++
  if (unhandled.samples.length < 5) unhandled.samples.push(`uncaughtException ${describeUnknown(error)}`)
})
// ioredis reports an 'error' event nobody listens to with console.error("[ioredis] Unhandled error event: …").
const consoleError = console.error.bind(console)
console.error = (...parts: Array<unknown>) => {
  if (parts.some((part) => typeof part === "string" && part.includes("Unhandled error event"))) {
    unhandled.errorEvents++
    if (unhandled.samples.length < 5) unhandled.samples.push(parts.map(String).join(" ").slice(0, 300))
  }
  consoleError(...parts)
}

/** The lock clients come from the ioredis major under test (the vitest project sets IOREDIS_MAJOR). */
const ioredisPackage = process.env["IOREDIS_MAJOR"] === "6" ? "ioredis6" : "ioredis"
const RedisClass: typeof Redis5 = ((await import(ioredisPackage)) as { Redis: typeof Redis5 }).Redis
const ioredisVersion = String(
  (createRequire(import.meta.url)(`${ioredisPackage}/package.json`) as { version?: unknown }).version
)

class LedgerError extends Error {
  readonly _tag = "LedgerError"
}

const uniform = (min: number, max: number) => min + Math.random() * (max - min)

const busyWait = (ms: number) => {
  const until = Date.now() + ms
  while (Date.now() < until) {
    // a holder paused past its ttl: nothing else in this process runs meanwhile
  }
}

const runJob = (config: WorkerConfig, ledgerRedis: import("ioredis").Redis) =>
  Effect.gen(function*() {
    const ledger = Ledger.client(ledgerRedis, config.run, config.id)
    const before = { ...unhandled, samples: unhandled.samples.length }
    const stats = {
      calls: 0,
      entered: 0,
      failures: Object.fromEntries(typedTags.map((tag) => [tag, 0])) as Record<TypedTag, number>,
      untyped: 0,
      untypedSamples: [] as Array<string>,
      overBudget: 0,
      maxFailedAcquireMs: 0,
      lostOverBudget: 0,
      maxLostMs: 0,
      ledgerErrors: 0,
      latencies: [] as Array<number>,
      inFlight: 0
    }
    const budget = acquireBudgetMs(config)
    const lostBudget = lostBudgetMs(config)
    const ledgerCall = <A>(f: () => Promise<A>) =>
      Effect.tryPromise({
        try: f,
        catch: (error) => {
          stats.ledgerErrors++
          return new LedgerError(describeUnknown(error))
        }
      })

    const clients = yield* Effect.forEach(config.lockPorts, (port) =>
      Effect.acquireRelease(
        Effect.sync(() => new RedisClass({ host: "127.0.0.1", port, ...config.redisOptions })),
        (client) => Effect.sync(() => client.disconnect())
      ))
    // No error listener of our own: the library must keep ioredis from printing "Unhandled error event".
    yield* Effect.forEach(clients, (client) =>
      Effect.async<void>((resume) => {
        if (client.status === "ready") return resume(Effect.void)
        client.once("ready", () => resume(Effect.void))
      }).pipe(Effect.timeout("10 seconds"), Effect.ignore))
    const redlock = yield* Redlock.make({
      clients,
      ttl: config.ttlMs,
      nodeTimeout: config.nodeTimeoutMs,
      retry: { times: config.retry.times, delay: config.retry.delayMs, jitter: config.retry.jitter }
    }).pipe(Effect.orDie)

    yield* Effect.promise(() => ledgerRedis.incr(ledger.keys.ready))
    let goAt = Date.now()
    for (const waitUntil = Date.now() + 60_000; Date.now() < waitUntil;) {
      const go = yield* Effect.promise(() => ledgerRedis.get(ledger.keys.go))
      if (go !== null) {
        goAt = Number(go)
        break
      }
      yield* Effect.sleep("5 millis")
    }
    const endAt = goAt + config.runMs

    // `known`: whether the section may read the lock's validity (a withLock body is run as if it
    // had no handle: it cannot stop itself, only be interrupted).
    const body = (fiber: number, role: Role, lock: Lock.Lock, known: boolean, onEnter: () => void) =>
      Effect.gen(function*() {
        const remaining = () => known ? lock.expiresAt - Date.now() : undefined
        onEnter()
        const { token } = yield* Effect.uninterruptible(
          ledgerCall(() => ledger.enter(fiber, remaining(), lock.fencingToken))
        )
        const work = Effect.gen(function*() {
          const workMs = role === "zombie" ? config.zombieHoldMs : uniform(config.workMs[0], config.workMs[1])
          const until = Date.now() + workMs
          let stalled = role !== "stall"
          while (Date.now() < until) {
            const sleepMs = Math.max(0, Math.min(config.actEveryMs, until - Date.now()))
            const dueAt = Date.now() + sleepMs
            yield* Effect.sleep(sleepMs)
            const lateMs = Math.max(0, Date.now() - dueAt)
            yield* ledgerCall(() => {
              // The stall: the process freezes between deciding to write and writing (a GC pause,
              // a SIGSTOP), so the write goes out late without the fiber ever yielding.
              if (!stalled) {
                stalled = true
                busyWait(config.stallMs)
              }
              return ledger.write("act", token, fiber, remaining(), lateMs)
            })
          }
          yield* ledgerCall(() => ledger.write("exit", token, fiber, remaining()))
        })
        yield* work.pipe(
          Effect.onInterrupt(() => Effect.ignore(ledgerCall(() => ledger.write("interrupted", token, fiber, remaining()))))
        )
      })

    const section = (fiber: number, role: Role, onEnter: () => void) => {
      switch (role) {
        case "withLock":
          return redlock.withLock(config.resource, { autoExtend: config.autoExtend, fencing: config.fencing })(
            (lock) => body(fiber, role, lock, false, onEnter)
          )
        case "acquire":
        case "stall":
          return Effect.scoped(
            Effect.flatMap(
              redlock.acquire(config.resource, { autoExtend: config.autoExtend, fencing: config.fencing }),
              (lock) => Effect.raceFirst(body(fiber, role, lock, true, onEnter), Lock.awaitLost(lock))
            )
          )
        case "zombie":
          return Effect.scoped(
            Effect.flatMap(
              redlock.acquire(config.resource, { autoExtend: false, fencing: config.fencing }),
              (lock) => body(fiber, role, lock, true, onEnter)
            )
          )
      }
    }

    const classify = (cause: Cause.Cause<unknown>, startedAt: number, enteredAt: number | undefined) => {
      const error = Option.getOrUndefined(Cause.failureOption(cause)) as { readonly _tag?: unknown } | undefined
      const tag = typeof error === "object" && error !== null ? error._tag : undefined
      if (Cause.isDie(cause) || typeof tag !== "string" || !(typedTags as ReadonlyArray<string>).includes(tag)) {
        if (tag === "LedgerError") return
        stats.untyped++
        if (stats.untypedSamples.length < 5) stats.untypedSamples.push(Cause.pretty(cause).slice(0, 500))
        return
      }
      stats.failures[tag as TypedTag]++
      const now = Date.now()
      if (tag === "LockLost") {
        const ms = now - (enteredAt ?? startedAt)
        stats.maxLostMs = Math.max(stats.maxLostMs, ms)
        if (ms > lostBudget) stats.lostOverBudget++
      } else if (tag === "LockContended" || tag === "QuorumUnavailable") {
        const ms = now - startedAt
        stats.maxFailedAcquireMs = Math.max(stats.maxFailedAcquireMs, ms)
        if (ms > budget) stats.overBudget++
      }
    }

    const loop = (fiber: number, role: Role) =>
      Effect.gen(function*() {
        while (Date.now() < endAt) {
          const startedAt = Date.now()
          let enteredAt: number | undefined
          stats.inFlight++
          const exit = yield* Effect.exit(section(fiber, role, () => {
            enteredAt = Date.now()
            stats.entered++
            if (config.keepLatencies) stats.latencies.push(enteredAt - startedAt)
          }))
          stats.inFlight--
          stats.calls++
          if (Exit.isFailure(exit)) classify(exit.cause, startedAt, enteredAt)
          yield* Effect.sleep(uniform(0, config.idleMs))
        }
      })

    const waitMs = Math.max(0, goAt - Date.now())
    if (waitMs > 0) yield* Effect.sleep(waitMs)
    const finished = yield* Effect.forEach(config.roles, (role, fiber) => loop(fiber, role), {
      concurrency: "unbounded",
      discard: true
    }).pipe(Effect.timeout(config.runMs + budget + lostBudget + config.zombieHoldMs), Effect.option)

    const result: WorkerResult = {
      id: config.id,
      ioredis: ioredisVersion,
      calls: stats.calls,
      entered: stats.entered,
      failures: stats.failures,
      untyped: stats.untyped,
      unhandledErrorEvents: 0,
      untypedSamples: stats.untypedSamples,
      overBudget: stats.overBudget,
      acquireBudgetMs: budget,
      maxFailedAcquireMs: stats.maxFailedAcquireMs,
      lostOverBudget: stats.lostOverBudget,
      lostBudgetMs: lostBudget,
      maxLostMs: stats.maxLostMs,
      ledgerErrors: stats.ledgerErrors,
      unhandledRejections: 0,
      uncaughtExceptions: 0,
      unhandledSamples: [],
      latencies: stats.latencies,
      interruptedAtEnd: Option.isNone(finished) ? stats.inFlight : 0
    }
    return { result, before }
  }).pipe(
    Effect.scoped,
    // Counted after the job's scope closed: the Redlock's error listeners are gone, the clients too.
    Effect.flatMap(({ before, result }) =>
      Effect.as(Effect.sleep("20 millis"), {
        ...result,
        unhandledErrorEvents: unhandled.errorEvents - before.errorEvents,
        unhandledRejections: unhandled.rejections - before.rejections,
        uncaughtExceptions: unhandled.exceptions - before.exceptions,
        unhandledSamples: unhandled.samples.slice(before.samples)
      } satisfies WorkerResult)
    )
  )

const ledgerRedis = Ledger.open(args.ledgerPort)
// BLPOP blocks its connection: jobs come on a connection of their own.
const jobsRedis = Ledger.open(args.ledgerPort)
await ledgerRedis.incr(Ledger.poolKeys.started)
while (true) {
  const popped = await jobsRedis.blpop(Ledger.poolKeys.jobs(args.id), 0)
  const job = popped?.[1]
  if (job === undefined || job === "exit") break
  const config = JSON.parse(job) as WorkerConfig
  const result = await Effect.runPromise(runJob(config, ledgerRedis))
  await ledgerRedis.rpush(Ledger.keysOf(config.run).results, JSON.stringify(result))
}
ledgerRedis.disconnect()
jobsRedis.disconnect()
// Nothing may keep the process alive now; if something does, say what and leave.
setTimeout(() => {
  process.stderr.write(`LINGER ${JSON.stringify(process.getActiveResourcesInfo())}\n`)
  process.exit(3)
}, 5_000).unref()
