/**
 * A held lock is set again on nodes that lost its keys (restarted empty) once an extension is
 * confirmed on a quorum, so nodes restarting one after another do not wear it down; a lock that
 * could not be confirmed on a quorum is never set again. Real redis-server nodes, restarted
 * without persistence.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Lock from "../src/Lock.js"
import * as RedlockMetrics from "../src/RedlockMetrics.js"
import type * as RedisNodes from "./support/RedisNodes.js"
import { eventually, resource, withRedlock } from "./support/setup.js"

const ttl = "600 millis"

/** `redlock_retaken_total` for a node. */
const retakenOn = (node: RedisNodes.RedisNode) =>
  Effect.map(Metric.value(Metric.tagged(RedlockMetrics.retaken, "node", `127.0.0.1:${node.port}`)), (state) => state.count)

describe("re-taking a held lock on nodes that lost it", () => {
  it.scopedLive("withLock survives every node restarting empty, one after another", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(3)
      const name = resource("retake-rolling")
      const result = yield* redlock.withLock(
        (lock: Lock.Lock) =>
          Effect.gen(function*() {
            for (const node of cluster.nodes) {
              yield* Effect.orDie(node.restart)
              assert.isNull(yield* Effect.orDie(node.get(name)), "the node restarted empty")
              // The next extension confirmed on the other two sets it again.
              const value = yield* eventually(Effect.orDie(node.get(name)), (value) => value !== null)
              assert.strictEqual(value, lock.value)
            }
            return lock.extensions
          }),
        name,
        { ttl }
      )
      assert.isAtLeast(result, 3)
    }))

  it.scopedLive("a manual extend sets the lock again on a node that lost it", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(3)
      const name = resource("retake-manual")
      const lock = yield* redlock.lock(name, { ttl: "5 seconds" })
      yield* Effect.orDie(cluster.nodes[1]!.restart)
      const before = yield* Effect.forEach(cluster.nodes, retakenOn)
      yield* redlock.extend(lock)
      assert.strictEqual(yield* eventually(Effect.orDie(cluster.nodes[1]!.get(name)), (value) => value !== null), lock.value)
      // Counted for that node only, once its SET landed.
      const counted = yield* eventually(Effect.forEach(cluster.nodes, retakenOn), (counts) => counts[1] === before[1]! + 1)
      assert.deepStrictEqual(counted, [before[0], before[1]! + 1, before[2]])
      const report = yield* redlock.release(lock)
      assert.strictEqual(report.released, 3)
    }))

  it.scopedLive("a lock gone from a majority is lost, and not set again anywhere", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(3)
      const name = resource("retake-majority")
      const restartTwo = Effect.orDie(Effect.forEach(cluster.nodes.slice(1), (node) => node.restart, { discard: true }))
      const lost = yield* Effect.flip(redlock.withLock(Effect.andThen(restartTwo, Effect.never), name, { ttl }))
      assert.strictEqual(lost._tag === "LockLost" && lost.reason, "expired")
      yield* Effect.sleep("300 millis")
      for (const node of cluster.nodes.slice(1)) assert.isNull(yield* Effect.orDie(node.get(name)))
    }))

  it.scopedLive("a node that answers \"gone\" after an extension that reached no quorum is not set again", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(3)
      const name = resource("retake-unconfirmed")
      const lock = yield* redlock.lock(name, { ttl: "5 seconds" })
      // Node 2 lost the key; nodes 1 and 2 answer only after the extension gave up on them, so it
      // is not confirmed, and the lock stays held (unavailable, not lost) until its validity ends.
      const [, one, two] = cluster.nodes
      yield* Effect.orDie(two!.del(name))
      yield* Effect.orDie(two!.resetStats)
      const before = yield* retakenOn(two!)
      yield* Effect.orDie(one!.pause)
      yield* Effect.orDie(two!.pause)
      const error = yield* Effect.flip(redlock.extend(lock))
      assert.strictEqual(error._tag === "LockLost" && error.reason, "unavailable")
      assert.isTrue(yield* Lock.isHeld(lock))
      yield* one!.resume
      yield* two!.resume
      // Node 2's late "gone" arrives (its extension ran, by EVALSHA or its EVAL fallback).
      const scriptsRun = Effect.orDie(Effect.map(two!.commandCalls, (calls) => (calls["evalsha"] ?? 0) + (calls["eval"] ?? 0)))
      yield* eventually(scriptsRun, (count) => count >= 1)
      yield* Effect.sleep("100 millis")
      assert.strictEqual(yield* Effect.orDie(two!.commandCount("set")), 0, "no SET NX for an unconfirmed lock")
      assert.strictEqual(yield* retakenOn(two!), before)
      assert.isNull(yield* Effect.orDie(two!.get(name)))
      yield* redlock.release(lock)
    }))
})
