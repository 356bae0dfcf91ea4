import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import type { NoSuchElementException } from "effect/Cause"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Supervisor from "effect/Supervisor"
import * as Tracer from "effect/Tracer"
import { Redis } from "ioredis"
import * as Lock from "../src/Lock.js"
import type { LockLost } from "../src/RedlockError.js"
import * as Scripts from "../src/internal/scripts.js"
import type { RedisNode } from "./support/RedisNodes.js"
import { eventually, keysEverywhere, resource, withRedlock } from "./support/setup.js"

/** Counts unhandled rejections for the duration of the scope. */
const watchUnhandled = Effect.acquireRelease(
  Effect.sync(() => {
    const seen: Array<unknown> = []
    const listener = (reason: unknown) => seen.push(reason)
    process.on("unhandledRejection", listener)
    return { seen, listener }
  }),
  ({ listener }) => Effect.sync(() => process.off("unhandledRejection", listener))
)

/** Records every command a node executes, in order, through MONITOR. */
const monitor = (node: RedisNode) =>
  Effect.gen(function*() {
    const commands: Array<ReadonlyArray<string>> = []
    const client = yield* Effect.acquireRelease(
      Effect.promise(() => new Redis({ port: node.port, host: "127.0.0.1", lazyConnect: true }).monitor()),
      (client) => Effect.sync(() => client.disconnect())
    )
    client.on("monitor", (_time: string, args: ReadonlyArray<string>) => commands.push(args))
    return commands
  })

const scriptOf = (command: ReadonlyArray<string>) =>
  command[0]?.toLowerCase() === "evalsha"
    ? command[1] === Scripts.release.sha ? "release" : command[1] === Scripts.extend.sha ? "extend" : "other"
    : command[0]?.toLowerCase()

class Greeting extends Context.Tag("test/Greeting")<Greeting, string>() {}

