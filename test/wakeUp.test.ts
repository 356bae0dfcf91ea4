import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { keysEverywhere, resource, withRedlock } from "./support/setup.js"

/** A retry policy whose polling alone would take seconds to notice a release. */
const slowPolling = { times: 5, delay: "3 seconds", jitter: 0 } as const

describe.each([1, 3])("wake-up on release, %i node(s)", (n) => {
  it.scopedLive("a waiter gets the lock right after the release, long before its next poll", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(n)
      const name = resource("wake")
      const holder = yield* redlock.lock(name)
      const waiter = yield* Effect.fork(Effect.timed(redlock.lock(name, { retry: slowPolling })))
      yield* Effect.sleep("200 millis")
      yield* redlock.release(holder)
      const [waited, lock] = yield* Fiber.join(waiter)
      assert.isBelow(Duration.toMillis(waited), 2_900)
      assert.strictEqual(lock.attempts, 3, "first attempt, the one after subscribing, the one woken")
      yield* redlock.release(lock)
      assert.deepStrictEqual(yield* keysEverywhere(cluster, "test:*"), Array(n).fill([]))
    }))

  it.scopedLive("without wake-ups the same waiter waits for its poll", () =>
    Effect.gen(function*() {
      const { redlock } = yield* withRedlock(n, { wakeUp: false })
      const name = resource("poll")
      const holder = yield* redlock.lock(name)
      const waiter = yield* Effect.fork(redlock.lock(name, { retry: { times: 5, delay: "600 millis", jitter: 0 } }))
      yield* Effect.sleep("100 millis")
      yield* redlock.release(holder)
      yield* Effect.sleep("300 millis")
      assert.isNull(waiter.unsafePoll(), "still waiting for its poll")
      const lock = yield* Fiber.join(waiter)
      assert.strictEqual(lock.attempts, 2)
    }))

  it.scopedLive("many waiters on one resource: each release hands the lock on, none waits for a poll", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(n)
      const name = resource("herd")
      let inside = 0
      let overlaps = 0
      const worker = Effect.gen(function*() {
        for (let i = 0; i < 10; i++) {
          const lock = yield* redlock.lock(name, { retry: { times: 100, delay: "5 seconds" } })
          if (++inside > 1) overlaps++
          yield* Effect.sleep("2 millis")
          inside--
          yield* redlock.release(lock)
        }
      })
      yield* Effect.forEach(cluster.nodes, (node) => node.resetStats)
      const [elapsed] = yield* Effect.timed(Effect.all(Array.from({ length: 6 }, () => worker), { concurrency: "unbounded" }))
      assert.strictEqual(overlaps, 0)
      // A release hands one turn to one waiter, and a new acquirer queues behind the waiters:
      // the nodes see about one SET per acquisition, not one per waiter.
      const sets = yield* Effect.forEach(cluster.nodes, (node) => Effect.map(node.commandCalls, (calls) => calls["set"] ?? 0))
      for (const count of sets) assert.isAtMost(count, 60 + 8, "SETs for 60 acquisitions")
      assert.isBelow(Duration.toMillis(elapsed), 20_000)
      assert.deepStrictEqual(yield* keysEverywhere(cluster, "test:*"), Array(n).fill([]))
    }))

  it.scopedLive("subscriptions are dropped when the waiters leave", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(n)
      const name = resource("unsubscribe")
      const holder = yield* redlock.lock(name)
      const waiter = yield* Effect.fork(redlock.lock(name, { retry: slowPolling }))
      yield* Effect.sleep("150 millis")
      const during = yield* cluster.nodes[0]!.call("PUBSUB", "NUMSUB", `effect-redlock:released:${name}`)
      yield* Fiber.interrupt(waiter)
      yield* Effect.sleep("50 millis")
      const after = yield* cluster.nodes[0]!.call("PUBSUB", "NUMSUB", `effect-redlock:released:${name}`)
      assert.deepStrictEqual(during, [`effect-redlock:released:${name}`, 1])
      assert.deepStrictEqual(after, [`effect-redlock:released:${name}`, 0])
      yield* redlock.release(holder)
    }))
})
