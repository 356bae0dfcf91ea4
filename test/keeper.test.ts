/**
 * Held locks on real Redis: the keepers' extensions travel in batches, one command per node for
 * every lock due in the same grid step, and each lock still gets its own answer.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import * as Clock from "effect/Clock"
import * as Exit from "effect/Exit"
import * as Lock from "../src/Lock.js"
import { extensionDueAt } from "../src/internal/keepAlive.js"
import { fromClient } from "../src/internal/node.js"
import * as RedisNodes from "./support/RedisNodes.js"
import { eventually, keysEverywhere, nextTurn, resource, withRedlock } from "./support/setup.js"


describe("batched extensions on one node", () => {
  it.scopedLive.each(["", "app:"])(
    "extensions asked for in one turn go out as one command, each with its own reply (client keyPrefix '%s')",
    (keyPrefix) =>
      Effect.gen(function*() {
        const cluster = yield* RedisNodes.make(1)
        const [client] = yield* cluster.clients({ keyPrefix })
        const redis = cluster.nodes[0]!
        const node = fromClient(client!)
        const stored = (key: string) => `${keyPrefix}${key}`
        const [mine, taken, gone, pairA, pairB] = ["mine", "taken", "gone", "pair-a", "pair-b"].map(resource)
        for (const [key, value] of [[mine, "v1"], [taken, "other"], [pairA, "v4"], [pairB, "v4"]] as const) {
          yield* redis.call("SET", stored(key!), value, "PX", 1_000)
        }
        yield* redis.resetStats
        const replies = yield* Effect.promise(() =>
          Promise.all([
            node.extendInBatch([mine!], "v1", 60_000),
            node.extendInBatch([taken!], "v2", 60_000),
            node.extendInBatch([gone!], "v3", 60_000),
            node.extendInBatch([pairA!, pairB!], "v4", 60_000)
          ])
        )
        assert.deepStrictEqual(replies, [1, -1, 0, 1])
        assert.strictEqual(yield* redis.commandCount("evalsha"), 1, "one command for four locks")
        for (const key of [mine!, pairA!, pairB!]) assert.isAbove(yield* redis.pttl(stored(key)), 30_000)
        assert.isAtMost(yield* redis.pttl(stored(taken!)), 1_000, "another owner's key is left alone")
        assert.strictEqual(yield* redis.get(stored(taken!)), "other")
        assert.isNull(yield* redis.get(stored(gone!)), "a gone key is not recreated")
      })
  )

  it.scopedLive("a large batch is cut into commands of at most 500 locks", () =>
    Effect.gen(function*() {
      const cluster = yield* RedisNodes.make(1)
      const [client] = yield* cluster.clients()
      const redis = cluster.nodes[0]!
      const node = fromClient(client!)
      const keys = Array.from({ length: 1_200 }, (_, index) => resource(`many-${index}`))
      yield* Effect.promise(() => client!.mset(...keys.flatMap((key) => [key, "v"])))
      yield* redis.resetStats
      const replies = yield* Effect.promise(() => Promise.all(keys.map((key) => node.extendInBatch([key], "v", 60_000))))
      assert.isTrue(replies.every((reply) => reply === 1))
      assert.strictEqual(yield* redis.commandCount("evalsha"), 3)
      assert.isAbove(yield* redis.pttl(keys[1_199]!), 30_000)
    }))
})

/**
 * Tracks the timers set from now until the scope closes, each with its delay, and drops those
 * cleared or fired.
 */
const pendingTimers = Effect.acquireRelease(
  Effect.sync(() => {
    const live = new Map<unknown, number>()
    const { clearTimeout, setTimeout } = globalThis
    globalThis.setTimeout = ((callback: (...args: Array<unknown>) => void, ms?: number, ...args: Array<unknown>) => {
      const handle = setTimeout((...inner: Array<unknown>) => {
        live.delete(handle)
        callback(...inner)
      }, ms, ...args)
      live.set(handle, ms ?? 0)
      return handle
    }) as typeof globalThis.setTimeout
    globalThis.clearTimeout = ((handle: Parameters<typeof clearTimeout>[0]) => {
      live.delete(handle)
      clearTimeout(handle)
    }) as typeof globalThis.clearTimeout
    return { live, restore: () => Object.assign(globalThis, { clearTimeout, setTimeout }) }
  }),
  ({ restore }) => Effect.sync(restore)
).pipe(Effect.map(({ live }) => live as ReadonlyMap<unknown, number>))

