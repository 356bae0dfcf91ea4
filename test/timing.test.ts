/**
 * The timing rules under TestClock, on in-memory nodes (`effect-redlock/testing`'s) that the test
 * hangs and resumes. The same behaviours are covered on real redis-server nodes in the other
 * suites.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import * as Lock from "../src/Lock.js"
import * as Engine from "../src/internal/engine.js"
import { extensionDueAt } from "../src/internal/keepAlive.js"
import * as Options from "../src/internal/options.js"
import { driftOf, quorumOf, validityOf } from "../src/internal/quorum.js"
import { makeService } from "../src/internal/service.js"
import * as MemoryNode from "../src/internal/memoryNode.js"
import { nextTurn } from "./support/setup.js"

const setup = (n: number, options: Parameters<typeof Options.baseSettings>[0] = {}) =>
  Effect.map(Effect.clock, (clock) => {
    const nodes = Array.from({ length: n }, (_, index) => MemoryNode.make(`memory-${index}`, clock))
    const engine: Engine.Engine = {
      nodes,
      quorum: quorumOf(n),
      keyPrefix: "",
      settings: Options.baseSettings(options),
      waker: undefined
    }
    return { nodes, engine, redlock: makeService(engine) }
  })


describe("quorum arithmetic", () => {
  it("quorum is a strict majority", () => {
    assert.deepStrictEqual([1, 2, 3, 4, 5, 6, 7].map(quorumOf), [1, 2, 2, 3, 3, 4, 4])
  })
  it("drift is ttl × factor + 2 ms and validity subtracts elapsed time and drift", () => {
    assert.strictEqual(driftOf(10_000, 0.01), 102)
    assert.strictEqual(driftOf(1_000, 0), 2)
    assert.strictEqual(validityOf(10_000, 102, 5_000, 5_040), 9_858)
    assert.isTrue(validityOf(1_000, 12, 0, 988) <= 0)
  })
})

describe("timing under TestClock", () => {
  it.effect("the lock expires at start + ttl − drift", () =>
    Effect.gen(function*() {
      const { nodes, redlock } = yield* setup(3, { ttl: 1_000, nodeTimeout: 999 })
      yield* TestClock.setTime(50_000)
      nodes.forEach((node) => node.setState("hung"))
      const fiber = yield* Effect.fork(redlock.lock("r", { retry: { times: 0 } }))
      yield* nextTurn
      yield* TestClock.adjust(900)
      nodes.forEach((node) => node.setState("up"))
      const lock = yield* Fiber.join(fiber)
      assert.strictEqual(lock.acquiredAt, 50_000)
      assert.strictEqual(lock.expiresAt, 50_000 + 1_000 - driftOf(1_000, 0.01))
      assert.strictEqual((yield* Lock.remaining(lock)).value._tag, "Millis")
      assert.isTrue(yield* Lock.isHeld(lock))
      yield* TestClock.adjust(88)
      assert.isFalse(yield* Lock.isHeld(lock))
    }))

  it.effect("an attempt slower than ttl − drift fails, and its keys are deleted", () =>
    Effect.gen(function*() {
      const { nodes, redlock } = yield* setup(3, { ttl: 1_000, nodeTimeout: 999 })
      nodes.forEach((node) => node.setState("hung"))
      const fiber = yield* Effect.fork(Effect.flip(redlock.lock("r", { retry: { times: 0 } })))
      yield* nextTurn
      yield* TestClock.adjust(990)
      nodes.forEach((node) => node.setState("up"))
      const error = yield* Fiber.join(fiber)
      assert.strictEqual(error._tag, "QuorumUnavailable")
      for (const node of nodes) assert.strictEqual(node.entries().size, 0)
    }))

  it.effect("a lock counts only with more validity left than the 6 ms by which its loss is declared early", () =>
    Effect.gen(function*() {
      // ttl 1000, drift 12: validity 988 ms less the attempt's time.
      const attemptTaking = (ms: number) =>
        Effect.gen(function*() {
          const { nodes, redlock } = yield* setup(1, { ttl: 1_000, nodeTimeout: 999 })
          nodes[0]!.setState("hung")
          const fiber = yield* Effect.fork(Effect.either(redlock.lock("r", { retry: { times: 0 } })))
          yield* nextTurn
          yield* TestClock.adjust(ms)
          nodes[0]!.setState("up")
          const result = yield* Fiber.join(fiber)
          return { result, stored: nodes[0]!.entries().size }
        })
      const usable = yield* attemptTaking(981)
      assert.isTrue(Either.isRight(usable.result), "7 ms of validity left")
      const tooLate = yield* attemptTaking(982)
      assert.isTrue(Either.isLeft(tooLate.result) && tooLate.result.left._tag === "QuorumUnavailable", "6 ms left")
      assert.strictEqual(tooLate.stored, 0, "its key deleted")
    }))

  it.effect("a node that never answers counts as a timeout after nodeTimeout of TestClock time", () =>
    Effect.gen(function*() {
      const { nodes, redlock } = yield* setup(1, { ttl: 1_000, nodeTimeout: 100 })
      nodes[0]!.setState("hung")
      const fiber = yield* Effect.fork(Effect.flip(redlock.lock("r", { retry: { times: 0 } })))
      yield* nextTurn
      yield* TestClock.adjust(99)
      yield* nextTurn
      assert.isNull(fiber.unsafePoll())
      yield* TestClock.adjust(1)
      yield* TestClock.adjust(100)
      const error = yield* Fiber.join(fiber)
      assert.strictEqual(error._tag === "QuorumUnavailable" && error.votes[0]!.outcome, "timeout")
    }))

  it.effect("the attempt decides on a quorum without waiting for a hung minority", () =>
    Effect.gen(function*() {
      const { nodes, redlock } = yield* setup(5, { ttl: 1_000, nodeTimeout: 500 })
      nodes[3]!.setState("hung")
      nodes[4]!.setState("hung")
      const lock = yield* redlock.lock("r")
      assert.strictEqual(lock.attempts, 1)
      assert.strictEqual(lock.expiresAt, 1_000 - driftOf(1_000, 0.01))
    }))

  it.effect("retries follow the schedule and stop at the deadline", () =>
    Effect.gen(function*() {
      const { nodes, redlock } = yield* setup(1, { ttl: 1_000 })
      nodes[0]!.put("r", "other")
      const fiber = yield* Effect.fork(
        Effect.flip(redlock.lock("r", { retry: { times: 100, delay: 100, jitter: 0 }, deadline: 450 }))
      )
      for (let step = 0; step < 6; step++) {
        yield* nextTurn
        yield* TestClock.adjust(100)
      }
      const error = yield* Fiber.join(fiber)
      // Attempts at 0, 100, 200, 300, 400; the next would start at 500, past the deadline.
      assert.strictEqual(error._tag === "LockContended" && error.attempts, 5)
      // A node that refused an attempt never stored its value: no clean-up is sent to it.
      assert.strictEqual(nodes[0]!.calls, 5)
    }))

  it("extensions are due at the threshold, moved back onto a shared grid of at most 50 ms", () => {
    assert.strictEqual(extensionDueAt(10_000, 3_000), 7_000)
    assert.strictEqual(extensionDueAt(10_049, 3_000), 7_000, "a 50 ms step for a 3 s threshold")
    assert.strictEqual(extensionDueAt(889, 300), 585, "a 15 ms step for a 300 ms threshold")
    assert.strictEqual(extensionDueAt(19, 10), 9, "at least a 1 ms step")
    for (let expiresAt = 1_000; expiresAt < 1_100; expiresAt++) {
      const due = extensionDueAt(expiresAt, 600)
      assert.isTrue(due <= expiresAt - 600 && due > expiresAt - 600 - 30 && due % 30 === 0)
    }
  })

  it.effect("automatic extension runs when a third of the ttl is left and stops at the cap", () =>
    Effect.gen(function*() {
      const { nodes, redlock } = yield* setup(3, { ttl: 900 })
      const fiber = yield* Effect.fork(Effect.scoped(Effect.gen(function*() {
        const lock = yield* redlock.acquire("r", { autoExtend: { maxExtensions: 2 } })
        return yield* Effect.flip(Lock.awaitLost(lock)).pipe(Effect.map((lost) => ({ lock, lost })))
      })))
      yield* nextTurn
      const validity = 900 - driftOf(900, 0.01)
      // A third of the ttl before expiry, on the grid: 585 ms, then 585 ms after the extension.
      const extendAt = extensionDueAt(validity, 300)
      assert.strictEqual(extendAt, 585)
      const calls = () => nodes.reduce((sum, node) => sum + node.calls, 0)
      assert.strictEqual(calls(), 3)
      yield* TestClock.adjust(extendAt - 1)
      yield* nextTurn
      assert.strictEqual(calls(), 3, "no extension before the threshold")
      yield* TestClock.adjust(1)
      yield* nextTurn
      assert.strictEqual(calls(), 6, "one extension round at the threshold")
      yield* TestClock.adjust(extendAt)
      yield* nextTurn
      assert.strictEqual(calls(), 9)
      yield* TestClock.adjust(10_000)
      const { lock, lost } = yield* Fiber.join(fiber)
      assert.strictEqual(lost.reason, "limit")
      assert.strictEqual(lock.extensions, 2)
      assert.strictEqual(calls(), 12, "no further extension: only the release")
      for (const node of nodes) assert.strictEqual(node.entries().size, 0)
    }))

  it.effect("a hung extension loses the lock exactly at its expiry, not a node timeout later", () =>
    Effect.gen(function*() {
      const { nodes, redlock } = yield* setup(3, { ttl: 900, nodeTimeout: 400 })
      const fiber = yield* Effect.fork(Effect.scoped(Effect.gen(function*() {
        const lock = yield* redlock.acquire("r", { autoExtend: true })
        nodes.forEach((node) => node.setState("hung"))
        return { lock, lost: yield* Effect.flip(Lock.awaitLost(lock)) }
      })))
      yield* nextTurn
      const expiresAt = 900 - driftOf(900, 0.01)
      yield* TestClock.adjust(expiresAt - 1)
      yield* nextTurn
      assert.isNull(fiber.unsafePoll(), "still held just before the expiry")
      yield* TestClock.adjust(1)
      yield* nextTurn
      nodes.forEach((node) => node.setState("up"))
      const { lost } = yield* Fiber.join(fiber)
      assert.strictEqual(lost.reason, "unavailable")
    }))

  it.effect("extension failing on a majority until validity runs out loses the lock as unavailable", () =>
    Effect.gen(function*() {
      const { nodes, redlock } = yield* setup(3, { ttl: 900, nodeTimeout: 50 })
      const fiber = yield* Effect.fork(Effect.scoped(Effect.gen(function*() {
        const lock = yield* redlock.acquire("r", { autoExtend: true })
        nodes[0]!.setState("down")
        nodes[1]!.setState("down")
        return yield* Effect.flip(Lock.awaitLost(lock)).pipe(Effect.map((lost) => ({ lock, lost })))
      })))
      for (let step = 0; step < 40; step++) {
        yield* nextTurn
        yield* TestClock.adjust(50)
      }
      const { lock, lost } = yield* Fiber.join(fiber)
      assert.strictEqual(lost.reason, "unavailable")
      assert.strictEqual(lock.extensions, 0)
    }))

  it.effect("two extensions in flight: the lock ends with the last one to land, never later", () =>
    Effect.gen(function*() {
      const { nodes, redlock } = yield* setup(1, { ttl: 1_000 })
      const lock = yield* redlock.lock("r")
      nodes[0]!.setState("hung")
      // Sent in this order, they land in this order: the 500 ms ttl last.
      const longer = yield* Effect.fork(redlock.extend(lock, 5_000))
      yield* nextTurn
      const shorter = yield* Effect.fork(redlock.extend(lock, 500))
      yield* nextTurn
      nodes[0]!.setState("up")
      yield* Fiber.join(longer)
      yield* Fiber.join(shorter)
      assert.strictEqual(lock.expiresAt, 500 - driftOf(500, 0.01))
      yield* TestClock.adjust(501)
      assert.isFalse(nodes[0]!.entries().has("r"), "the key expired at 500 ms on the node")
      assert.isFalse(yield* Lock.isHeld(lock))
    }))

  it.effect("an extension that failed may still have landed: a shorter ttl shortens the lock", () =>
    Effect.gen(function*() {
      const { nodes, redlock } = yield* setup(3, { ttl: 1_000, nodeTimeout: 50 })
      const lock = yield* redlock.lock("r")
      nodes[1]!.setState("hung")
      nodes[2]!.setState("hung")
      const extending = yield* Effect.fork(Effect.flip(redlock.extend(lock, 200)))
      yield* nextTurn
      yield* TestClock.adjust(50)
      assert.strictEqual((yield* Fiber.join(extending))._tag, "LockLost")
      // The calls land late, and the keys then expire 200 ms after the attempt started.
      nodes[1]!.setState("up")
      nodes[2]!.setState("up")
      assert.strictEqual(lock.expiresAt, 200 - driftOf(200, 0.01))
    }))
})