describe("withLock", () => {
  it.scopedLive("keeps the lock through a body five times the ttl; a competitor never gets it", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(3)
      const name = resource("long-body")
      const stolen = yield* Ref.make(0)
      const polls = yield* Ref.make(0)
      // Only a take while the body runs is a theft: after the release the competitor may win fairly.
      let bodyRunning = false
      const competitor = yield* Effect.fork(
        Effect.forever(
          Effect.scoped(redlock.tryAcquire(name, { ttl: 1_000 })).pipe(
            Effect.tap((lock) => Option.isSome(lock) && bodyRunning ? Ref.update(stolen, (n) => n + 1) : Effect.void),
            Effect.zipRight(Ref.update(polls, (n) => n + 1)),
            Effect.zipRight(Effect.sleep("20 millis"))
          )
        )
      )
      const body = Effect.acquireUseRelease(
        Effect.sync(() => (bodyRunning = true)),
        () => Effect.as(Effect.sleep("1500 millis"), "done"),
        () => Effect.sync(() => (bodyRunning = false))
      )
      const result = yield* redlock.withLock(body, name, { ttl: 300 })
      yield* Fiber.interrupt(competitor)
      assert.strictEqual(result, "done")
      assert.strictEqual(yield* Ref.get(stolen), 0)
      assert.isAbove(yield* Ref.get(polls), 20)
      assert.deepStrictEqual(yield* keysEverywhere(cluster, "test:*"), [[], [], []])
    }))

  it.scopedLive("a dead majority interrupts the body with LockLost once validity runs out", () =>
    Effect.gen(function*() {
      const unhandled = yield* watchUnhandled
      const { cluster, redlock } = yield* withRedlock(3)
      const finished = yield* Ref.make(false)
      const body = Effect.gen(function*() {
        yield* Effect.sleep("100 millis")
        yield* Effect.forEach(cluster.nodes.slice(0, 2), (node) => node.kill)
        yield* Effect.sleep("5 seconds")
        yield* Ref.set(finished, true)
      })
      const started = Date.now()
      const exit = yield* Effect.exit(redlock.withLock(body, resource("majority-dies"), { ttl: 600 }))
      const elapsed = Date.now() - started
      assert.isTrue(Exit.isFailure(exit))
      if (Exit.isFailure(exit)) {
        const failure = Cause.failureOption(exit.cause)
        assert.isTrue(Option.isSome(failure) && failure.value._tag === "LockLost")
        if (Option.isSome(failure) && failure.value._tag === "LockLost") {
          assert.strictEqual(failure.value.reason, "unavailable")
        }
        assert.isFalse(Cause.isDie(exit.cause))
      }
      assert.isFalse(yield* Ref.get(finished))
      assert.isBelow(elapsed, 3_000, "interrupted at the lock's expiry, long before the body's end")
      assert.deepStrictEqual(unhandled.seen, [])
    }))

  it.scopedLive("a dead minority does not disturb the body", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(3)
      const body = Effect.gen(function*() {
        yield* Effect.sleep("100 millis")
        yield* cluster.nodes[0]!.kill
        yield* Effect.sleep("1200 millis")
        return "completed"
      })
      const result = yield* redlock.withLock(body, resource("minority-dies"), { ttl: 400 })
      assert.strictEqual(result, "completed")
    }))

  it.scopedLive("a loss found by the body's own extend interrupts the body at once, not at the next extension", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(3)
      const name = resource("taken-mid-body")
      const finished = yield* Ref.make(false)
      const body = (lock: Lock.Lock) =>
        Effect.gen(function*() {
          for (const node of cluster.nodes) yield* node.call("SET", name, "someone else", "PX", 60_000)
          // The body ignores the failure; the keeper must not let it run on until its next extension.
          yield* Effect.ignore(redlock.extend(lock))
          yield* Effect.sleep("5 seconds")
          yield* Ref.set(finished, true)
        })
      const started = Date.now()
      // With a 30 s ttl the keeper's first extension would come 20 s from now.
      const error = yield* Effect.flip(redlock.withLock(body, name, { ttl: "30 seconds" }))
      assert.strictEqual(error._tag === "LockLost" && error.reason, "taken")
      assert.isBelow(Date.now() - started, 3_000)
      assert.isFalse(yield* Ref.get(finished))
      for (const node of cluster.nodes) assert.strictEqual(yield* node.get(name), "someone else")
    }))

  it.scopedLive("the key deleted from a majority mid-body is LockLost(expired), the body interrupted", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(3)
      const name = resource("deleted")
      const finished = yield* Ref.make(false)
      const body = Effect.gen(function*() {
        yield* Effect.sleep("50 millis")
        yield* Effect.forEach(cluster.nodes.slice(1), (node) => node.del(name))
        yield* Effect.sleep("3 seconds")
        yield* Ref.set(finished, true)
      })
      const error = yield* Effect.flip(redlock.withLock(body, name, { ttl: 600 }))
      assert.strictEqual(error._tag === "LockLost" && error.reason, "expired")
      assert.isFalse(yield* Ref.get(finished))
      assert.deepStrictEqual(yield* keysEverywhere(cluster, "test:*"), [[], [], []])
    }))

  it.scopedLive("a lock lost while the body cannot be interrupted is still LockLost, not the body's success", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(3)
      const name = resource("lost-uninterruptible")
      const bodyOn = (name: string) =>
        Effect.gen(function*() {
          yield* Effect.forEach(cluster.nodes.slice(1), (node) => node.del(name))
          // Past the first extension (about 400 ms in), which finds the keys gone.
          yield* Effect.sleep("900 millis")
          return "done"
        })
      const body = bodyOn(name)
      // Called from an uninterruptible region, the body cannot be interrupted when the lock is lost.
      const result = yield* Effect.either(Effect.uninterruptible(redlock.withLock(body, name, { ttl: 600 })))
      assert.isTrue(result._tag === "Left" && result.left._tag === "LockLost", `got ${JSON.stringify(result)}`)
      // A failure of the body's own is kept in the cause, after the loss.
      const other = resource("lost-failing")
      const failing = Effect.zipRight(bodyOn(other), Effect.fail("the body's own error" as const))
      const exit = yield* Effect.exit(Effect.uninterruptible(redlock.withLock(failing, other, { ttl: 600 })))
      const failures = Exit.isFailure(exit) ? [...Cause.failures(exit.cause)] : []
      assert.deepStrictEqual(failures.map((failure) => typeof failure === "string" ? failure : failure._tag), [
        "LockLost",
        "the body's own error"
      ])
    }))

  it.scopedLive("Lock.awaitLost raced inside an uninterruptible withLock ends with the race", () =>
    Effect.gen(function*() {
      const { redlock } = yield* withRedlock(1)
      // Uninterruptible, the race would wait for ever for its loser unless awaitLost can be interrupted.
      const fiber = yield* Effect.forkDaemon(Effect.uninterruptible(
        redlock.withLock((lock) => Effect.raceFirst(Effect.succeed("work done"), Lock.awaitLost(lock)), resource("await-race"))
      ))
      const exit = yield* eventually(Effect.sync(() => fiber.unsafePoll()), (exit) => exit !== null)
      assert.isTrue(exit !== null && Exit.isSuccess(exit) && exit.value === "work done")
    }))

  it.scopedLive("interrupted from outside, the body's finalizers still run under the lock", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(3)
      const name = resource("outside")
      const seen: Array<string | null> = []
      const body = Effect.never.pipe(
        Effect.onInterrupt(() =>
          Effect.flatMap(Effect.orDie(cluster.nodes[0]!.get(name)), (value) => Effect.sync(() => seen.push(value)))
        )
      )
      const fiber = yield* Effect.fork(redlock.withLock(body, name, { ttl: 2_000 }))
      yield* Effect.sleep("100 millis")
      yield* Fiber.interrupt(fiber)
      assert.strictEqual(seen.length, 1)
      assert.isNotNull(seen[0], "the key was still held while the body cleaned up")
      assert.deepStrictEqual(yield* keysEverywhere(cluster, "test:*"), [[], [], []])
    }))

  it.scopedLive("the body has a scope of its own, closed while the lock is still held", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(3)
      const seen: Array<{ readonly exit: string; readonly value: string | null }> = []
      const holding = (name: string) =>
        Effect.addFinalizer((exit) =>
          Effect.flatMap(
            Effect.orDie(cluster.nodes[0]!.get(name)),
            (value) => Effect.sync(() => seen.push({ exit: exit._tag, value }))
          )
        )
      // The test's own scope is in the context: the body's finalizer must not be added to it.
      const first = resource("body-scope")
      assert.strictEqual(yield* redlock.withLock(Effect.as(holding(first), 1), first), 1)
      assert.strictEqual(seen.length, 1, "finalized before withLock returned")
      assert.isNotNull(seen[0]!.value, "the key was still held")
      // A failing body: its finalizer sees the failure, then the lock is released.
      const second = resource("body-scope-failure")
      const failed = yield* Effect.exit(redlock.withLock(Effect.zipRight(holding(second), Effect.fail("boom")), second))
      assert.deepStrictEqual(failed, Exit.fail("boom"))
      assert.deepStrictEqual(seen[1], { exit: "Failure", value: seen[1]!.value })
      assert.isNotNull(seen[1]!.value)
      // tryWithLock, run where no Scope is in the context at all.
      const third = resource("body-scope-try")
      const tried = yield* Effect.promise(() => Effect.runPromiseExit(redlock.tryWithLock(holding(third), third)))
      assert.deepStrictEqual(tried, Exit.succeed(Option.some(undefined)))
      assert.isNotNull(seen[2]?.value)
      // A finalizer that dies: the defect is the result, and the lock is released all the same.
      const fourth = resource("body-scope-defect")
      const died = yield* Effect.exit(redlock.withLock(Effect.addFinalizer(() => Effect.die("finalizer")), fourth))
      assert.deepStrictEqual(died, Exit.die("finalizer"))
      assert.deepStrictEqual(yield* keysEverywhere(cluster, "test:*"), [[], [], []])
    }))

  it.scopedLive("the keeper also covers the body's finalizers, even after a body that finished at once", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(1)
      const name = resource("slow-finalizer")
      let held: Lock.Lock | undefined
      let valueAtTheEnd: string | null = null
      // The body returns at once; its finalizer outlasts the ttl three times over.
      yield* redlock.withLock((lock) => {
        held = lock
        return Effect.addFinalizer(() =>
          Effect.zipRight(
            Effect.sleep("750 millis"),
            Effect.flatMap(Effect.orDie(cluster.nodes[0]!.get(name)), (value) => Effect.sync(() => valueAtTheEnd = value))
          )
        )
      }, name, { ttl: 250 })
      assert.isNotNull(valueAtTheEnd, "the key was still held when the finalizer ended")
      assert.isAtLeast(held!.extensions, 2)
      assert.deepStrictEqual(yield* keysEverywhere(cluster, "test:*"), [[]])
    }))

  it.scopedLive("Lock.awaitLost in the body leaves the loss to the keeper: the reason is the keeper's", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(1, { nodeTimeout: 80 })
      const node = cluster.nodes[0]!
      for (let round = 0; round < 3; round++) {
        const lost = yield* Effect.flip(redlock.withLock(
          (lock) => Effect.zipRight(node.pause, Effect.raceFirst(Effect.never, Lock.awaitLost(lock))),
          resource(`await-lost-${round}`),
          { ttl: 250 }
        )).pipe(Effect.ensuring(node.resume))
        assert.strictEqual(lost._tag, "LockLost")
        assert.strictEqual((lost as LockLost).reason, "unavailable", `round ${round}`)
      }
    }))

  it.scopedLive("a caller interrupted while a lost lock's body cleans up sees its interruption, not the LockLost", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(1, { nodeTimeout: 80 })
      const node = cluster.nodes[0]!
      const cleaning = yield* Deferred.make<void>()
      const body = Effect.zipRight(node.pause, Effect.never).pipe(
        Effect.onInterrupt(() => Effect.zipRight(Deferred.succeed(cleaning, undefined), Effect.sleep("300 millis")))
      )
      const fiber = yield* Effect.fork(redlock.withLock(body, resource("interrupted-cleanup"), { ttl: 250 }))
      yield* Deferred.await(cleaning)
      const exit = yield* Fiber.interrupt(fiber)
      yield* node.resume
      assert.isTrue(Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause), String(exit))
    }))

  it.scopedLive("the body sees the caller's services, FiberRefs and span, whether it completes at once or later", () =>
    Effect.gen(function*() {
      const { redlock } = yield* withRedlock(1)
      const ref = yield* FiberRef.make("unset")
      const native = yield* Effect.tracer
      const tracer = Tracer.make({ span: (...args) => native.span(...args), context: native.context })
      const read = Effect.all([Greeting, FiberRef.get(ref), Effect.map(Effect.currentSpan, (span) => span.name)])
      const run = (body: Effect.Effect<readonly [string, string, string], NoSuchElementException, Greeting>) =>
        redlock.withLock(body, resource("context")).pipe(
          Effect.locally(ref, "set by the caller"),
          Effect.provideService(Greeting, "hello"),
          Effect.withTracer(tracer)
        )
      const expected = ["hello", "set by the caller", "Redlock.withLock"] as const
      assert.deepStrictEqual(yield* run(read), expected)
      assert.deepStrictEqual(yield* run(Effect.zipRight(Effect.sleep("5 millis"), read)), expected)
    }))

  it.scopedLive("inside an uninterruptible region withLock completes", () =>
    Effect.gen(function*() {
      const { redlock } = yield* withRedlock(1)
      const result = yield* Effect.uninterruptible(redlock.withLock(Effect.succeed(42), resource("uninterruptible")))
      assert.strictEqual(result, 42)
      const withoutExtension = yield* Effect.uninterruptible(
        redlock.withLock(Effect.succeed(7), resource("uninterruptible-2"), { autoExtend: false })
      )
      assert.strictEqual(withoutExtension, 7)
    }))

  it.scopedLive("the body may take the lock as an argument", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(3)
      const name = resource("argument")
      const value = yield* redlock.withLock((lock) => Effect.succeed(lock.value), name)
      const tried = yield* redlock.tryWithLock(name)((lock) => Effect.succeed(lock.resources))
      assert.match(value, /^[0-9a-f-]{36}$/)
      assert.deepStrictEqual(tried, Option.some([name]))
      assert.deepStrictEqual(yield* keysEverywhere(cluster, "test:*"), [[], [], []])
    }))

  it.scopedLive("the extension cap ends the lock at its expiry with LockLost(limit)", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(3)
      const { lock, lost } = yield* Effect.scoped(Effect.gen(function*() {
        const lock = yield* redlock.acquire(resource("cap-count"), {
          ttl: 300,
          nodeTimeout: 100,
          autoExtend: { maxExtensions: 2 }
        })
        return { lock, lost: yield* Effect.flip(Lock.awaitLost(lock)) }
      }))
      assert.strictEqual(lost.reason, "limit")
      assert.strictEqual(lock.extensions, 2)
      for (const node of cluster.nodes) yield* node.resetStats
      yield* Effect.sleep("300 millis")
      assert.isUndefined((yield* cluster.nodes[0]!.commandCalls)["evalsha"], "nothing sent after the loss")

      const started = Date.now()
      const byTime = yield* Effect.flip(redlock.withLock(Effect.sleep("3 seconds"), resource("cap-time"), {
        ttl: 300,
        autoExtend: { maxHoldTime: "700 millis" }
      }))
      assert.strictEqual(byTime._tag === "LockLost" && byTime.reason, "limit")
      assert.isBelow(Date.now() - started, 1_500, "held no longer than the cap allows")
    }))

  it.scopedLive("without automatic extension the body is interrupted when the ttl runs out", () =>
    Effect.gen(function*() {
      const { redlock } = yield* withRedlock(1)
      const error = yield* Effect.flip(
        redlock.withLock(Effect.sleep("2 seconds"), resource("no-extend"), { ttl: 200, autoExtend: false })
      )
      assert.strictEqual(error._tag === "LockLost" && error.reason, "expired")
    }))

  it.scopedLive("a body that fails or is interrupted is released exactly once, with no extension after it", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(1)
      const commands = yield* monitor(cluster.nodes[0]!)
      yield* Effect.sleep("50 millis")

      const failing = redlock.withLock(
        Effect.zipRight(Effect.sleep("250 millis"), Effect.fail("body failed" as const)),
        resource("fails"),
        { ttl: 150 }
      )
      assert.strictEqual(yield* Effect.flip(failing), "body failed")

      const fiber = yield* Effect.fork(redlock.withLock(Effect.never, resource("interrupted"), { ttl: 150 }))
      yield* Effect.sleep("250 millis")
      yield* Fiber.interrupt(fiber)

      yield* Effect.sleep("400 millis")
      const scripts = commands.map(scriptOf).filter((name) => name === "release" || name === "extend" || name === "set")
      // Each lock: SET, at least one extension, then exactly one release and nothing after it.
      const firstRelease = scripts.indexOf("release")
      assert.strictEqual(scripts[0], "set")
      assert.isTrue(scripts.slice(1, firstRelease).every((name) => name === "extend") && firstRelease > 1)
      assert.strictEqual(scripts[firstRelease + 1], "set")
      const rest = scripts.slice(firstRelease + 2)
      assert.strictEqual(rest.filter((name) => name === "release").length, 1)
      assert.strictEqual(rest[rest.length - 1], "release")
      assert.isTrue(rest.slice(0, -1).every((name) => name === "extend") && rest.length > 1)
      assert.deepStrictEqual(yield* cluster.nodes[0]!.keys("test:*"), [])
    }))

  it.scopedLive("release racing an in-flight extension, 1,000 times: no key left, no loss after release", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(3)
      const name = resource("race")
      const lossesAfterRelease = yield* Ref.make(0)
      for (let round = 0; round < 1_000; round++) {
        // A threshold just under the ttl keeps an extension in flight almost all the time.
        const lock = yield* Effect.scoped(Effect.gen(function*() {
          const lock = yield* redlock.acquire(name, { ttl: 100, autoExtend: { threshold: 97 } })
          yield* Effect.sleep(`${round % 3} millis`)
          return lock
        }))
        const lost = yield* Effect.raceFirst(
          Effect.as(Lock.awaitLost(lock), true).pipe(Effect.catchAll(() => Effect.succeed(true))),
          Effect.as(Effect.yieldNow(), false)
        )
        if (lost) yield* Ref.update(lossesAfterRelease, (n) => n + 1)
      }
      assert.strictEqual(yield* Ref.get(lossesAfterRelease), 0)
      yield* Effect.sleep("150 millis")
      assert.deepStrictEqual(yield* keysEverywhere(cluster, "test:*"), [[], [], []])
    }))

  it.scopedLive("10,000 sequential cycles leave no timers, handles, fibers or listeners behind", () =>
    Effect.gen(function*() {
      const { clients, redlock } = yield* withRedlock(1)
      const name = resource("leak")
      const snapshot = () => ({
        resources: process.getActiveResourcesInfo().filter((kind) => kind !== "TTYWrap").length,
        listeners: clients.map((client) => client.eventNames().map((event) => client.listenerCount(event))).flat()
          .reduce((a, b) => a + b, 0)
      })
      const cycle = redlock.withLock(Effect.void, name, { ttl: 1_000 })
      for (let i = 0; i < 200; i++) yield* cycle
      const before = snapshot()
      const supervisor = yield* Supervisor.track
      let started = 0
      yield* Effect.supervised(
        Effect.gen(function*() {
          for (let i = 0; i < 10_000; i++) {
            yield* cycle
            if (i === 0) started = (yield* supervisor.value).length
          }
        }),
        supervisor
      )
      yield* Effect.sleep("20 millis")
      const after = snapshot()
      assert.isAtMost(after.resources, before.resources, "active handles and timers")
      assert.strictEqual(after.listeners, before.listeners)
      assert.deepStrictEqual(yield* supervisor.value, [], "no fiber outlives its cycle")
      assert.strictEqual(started, 0)
    }))
})