describe("held locks on 3 nodes", () => {
  it.scopedLive("locks taken together extend together: a few commands per node, not one per lock", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(3)
      const scope = yield* Scope.make()
      const names = Array.from({ length: 60 }, (_, index) => resource(`held-${index}`))
      const locks = yield* Effect.forEach(
        names,
        (name) => Scope.extend(redlock.acquire(name, { ttl: 600, autoExtend: true }), scope),
        { concurrency: "unbounded" }
      )
      const extensions = () => locks.reduce((sum, lock) => sum + lock.extensions, 0)
      yield* Effect.forEach(cluster.nodes, (node) => node.resetStats, { discard: true })
      const before = extensions()
      const extended = yield* eventually(
        Effect.sync(() => Math.min(...locks.map((lock) => lock.extensions))),
        (fewest) => fewest >= 2
      )
      assert.isAtLeast(extended, 2, "every lock extended twice")
      const made = extensions() - before
      for (const node of cluster.nodes) {
        const commands = yield* node.commandCount("evalsha")
        // Unbatched, every extension is a command on every node. Batched, the locks due at one
        // grid instant share one: locks taken within a few ms share an instant (on a loaded
        // machine their acquisitions spread over several instants of 10 ms, seen: 0.4).
        assert.isAtMost(commands / made, 0.5, `${commands} extension commands on ${node.port} for ${made} extensions`)
      }
      for (const lock of locks) assert.isTrue(yield* Lock.isHeld(lock))
      yield* Scope.close(scope, Exit.void)
      const left = yield* keysEverywhere(cluster, "test:*")
      assert.deepStrictEqual(left, cluster.nodes.map(() => []))
    }))

  it.scopedLive("keepers due together share one timer, and leave nothing that holds the process up", () =>
    Effect.gen(function*() {
      const { redlock } = yield* withRedlock(3)
      yield* redlock.withLock(Effect.void, resource("warm-up"))
      const live = yield* pendingTimers
      const referenced = () => [...live.keys()].filter((handle) => (handle as NodeJS.Timeout).hasRef()).length
      const names = Array.from({ length: 50 }, (_, index) => resource(`shared-${index}`))
      const gate = yield* Deferred.make<void>()
      let inside = 0
      // The grid instants the locks fall due at: locks taken within one step of 50 ms share one.
      const dueAt = new Set<number>()
      const bodies = yield* Effect.fork(Effect.forEach(
        names,
        // A ttl of their own: their grid instants are not the warm-up's, whose timer is not tracked.
        (name) =>
          redlock.withLock((lock) =>
            Effect.zipRight(
              Effect.sync(() => {
                inside++
                dueAt.add(extensionDueAt(lock.expiresAt, 5_000))
              }),
              Deferred.await(gate)
            ), name, { ttl: 20_000, autoExtend: { threshold: "5 seconds" } }),
        { concurrency: "unbounded" }
      ))
      yield* eventually(Effect.sync(() => inside), (count) => count === names.length)
      // 50 held locks: one timer per grid instant they fall due at (and the shared node-timeout
      // sweep), not one per lock.
      assert.isAtLeast(referenced(), 1, "a grid timer with keepers holds the process up")
      assert.isAtMost(dueAt.size, 25, "the locks were taken together")
      assert.isAtMost(live.size, dueAt.size + 1, `${live.size} timers for 50 held locks due at ${dueAt.size} instants`)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(bodies)
      assert.strictEqual(referenced(), 0, "no referenced timer left once the locks are released")
      // Their grid instants are seconds away: the timers are cleared, not kept for later locks
      // (the node-timeout sweep, armed for 300 ms, may still be there).
      assert.deepStrictEqual([...live.values()].filter((ms) => ms > 1_000), [])
    }))

  it.scopedLive("a lock taken over in a shared batch is lost; the others in the batch stay held", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(3)
      const [stolen, kept] = [resource("stolen"), resource("kept")]
      const [first, second] = yield* Effect.all(
        [stolen, kept].map((name) => redlock.acquire(name, { ttl: 600, autoExtend: true })),
        { concurrency: "unbounded" }
      )
      for (const node of cluster.nodes) yield* node.call("SET", stolen, "someone else", "PX", 5_000)
      const lost = yield* Effect.flip(Lock.awaitLost(first!))
      assert.strictEqual(lost.reason, "taken")
      yield* eventually(Effect.sync(() => second!.extensions), (extensions) => extensions >= 2)
      assert.isAtLeast(second!.extensions, 2)
      assert.isTrue(yield* Lock.isHeld(second!))
      for (const node of cluster.nodes) assert.strictEqual(yield* node.get(stolen), "someone else")
    }))
})

