/**
 * The metrics of `RedlockMetrics`, read with `Metric.value` around real lock cycles on three
 * redis-server nodes: each test compares readings before and after, since the registry is global.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import type * as Redlock from "../src/Redlock.js"
import * as RedlockMetrics from "../src/RedlockMetrics.js"
import { resource, withRedlock } from "./support/setup.js"

const counter = (metric: Metric.Metric.Counter<number>, ...tags: ReadonlyArray<readonly [string, string]>) =>
  Effect.map(
    Metric.value(tags.reduce((tagged, [name, value]) => Metric.tagged(tagged, name, value), metric)),
    (state) => state.count
  )

const histogram = (metric: Metric.Metric.Histogram<number>) =>
  Effect.map(Metric.value(metric), (state) => ({ count: state.count, sum: state.sum }))

const reading = Effect.all({
  acquired: counter(RedlockMetrics.acquired),
  attempts: counter(RedlockMetrics.attempts),
  contended: counter(RedlockMetrics.acquireFailures, ["reason", "contended"]),
  unavailable: counter(RedlockMetrics.acquireFailures, ["reason", "unavailable"]),
  waits: Effect.map(histogram(RedlockMetrics.acquireWait), (state) => state.count),
  waitedMs: Effect.map(histogram(RedlockMetrics.acquireWait), (state) => state.sum),
  held: Effect.map(Metric.value(RedlockMetrics.held), (state) => state.value),
  holds: Effect.map(histogram(RedlockMetrics.holdTime), (state) => state.count),
  heldMs: Effect.map(histogram(RedlockMetrics.holdTime), (state) => state.sum),
  extensions: counter(RedlockMetrics.extensions),
  lostTaken: counter(RedlockMetrics.lost, ["reason", "taken"]),
  lostExpired: counter(RedlockMetrics.lost, ["reason", "expired"]),
  lostUnavailable: counter(RedlockMetrics.lost, ["reason", "unavailable"]),
  lostLimit: counter(RedlockMetrics.lost, ["reason", "limit"])
})

type Reading = Effect.Effect.Success<typeof reading>

/** The change of every metric since `before`. */
const since = (before: Reading) =>
  Effect.map(reading, (after) => {
    const change = {} as Record<keyof Reading, number>
    for (const name of Object.keys(after) as Array<keyof Reading>) change[name] = after[name] - before[name]
    return change
  })

