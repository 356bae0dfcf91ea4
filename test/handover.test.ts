/**
 * A lock whose quorum is reached just as its caller is interrupted never reaches the caller: the
 * attempt deletes its value, as it does for an attempt interrupted while it waits, instead of
 * leaving the keys until their ttl. (Fails when an attempt that has won skips its clean-up.)
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Metric from "effect/Metric"
import type { Redis } from "ioredis"
import { quorumOf } from "../src/internal/quorum.js"
import type * as Redlock from "../src/Redlock.js"
import * as RedlockMetrics from "../src/RedlockMetrics.js"
import { keysEverywhere, resource, withRedlock } from "./support/setup.js"

/**
 * Interrupts `target` right after the reply that gives an attempt its quorum was handled, before
 * the fiber resumes: the interruption is queued behind the lock's hand-over.
 */
const interruptOnQuorum = (clients: ReadonlyArray<Redis>, quorum: number, target: () => Fiber.RuntimeFiber<unknown, unknown>) => {
  let replies = 0
  for (const client of clients) {
    const set = client.set.bind(client) as (...args: Array<unknown>) => Promise<unknown>
    ;(client as unknown as { set: typeof set }).set = (...args) => {
      const reply = set(...args)
      // Registered after the engine's own handler (attached when the call returns), so it runs next.
      queueMicrotask(() => reply.then(() => {
        if (++replies === quorum) target().unsafeInterruptAsFork(FiberId.none)
      }, () => {}))
      return reply
    }
  }
}

const gauges = Effect.all({
  acquired: Effect.map(Metric.value(RedlockMetrics.acquired), (state) => state.count),
  held: Effect.map(Metric.value(RedlockMetrics.held), (state) => state.value),
  releases: Effect.map(Metric.value(RedlockMetrics.holdTime), (state) => state.count)
})

describe.each([1, 3])("a lock won as its caller is interrupted, on %i node(s)", (n) => {
  const cases: Record<string, (redlock: Redlock.Redlock.Service, name: string) => Effect.Effect<unknown, unknown>> = {
    acquire: (redlock, name) => Effect.scoped(Effect.andThen(redlock.acquire(name, { ttl: "10 seconds" }), Effect.never)),
    tryAcquire: (redlock, name) =>
      Effect.scoped(Effect.andThen(redlock.tryAcquire(name, { ttl: "10 seconds" }), Effect.never)),
    withLock: (redlock, name) => redlock.withLock(Effect.never, name, { ttl: "10 seconds" })
  }
  for (const [operation, run] of Object.entries(cases)) {
    it.scopedLive(`${operation}: the lock is released, not left until its ttl`, () =>
      Effect.gen(function*() {
        const { cluster, clients, redlock } = yield* withRedlock(n)
        const name = resource(`handover-${operation}`)
        const before = yield* gauges
        let fiber: Fiber.RuntimeFiber<unknown, unknown> | undefined
        interruptOnQuorum(clients, quorumOf(n), () => fiber!)
        fiber = yield* Effect.fork(run(redlock, name))
        const exit = yield* Fiber.await(fiber)
        assert.isTrue(Exit.isInterrupted(exit))
        assert.deepStrictEqual(yield* keysEverywhere(cluster, name), Array(n).fill([]))
        // The lock was won but never reached the caller (no release ran: the attempt deleted it),
        // and the held-locks gauge is back where it was.
        const after = yield* gauges
        assert.deepStrictEqual(
          { acquired: after.acquired - before.acquired, held: after.held - before.held, releases: after.releases - before.releases },
          { acquired: 1, held: 0, releases: 0 }
        )
      }))
  }
})
