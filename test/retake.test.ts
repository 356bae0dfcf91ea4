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
import { assertReleased } from "./support/assertions.js"

const ttl = "600 millis"

/** Scripts a node ran since its stats were reset: an EVALSHA each, or its EVAL fallback. */
const scriptsRunOn = (node: RedisNodes.RedisNode) =>
  Effect.orDie(Effect.map(node.commandCalls, (calls) => (calls["evalsha"] ?? 0) + (calls["eval"] ?? 0)))

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
      yield* redlock.extend(lock)
      assert.strictEqual(yield* eventually(Effect.orDie(cluster.nodes[1]!.get(name)), (value) => value !== null), lock.value)
      assertReleased(yield* redlock.release(lock), 2)
    }))

  it.scopedLive("a re-take that lands is counted for its node", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(3)
      const name = resource("retake-counted")
      const lock = yield* redlock.lock(name, { ttl: "5 seconds" })
      // Gone from node 1 (as after a restart, without the restart's reconnection).
      yield* Effect.orDie(cluster.nodes[1]!.del(name))
      const before = yield* Effect.forEach(cluster.nodes, retakenOn)
      yield* redlock.extend(lock)
      assert.strictEqual(yield* eventually(Effect.orDie(cluster.nodes[1]!.get(name)), (value) => value !== null), lock.value)
      const counted = yield* eventually(Effect.forEach(cluster.nodes, retakenOn), (counts) => counts[1] === before[1]! + 1)
      assert.deepStrictEqual(counted, [before[0], before[1]! + 1, before[2]])
      assertReleased(yield* redlock.release(lock), 2)
    }))

  it.scopedLive("a re-take that does not land is not counted", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(3)
      const names = [resource("retake-partial-a"), resource("retake-partial-b")]
      const lock = yield* redlock.lock(names, { ttl: "5 seconds" })
      // Node 1 lost one of the two keys: its extension answers "gone", and the re-take, all or
      // nothing, finds the other key still there and sets nothing.
      const node = cluster.nodes[1]!
      yield* Effect.orDie(node.del(names[0]!))
      const before = yield* retakenOn(node)
      yield* Effect.orDie(node.resetStats)
      yield* redlock.extend(lock)
      // The extension and the re-take.
      yield* eventually(scriptsRunOn(node), (count) => count >= 2)
      yield* Effect.sleep("100 millis")
      assert.strictEqual(yield* retakenOn(node), before)
      assert.isNull(yield* Effect.orDie(node.get(names[0]!)))
      yield* redlock.release(lock)
    }))

  it.scopedLive("a lock gone from a majority is lost, and not set again anywhere", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(3)
      const name = resource("retake-majority")
      const lock = yield* redlock.lock(name, { ttl: "5 seconds" })
      // Gone from two nodes at once (restarted empty, evicted): the extension is not confirmed.
      // (Nodes restarting one after another instead can keep it: see the first test.)
      const gone = cluster.nodes.slice(1)
      for (const node of gone) {
        yield* Effect.orDie(node.del(name))
        yield* Effect.orDie(node.resetStats)
      }
      const lost = yield* Effect.flip(redlock.extend(lock))
      assert.strictEqual(lost._tag === "LockLost" && lost.reason, "expired")
      assert.isFalse(yield* Lock.isHeld(lock))
      yield* Effect.sleep("100 millis")
      for (const node of gone) {
        assert.strictEqual(yield* Effect.orDie(node.commandCount("set")), 0, "no SET NX for a lost lock")
        assert.isNull(yield* Effect.orDie(node.get(name)))
      }
      yield* redlock.release(lock)
    }))

  it.scopedLive("withLock: a lock gone from a majority ends in LockLost, and is not set again", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(3)
      const name = resource("retake-majority-keeper")
      const gone = cluster.nodes.slice(1)
      // Deleted from two nodes long before the first automatic extension (due at 2 s).
      const dropTwo = Effect.orDie(Effect.forEach(gone, (node) => Effect.zipRight(node.del(name), node.resetStats)))
      const lost = yield* Effect.flip(redlock.withLock(Effect.andThen(dropTwo, Effect.never), name, { ttl: "3 seconds" }))
      assert.strictEqual(lost._tag === "LockLost" && lost.reason, "expired")
      yield* Effect.sleep("100 millis")
      for (const node of gone) assert.strictEqual(yield* Effect.orDie(node.commandCount("set")), 0, "no SET NX for a lost lock")
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
      yield* eventually(scriptsRunOn(two!), (count) => count >= 1)
      yield* Effect.sleep("100 millis")
      assert.strictEqual(yield* Effect.orDie(two!.commandCount("set")), 0, "no SET NX for an unconfirmed lock")
      assert.strictEqual(yield* retakenOn(two!), before)
      assert.isNull(yield* Effect.orDie(two!.get(name)))
      yield* redlock.release(lock)
    }))
})