describe("RedlockMetrics", () => {
  it.scopedLive("a lock cycle: one attempt, one lock held until its release, its wait and hold time", () =>
    Effect.gen(function*() {
      const { redlock } = yield* withRedlock(3)
      const before = yield* reading
      const scope = yield* Scope.make()
      yield* Scope.extend(redlock.acquire(resource("metrics-cycle")), scope)
      const whileHeld = yield* since(before)
      assert.deepInclude(whileHeld, { acquired: 1, attempts: 1, waits: 1, held: 1, holds: 0, contended: 0 })
      yield* Effect.sleep("60 millis")
      yield* Scope.close(scope, Exit.void)
      const after = yield* since(before)
      assert.deepInclude(after, { acquired: 1, held: 0, holds: 1 })
      assert.isAtLeast(after.heldMs, 59)
    }))

  it.scopedLive("contention: every attempt counted, failures tagged contended, the wait spans the retries", () =>
    Effect.gen(function*() {
      const { redlock } = yield* withRedlock(3)
      const name = resource("metrics-contended")
      const before = yield* reading
      const holder = yield* redlock.lock(name)
      const refused = yield* Effect.flip(redlock.lock(name, { retry: { times: 2, delay: "10 millis" } }))
      assert.strictEqual(refused._tag, "LockContended")
      assert.isTrue(Option.isNone(yield* Effect.scoped(redlock.tryAcquire(name))))
      const contended = yield* since(before)
      assert.deepInclude(contended, {
        acquired: 1,
        attempts: 1 + (refused._tag === "LockContended" ? refused.attempts : 0) + 1,
        contended: 2,
        held: 1
      })

      // A waiter that gets the lock when the holder releases it 150 ms after the waiter's first
      // attempt waited those 150 ms (less the millisecond a timer may fire early).
      const { attempts, waitedMs } = yield* reading
      const waiter = yield* Effect.fork(redlock.lock(name, { retry: { times: 100, delay: "20 millis" } }))
      while ((yield* reading).attempts === attempts) yield* Effect.sleep("1 millis")
      yield* Effect.sleep("150 millis")
      yield* redlock.release(holder)
      const taken = yield* Fiber.join(waiter)
      assert.isAtLeast((yield* reading).waitedMs - waitedMs, 149)
      yield* redlock.release(taken)
      assert.deepInclude(yield* since(before), { acquired: 2, held: 0, holds: 2, contended: 2 })
    }))

  it.scopedLive("a majority that does not answer: failures tagged unavailable, timeouts counted per node", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(3)
      const paused = cluster.nodes.slice(0, 2)
      const timeouts = (port: number) =>
        counter(RedlockMetrics.nodeFailures, ["node", `127.0.0.1:${port}`], ["outcome", "timeout"])
      const timeoutsBefore = yield* Effect.forEach(cluster.nodes, (node) => timeouts(node.port))
      const before = yield* reading
      yield* Effect.forEach(paused, (node) => node.pause, { discard: true })
      const error = yield* Effect.flip(redlock.lock(resource("metrics-unavailable"), {
        retry: { times: 0 },
        nodeTimeout: "50 millis"
      }))
      yield* Effect.forEach(paused, (node) => node.resume, { discard: true })
      assert.strictEqual(error._tag, "QuorumUnavailable")
      assert.deepInclude(yield* since(before), { unavailable: 1, contended: 0, acquired: 0, attempts: 1, held: 0 })
      const timeoutsAfter = yield* Effect.forEach(cluster.nodes, (node) => timeouts(node.port))
      assert.deepStrictEqual(timeoutsAfter.map((count, index) => count - timeoutsBefore[index]!), [1, 1, 0])
    }))

  it.scopedLive("a dead majority: errors counted per node", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(3)
      const failures = (port: number) =>
        Effect.zipWith(
          counter(RedlockMetrics.nodeFailures, ["node", `127.0.0.1:${port}`], ["outcome", "error"]),
          counter(RedlockMetrics.nodeFailures, ["node", `127.0.0.1:${port}`], ["outcome", "timeout"]),
          (errors, timeouts) => ({ errors, timeouts })
        )
      const failuresBefore = yield* Effect.forEach(cluster.nodes, (node) => failures(node.port))
      yield* Effect.forEach(cluster.nodes.slice(0, 2), (node) => node.kill, { discard: true })
      const error = yield* Effect.flip(redlock.lock(resource("metrics-dead"), { retry: { times: 0 } }))
      assert.strictEqual(error._tag, "QuorumUnavailable")
      const failuresAfter = yield* Effect.forEach(cluster.nodes, (node) => failures(node.port))
      const change = failuresAfter.map((after, index) => ({
        errors: after.errors - failuresBefore[index]!.errors,
        timeouts: after.timeouts - failuresBefore[index]!.timeouts
      }))
      // Each dead node failed the attempt, with an error (refused connection) or a timeout, and
      // perhaps its clean-up too; the live one never.
      const perNode = change.map(({ errors, timeouts }) => errors + timeouts)
      assert.isAtLeast(perNode[0]!, 1)
      assert.isAtLeast(perNode[1]!, 1)
      assert.strictEqual(perNode[2], 0)
    }))

  it.scopedLive("extensions, automatic and manual, and a lock taken from its holder", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(3)
      const before = yield* reading
      const manual = yield* redlock.lock(resource("metrics-extend"))
      yield* redlock.extend(manual)
      yield* redlock.release(manual)
      yield* redlock.withLock(Effect.sleep("500 millis"), resource("metrics-keeper"), { ttl: "300 millis" })
      const extended = yield* since(before)
      assert.isAtLeast(extended.extensions, 1 + 1)
      assert.deepInclude(extended, { acquired: 2, held: 0, lostTaken: 0 })

      const name = resource("metrics-taken")
      const takeIt = Effect.forEach(cluster.nodes, (node) => node.call("SET", name, "someone-else"), { discard: true })
      const lost = yield* Effect.flip(
        redlock.withLock(Effect.andThen(takeIt, Effect.never), name, { ttl: "300 millis" })
      )
      assert.strictEqual(lost._tag === "LockLost" && lost.reason, "taken")
      assert.deepInclude(yield* since(before), { acquired: 3, held: 0, lostTaken: 1 })
    }))

  it.scopedLive("a lock lost for each other reason: its keys gone, a majority silent, a cap reached", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(3)
      const before = yield* reading
      const lostWith = (name: string, body: Effect.Effect<void>, autoExtend: boolean | Redlock.AutoExtendOptions = true) =>
        Effect.map(
          // A node timeout of 100 ms, not a twentieth of the ttl: a slow machine must not turn the
          // capped lock's one extension into an unavailable loss.
          Effect.flip(
            redlock.withLock(Effect.andThen(body, Effect.never), name, { ttl: "300 millis", nodeTimeout: "100 millis", autoExtend })
          ),
          (error) => error._tag === "LockLost" && error.reason
        )

      const gone = resource("metrics-expired")
      const deleteIt = Effect.orDie(Effect.forEach(cluster.nodes, (node) => node.del(gone), { discard: true }))
      assert.strictEqual(yield* lostWith(gone, deleteIt), "expired")
      assert.deepInclude(yield* since(before), { lostExpired: 1, lostUnavailable: 0, lostLimit: 0, held: 0 })

      const silence = Effect.forEach(cluster.nodes.slice(1), (node) => node.pause, { discard: true })
      const silenced = yield* lostWith(resource("metrics-unavailable"), Effect.orDie(silence))
      yield* Effect.forEach(cluster.nodes.slice(1), (node) => node.resume, { discard: true })
      assert.strictEqual(silenced, "unavailable")
      assert.deepInclude(yield* since(before), { lostExpired: 1, lostUnavailable: 1, lostLimit: 0, held: 0 })

      const capped = yield* lostWith(resource("metrics-limit"), Effect.void, { maxExtensions: 1 })
      assert.strictEqual(capped, "limit")
      assert.deepInclude(yield* since(before), { lostExpired: 1, lostUnavailable: 1, lostLimit: 1, lostTaken: 0, held: 0 })
    }))
})
