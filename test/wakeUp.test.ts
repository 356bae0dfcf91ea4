import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as HashMap from "effect/HashMap"
import * as Logger from "effect/Logger"
import type * as Redlock from "../src/Redlock.js"
import { keysEverywhere, resource, withRedlock } from "./support/setup.js"

/** A retry policy whose polling alone would take seconds to notice a release. */
const slowPolling = { times: 5, delay: "3 seconds", jitter: 0 } as const

/** Nodes that announce deleted and expired keys on keyspace channels. */
const keyspaceNodes = { wakeUp: "keyspace", nodeArgs: ["--notify-keyspace-events", "Kgx"] } as const

/** The instance options and node arguments of each wake-up source. */
const sources = { publish: {}, keyspace: keyspaceNodes } as const

/** The channel a waiter listens on for `key`, in database 0. */
const channelOf = (source: keyof typeof sources, key: string) =>
  source === "publish" ? `effect-redlock:released:${key}` : `__keyspace@0__:${key}`

/**
 * A waiter polling every 600 ms is still waiting 300 ms after the holder released (nothing woke
 * it), and gets the lock at its poll.
 */
const waitsForItsPoll = (redlock: Redlock.Redlock.Service) =>
  Effect.gen(function*() {
    const name = resource("poll")
    const holder = yield* redlock.lock(name)
    const waiter = yield* Effect.fork(redlock.lock(name, { retry: { times: 5, delay: "600 millis", jitter: 0 } }))
    yield* Effect.sleep("100 millis")
    yield* redlock.release(holder)
    yield* Effect.sleep("300 millis")
    assert.isNull(waiter.unsafePoll(), "still waiting for its poll")
    return yield* Fiber.join(waiter)
  })

describe.each([[1, "publish"], [3, "publish"], [1, "keyspace"], [3, "keyspace"]] as const)(
  "wake-up on release, %i node(s), %s",
  (n, source) => {
  it.scopedLive("a waiter gets the lock right after the release, long before its next poll", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(n, sources[source])
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

  it.scopedLive("many waiters on one resource: each release hands the lock on, none waits for a poll", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(n, sources[source])
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
      const { cluster, redlock } = yield* withRedlock(n, sources[source])
      const name = resource("unsubscribe")
      const channel = channelOf(source, name)
      const holder = yield* redlock.lock(name)
      const waiter = yield* Effect.fork(redlock.lock(name, { retry: slowPolling }))
      yield* Effect.sleep("150 millis")
      const during = yield* cluster.nodes[0]!.call("PUBSUB", "NUMSUB", channel)
      yield* Fiber.interrupt(waiter)
      yield* Effect.sleep("50 millis")
      const after = yield* cluster.nodes[0]!.call("PUBSUB", "NUMSUB", channel)
      assert.deepStrictEqual(during, [channel, 1])
      assert.deepStrictEqual(after, [channel, 0])
      yield* redlock.release(holder)
    }))

  it.scopedLive("a client's own keyPrefix: the waiter still hears the release", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(n, { ...sources[source], redisOptions: { keyPrefix: "app:" } })
      const name = resource("client-prefix")
      const holder = yield* redlock.lock(name)
      assert.strictEqual(yield* cluster.nodes[0]!.get(`app:${name}`), holder.value)
      const waiter = yield* Effect.fork(Effect.timed(redlock.lock(name, { retry: slowPolling })))
      yield* Effect.sleep("200 millis")
      yield* redlock.release(holder)
      const [waited, lock] = yield* Fiber.join(waiter)
      assert.isBelow(Duration.toMillis(waited), 2_900)
      yield* redlock.release(lock)
    }))
})