/**
 * A holder's step loop that runs until interrupted: each step sleeps until a millisecond before
 * the expiry (then a millisecond at a time) and records any step that ran past the validity. A
 * step due well inside the validity that ran late because the event loop stalled is not the
 * library's doing, and is not recorded.
 */
const stepsUntilInterrupted = (lock: Lock.Lock, pastValidity: Array<string>, label: string) =>
  Effect.gen(function*() {
    while (true) {
      const left = lock.expiresAt - Date.now()
      const wait = left > 1 ? left - 1 : 1
      const dueAt = Date.now() + wait
      yield* Effect.sleep(wait)
      const now = Date.now()
      if (now >= lock.expiresAt && dueAt >= lock.expiresAt - 1) {
        pastValidity.push(`${label}: a step ${now - lock.expiresAt} ms past the validity`)
      }
    }
  })

describe("a lock whose validity runs out", () => {
  const rounds = 6
  /**
   * At most one round may see a step past the validity: on a loaded machine the event loop can
   * stall across the loss instant, and Node then runs the timers that fell due in its own order.
   * A loss declared at the expiry instead of ahead of it shows in most rounds.
   */
  const assertAhead = (pastValidity: ReadonlyArray<string>) =>
    assert.isAtMost(new Set(pastValidity.map((step) => step.split(":")[0])).size, 1, pastValidity.join("; "))

  it.scopedLive("that cannot be extended is lost before its validity ends: withLock's body never runs a step past it", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(1, { nodeTimeout: 80 })
      const node = cluster.nodes[0]!
      const pastValidity: Array<string> = []
      for (let round = 0; round < rounds; round++) {
        const lost = yield* Effect.flip(redlock.withLock(
          (lock) => Effect.zipRight(node.pause, stepsUntilInterrupted(lock, pastValidity, `round ${round}`)),
          resource(`with-lock-deadline-${round}`),
          { ttl: 250 }
        )).pipe(Effect.ensuring(node.resume))
        assert.strictEqual(lost._tag, "LockLost")
      }
      assertAhead(pastValidity)
    }))

  it.scopedLive.each([true, false])(
    "is lost before its validity ends: a body raced with awaitLost never runs a step past it (autoExtend %s)",
    (autoExtend) =>
      Effect.gen(function*() {
        const { cluster, redlock } = yield* withRedlock(1, { nodeTimeout: 80 })
        const node = cluster.nodes[0]!
        const pastValidity: Array<string> = []
        for (let round = 0; round < rounds; round++) {
          const lost = yield* Effect.scoped(Effect.gen(function*() {
            const lock = yield* redlock.acquire(resource(`deadline-${round}`), { ttl: 250, autoExtend })
            if (autoExtend) yield* node.pause
            const body = stepsUntilInterrupted(lock, pastValidity, `round ${round}`)
            return yield* Effect.flip(Effect.raceFirst(body, Lock.awaitLost(lock)))
          })).pipe(Effect.ensuring(node.resume))
          assert.strictEqual(lost.reason, autoExtend ? "unavailable" : "expired")
        }
        assertAhead(pastValidity)
      })
  )

  it.scoped("an attempt or extension that leaves 6 ms of validity or less fails; the attempt's value is deleted", () =>
    Effect.gen(function*() {
      // The node starts under the live clock; the lock's rounds then run on TestClock time.
      const { cluster, redlock } = yield* Effect.withClock(withRedlock(1, { ttl: 1_000, nodeTimeout: 999 }), Clock.make())
      const node = cluster.nodes[0]!
      yield* TestClock.setTime(1_000_000)
      // ttl 1000, drift 12: the validity is 988 ms less the time the attempt took.
      const attemptTaking = (ms: number, name: string) =>
        Effect.gen(function*() {
          yield* node.pause
          const attempt = yield* Effect.fork(Effect.either(redlock.lock(name, { retry: { times: 0 } })))
          yield* nextTurn
          yield* TestClock.adjust(ms)
          yield* node.resume
          return yield* Fiber.join(attempt)
        })
      const usable = yield* attemptTaking(981, resource("validity-7"))
      assert.isTrue(Either.isRight(usable), "7 ms of validity left: a lock")
      if (Either.isRight(usable)) yield* redlock.release(usable.right)
      const tooLate = yield* attemptTaking(982, resource("validity-6"))
      assert.isTrue(Either.isLeft(tooLate) && tooLate.left._tag === "QuorumUnavailable", "6 ms left: no lock")
      // The same for an extension whose confirmation leaves 6 ms: the lock is lost, not extended.
      const held = yield* redlock.lock(resource("validity-extend"))
      yield* node.pause
      const extending = yield* Effect.fork(Effect.either(redlock.extend(held)))
      yield* nextTurn
      yield* TestClock.adjust(982)
      yield* node.resume
      const extended = yield* Fiber.join(extending)
      assert.isTrue(Either.isLeft(extended) && extended.left._tag === "LockLost", "6 ms left: lost")
      yield* redlock.release(held)
      assert.deepStrictEqual(yield* keysEverywhere(cluster, "test:*").pipe(Effect.withClock(Clock.make())), [[]])
    }))

  it.scoped("a manual extend that cannot reach a quorum inside the loss lead marks the lock lost", () =>
    Effect.gen(function*() {
      // The nodes start under the live clock; the lock's rounds then run on TestClock time.
      const { cluster, redlock } = yield* Effect.withClock(withRedlock(1, { ttl: 1_000, nodeTimeout: 100 }), Clock.make())
      const node = cluster.nodes[0]!
      yield* TestClock.setTime(1_000_000)
      const lock = yield* redlock.lock(resource("manual-extend"))
      assert.strictEqual(lock.expiresAt, 1_000_988)
      yield* node.pause
      // The extension starts 101 ms before the expiry and times out 1 ms before it: inside the lead.
      yield* TestClock.setTime(lock.expiresAt - 101)
      const extending = yield* Effect.fork(Effect.flip(redlock.extend(lock)))
      yield* nextTurn
      yield* TestClock.adjust(100)
      const lost = yield* Fiber.join(extending)
      yield* node.resume
      assert.strictEqual(lost.reason, "unavailable")
      // Still 1 ms of validity by the clock, but the lock is lost: nothing may act on it now.
      assert.isFalse(yield* Lock.isHeld(lock))
      yield* redlock.release(lock)
      assert.deepStrictEqual(yield* keysEverywhere(cluster, "test:*").pipe(Effect.withClock(Clock.make())), [[]])
    }))

  it.scopedLive("an extend to a shorter ttl shortens the lock on the client as on Redis", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(3, { ttl: 10_000 })
      const name = resource("extend-shorter")
      const lock = yield* redlock.lock(name)
      yield* redlock.extend(lock, "1 second")
      const pttl = Number(yield* Effect.orDie(cluster.nodes[0]!.call("PTTL", name)))
      const remaining = lock.expiresAt - Date.now()
      assert.isAtMost(pttl, 1_000)
      assert.isAtMost(remaining, pttl, "the client never counts on more than Redis keeps")
      yield* redlock.release(lock)
    }))

  it.scopedLive("the keeper follows a shorter extend at once: the lock stays held on Redis", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(3, { ttl: 10_000 })
      const name = resource("keeper-shorter")
      const seen = yield* redlock.withLock(
        (lock: Lock.Lock) =>
          Effect.gen(function*() {
            yield* redlock.extend(lock, "600 millis")
            // Without a new plan the keeper would sleep until the old expiry's threshold (6.6 s).
            yield* Effect.sleep("1500 millis")
            return yield* Effect.orDie(cluster.nodes[0]!.get(name))
          }),
        name
      )
      assert.isNotNull(seen, "still held after 1.5 s, extended by the keeper")
      assert.deepStrictEqual(yield* keysEverywhere(cluster, "test:*"), [[], [], []])
    }))

  it.scopedLive("a threshold that is most of the ttl extends once a grid step, not back to back", () =>
    Effect.gen(function*() {
      const { redlock } = yield* withRedlock(1, { ttl: 1_000 })
      // Extend when 995 ms are left of a 1 s lock: every extension is due as soon as it is done.
      const extensions = yield* redlock.withLock(
        (lock: Lock.Lock) => Effect.zipRight(Effect.sleep("500 millis"), Effect.sync(() => lock.extensions)),
        resource("threshold-high"),
        { autoExtend: { threshold: 995 } }
      )
      // A grid step of 49 ms: about ten in 500 ms.
      assert.isAtLeast(extensions, 5)
      assert.isAtMost(extensions, 15)
    }))

  it.scopedLive("Lock.awaitLost without a keeper follows a shorter extend", () =>
    Effect.gen(function*() {
      const { redlock } = yield* withRedlock(1, { ttl: 10_000 })
      const lock = yield* redlock.lock(resource("await-shorter"))
      const watching = yield* Effect.fork(Effect.timed(Effect.flip(Lock.awaitLost(lock))))
      yield* Effect.sleep("50 millis")
      yield* redlock.extend(lock, "500 millis")
      const [waited, lost] = yield* Fiber.join(watching)
      assert.strictEqual(lost.reason, "expired")
      assert.isBelow(Duration.toMillis(waited), 2_000, "lost at the new expiry, not the old one")
      yield* redlock.release(lock)
    }))

  it.scopedLive("a shorter extend that failed, or was interrupted, still shortens the lock: it may have landed", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(3, { ttl: 10_000 })
      const [, second, third] = cluster.nodes
      for (const interrupted of [false, true]) {
        const name = resource(interrupted ? "extend-interrupted" : "extend-failed")
        const lock = yield* redlock.lock(name)
        yield* second!.pause
        yield* third!.pause
        const startedAt = Date.now()
        // A 5 s ttl: its node timeout (250 ms) lets the interruption land first, at 100 ms.
        const extending = yield* Effect.fork(Effect.either(redlock.extend(lock, "5 seconds")))
        yield* Effect.sleep("100 millis")
        if (interrupted) yield* Fiber.interrupt(extending)
        else assert.isTrue(Either.isLeft(yield* Fiber.join(extending)), "no quorum: the extension failed")
        yield* second!.resume
        yield* third!.resume
        // The paused nodes ran the PEXPIRE late: the client counts on no more than they keep.
        const pttl = Number(yield* Effect.orDie(second!.call("PTTL", name)))
        assert.isAtMost(pttl, 5_000)
        assert.isAtMost(lock.expiresAt, startedAt + 5_000, interrupted ? "interrupted" : "failed")
        yield* redlock.release(lock)
      }
    }))
})

