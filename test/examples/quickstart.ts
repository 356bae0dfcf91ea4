/**
 * Quickstart: the public API in six short programs.
 *
 *   npx tsx test/examples/quickstart.ts
 *
 * It starts three local redis-server nodes (the test harness; in your code the node URLs are your
 * own), runs every snippet against them, checks what each one returned and exits 0. CI runs it as a
 * smoke test.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as assert from "node:assert/strict"
import { Lock, Redlock } from "../../src/index.js"
import * as RedisNodes from "../support/RedisNodes.js"

// 1. withLock: hold a lock while an effect runs. The lock is extended automatically while the
//    effect runs and released afterwards, whatever the outcome.
const transfer = Console.log("  moving 10 € from account 42").pipe(Effect.as("transferred"))

const withLockExample = Effect.gen(function*() {
  const result = yield* transfer.pipe(Redlock.withLock("account:42", { ttl: "5 seconds" }))
  assert.equal(result, "transferred")
})

// 2. acquire: the lock as a scoped resource, released when the scope closes.
const scopedExample = Effect.scoped(
  Effect.gen(function*() {
    const lock = yield* Redlock.acquire("report:daily", { ttl: "30 seconds" })
    const left = yield* Lock.remaining(lock)
    yield* Console.log(`  holding ${lock.resources.join(", ")}, guaranteed for ${Duration.format(left)} more`)
    assert.ok(yield* Lock.isHeld(lock))
  })
)

// 3. tryAcquire / tryWithLock: one attempt, no retries. `None` means "someone else holds it",
//    which is how to ask "is it locked?".
const tryExample = Effect.scoped(
  Effect.gen(function*() {
    const mine = yield* Redlock.tryAcquire("job:nightly")
    assert.ok(Option.isSome(mine))
    const again = yield* Redlock.tryAcquire("job:nightly")
    yield* Console.log(`  job:nightly is ${Option.isNone(again) ? "locked" : "free"}`)
    assert.ok(Option.isNone(again))
    const ran = yield* Redlock.tryWithLock("job:nightly")(Effect.succeed("ran"))
    assert.deepEqual(ran, Option.none())
  })
)

// 4. lock / extend / release: the manual API, for code that manages the lifetime itself.
//    `release` never fails: it reports what each node did, also for a lock that already expired.
//    It is done once a majority deleted the keys; the last node's delete may still be on its way.
const manualExample = Effect.gen(function*() {
  const lock = yield* Redlock.lock("migration:42", { ttl: "10 seconds" })
  yield* Redlock.extend(lock, "20 seconds")
  const report = yield* Redlock.release(lock)
  yield* Console.log(`  released: ${report.nodes.map((node) => node.outcome).join(", ")}; extended ${lock.extensions}×`)
  assert.ok(report.released >= 2)
  assert.equal(lock.extensions, 1)

  const shortLived = yield* Redlock.lock("migration:43", { ttl: "50 millis" })
  yield* Effect.sleep("100 millis") // it expires
  const late = yield* Redlock.release(shortLived)
  yield* Console.log(`  releasing an expired lock: ${late.nodes.map((node) => node.outcome).join(", ")}`)
  assert.equal(late.released, 0)
})

// 5. Errors are tagged: tell contention from bad input, and react to a lost lock.
const errorsExample = Effect.scoped(
  Effect.gen(function*() {
    yield* Redlock.acquire("invoice:7") // someone is busy with invoice 7
    const outcome = yield* Effect.succeed("charged").pipe(
      Redlock.withLock("invoice:7", { retry: { times: 2, delay: "20 millis" } }),
      Effect.catchTag("LockContended", (error) => Effect.succeed(`busy (${error.attempts} attempts)`))
    )
    yield* Console.log(`  invoice:7 → ${outcome}`)
    assert.match(outcome, /^busy/)

    const invalid = yield* Effect.flip(Redlock.lock("invoice:8", { ttl: 0 }))
    yield* Console.log(`  ${invalid._tag}: ${invalid.message}`)
    assert.equal(invalid._tag, "InvalidArgument")
  })
)

// A lock that cannot be kept interrupts the work: here the work outlives the hold-time cap, so the
// lock runs out, the work is interrupted and `withLock` fails with `LockLost` (reason "limit").
// The same happens when the lock expires, is taken, or too few nodes confirm an extension.
const lockLostExample = Effect.gen(function*() {
  const outcome = yield* Effect.never.pipe(
    Redlock.withLock("cache:rebuild", { ttl: "200 millis", autoExtend: { maxHoldTime: "400 millis" } }),
    Effect.catchTag("LockLost", (error) => Effect.succeed(`stopped: lock lost (${error.reason})`))
  )
  yield* Console.log(`  cache:rebuild → ${outcome}`)
  assert.equal(outcome, "stopped: lock lost (limit)")
})

// 6. What if Redis is down or hangs? Every node call is bounded by a node timeout; with too few
//    nodes answering, the error is `QuorumUnavailable`, never contention. Once the nodes answer
//    again, locking works again.
const unavailableExample = (nodes: ReadonlyArray<RedisNodes.RedisNode>) =>
  Effect.gen(function*() {
    const hung = nodes.slice(0, 2)
    yield* Effect.forEach(hung, (node) => node.pause) // SIGSTOP: connections stay open, no answers
    const outcome = yield* Effect.succeed("done").pipe(
      Redlock.withLock("account:42", { retry: { times: 0 }, nodeTimeout: "100 millis" }),
      Effect.catchTags({
        LockContended: () => Effect.succeed("someone else holds it"),
        QuorumUnavailable: (error) =>
          Effect.succeed(`no quorum of ${error.quorum} (votes: ${error.votes.map((vote) => vote.outcome).join(", ")})`)
      }),
      Effect.ensuring(Effect.forEach(hung, (node) => node.resume))
    )
    yield* Console.log(`  with 2 of 3 nodes hung → ${outcome}`)
    assert.match(outcome, /^no quorum of 2/)

    const after = yield* Effect.succeed("done").pipe(Redlock.withLock("account:42"))
    yield* Console.log(`  nodes answering again → ${after}`)
    assert.equal(after, "done")
  })

const main = Effect.gen(function*() {
  const cluster = yield* RedisNodes.make(3)
  const RedlockLive = Redlock.layer({ nodes: cluster.urls, ttl: "5 seconds" })
  const step = <E, R>(name: string, example: Effect.Effect<void, E, R>) => Effect.zipRight(Console.log(name), example)
  yield* Effect.all([
    step("withLock", withLockExample),
    step("acquire (scoped)", scopedExample),
    step("tryAcquire / tryWithLock", tryExample),
    step("lock / extend / release", manualExample),
    step("errors", errorsExample),
    step("LockLost", lockLostExample),
    step("QuorumUnavailable", unavailableExample(cluster.nodes))
  ], { discard: true }).pipe(Effect.provide(RedlockLive))
  yield* Console.log("quickstart: all examples passed")
})

NodeRuntime.runMain(Effect.scoped(main))