describe("newcomers behind an instance's waiters", () => {
  it.scopedLive("one whose key has no waiter of its own takes it at once; one without retries still makes its attempt", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(3)
      const [a, b] = [resource("queued-a"), resource("queued-b")]
      const holder = yield* redlock.lock(b)
      // A waiter of this instance queues on a and b (b is held).
      const waiter = yield* Effect.fork(redlock.lock([a, b], { retry: slowPolling }))
      yield* Effect.sleep("200 millis")
      // a itself is free: a newcomer gets it without waiting behind the waiter of a and b.
      const onA = yield* Effect.timed(redlock.lock(a, { retry: slowPolling }))
      assert.isBelow(Duration.toMillis(onA[0]), 1_000)
      yield* redlock.release(onA[1])
      // b is held, and a waiter of this instance waits for b alone: a newcomer queues behind it,
      // but without retries it still makes its one attempt, refused, instead of failing untried.
      const waiterOnB = yield* Effect.fork(redlock.lock(b, { retry: slowPolling }))
      yield* Effect.sleep("200 millis")
      const onB = yield* Effect.flip(redlock.lock(b, { retry: { times: 0 } }))
      assert.strictEqual(onB._tag === "LockContended" && onB.attempts, 1)
      assert.isTrue(onB._tag === "LockContended" && onB.votes.filter((vote) => vote.outcome === "denied").length >= 2)
      yield* Fiber.interrupt(waiterOnB)
      yield* redlock.release(holder)
      yield* redlock.release(yield* Fiber.join(waiter))
      assert.deepStrictEqual(yield* keysEverywhere(cluster, "test:*"), [[], [], []])
    }))
})

describe.each([1, 3])("no wake-ups, %i node(s)", (n) => {
  it.scopedLive("without wake-ups the same waiter waits for its poll", () =>
    Effect.gen(function*() {
      const { redlock } = yield* withRedlock(n, { wakeUp: false })
      const lock = yield* waitsForItsPoll(redlock)
      assert.strictEqual(lock.attempts, 2)
    }))
})

describe("wake-ups from keyspace notifications", () => {
  it.scopedLive("a release sends no PUBLISH: a cycle costs the floor's commands", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(3, keyspaceNodes)
      const name = resource("quiet")
      const warm = yield* redlock.lock(name)
      yield* redlock.release(warm)
      yield* Effect.forEach(cluster.nodes, (node) => node.resetStats)
      const holder = yield* redlock.lock(name)
      const waiter = yield* Effect.fork(redlock.lock(name, { retry: slowPolling }))
      yield* Effect.sleep("150 millis")
      yield* redlock.release(holder)
      yield* redlock.release(yield* Fiber.join(waiter))
      for (const node of cluster.nodes) {
        const calls = yield* node.commandCalls
        assert.isUndefined(calls["publish"])
        // Two locks, two releases: the rest are the waiter's failed SETs (and the clean-up of an
        // attempt a node had not answered yet), SUBSCRIBE and UNSUBSCRIBE.
        assert.strictEqual(calls["del"], 2)
      }
    }))

  it.scopedLive("a waiter wakes when the holder's lock expires, not at its next poll", () =>
    Effect.gen(function*() {
      const { redlock } = yield* withRedlock(3, keyspaceNodes)
      const name = resource("expiry")
      yield* redlock.lock(name, { ttl: "400 millis" })
      const [waited, lock] = yield* Effect.timed(redlock.lock(name, { retry: slowPolling }))
      assert.isBelow(Duration.toMillis(waited), 2_900)
      assert.isAtLeast(Duration.toMillis(waited), 300)
      yield* redlock.release(lock)
    }))

  it.scopedLive("nodes without notify-keyspace-events: a warning, and waiters fall back to the schedule", () =>
    Effect.gen(function*() {
      const warnings: Array<string> = []
      const capture = Logger.replace(
        Logger.defaultLogger,
        Logger.make(({ annotations, logLevel, message }) => {
          if (logLevel._tag === "Warning") warnings.push(`${String(message)} ${String(HashMap.get(annotations, "setting"))}`)
        })
      )
      const { redlock } = yield* Effect.provide(withRedlock(1, { wakeUp: "keyspace" }), capture)
      yield* Effect.sleep("100 millis")
      assert.strictEqual(warnings.length, 1)
      assert.include(warnings[0], "notify-keyspace-events")
      yield* redlock.release(yield* waitsForItsPoll(redlock))
    }))
})
