import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Tracer from "effect/Tracer"
import * as Scope from "effect/Scope"
import { Redis } from "ioredis"
import { inspect } from "node:util"
import * as Lock from "../src/Lock.js"
import * as RedlockMetrics from "../src/RedlockMetrics.js"
import { timeoutLengthsKept } from "../src/internal/fanout.js"
import { quorumOf } from "../src/internal/quorum.js"
import { eventually, keysEverywhere, quickRetry, resource, withRedlock } from "./support/setup.js"
import { assertReleased } from "./support/assertions.js"
import type * as RedisNodes from "./support/RedisNodes.js"

const lockKeys = (cluster: Parameters<typeof keysEverywhere>[0]) => keysEverywhere(cluster, "test:*")

describe.each([1, 3, 5])("Redlock on %i node(s)", (n) => {
  const quorum = quorumOf(n)
  const minority = n - quorum
  const majority = quorum

  it.scopedLive("a second owner is refused until the first releases, then gets the lock at once", () =>
    Effect.gen(function*() {
      const { cluster, redlock, settle } = yield* withRedlock(n)
      const name = resource("contended")
      const first = yield* redlock.lock(name, { ttl: "10 seconds" })
      yield* settle
      assert.strictEqual(first.attempts, 1)
      assert.deepStrictEqual(first.resources, [name])
      for (const node of cluster.nodes) assert.strictEqual(yield* node.get(name), first.value)

      const refused = yield* Effect.flip(redlock.lock(name, { retry: quickRetry }))
      assert.strictEqual(refused._tag, "LockContended")
      if (refused._tag === "LockContended") {
        // The first attempt, one right after subscribing to release announcements, then the retries.
        assert.strictEqual(refused.attempts, quickRetry.times + 2)
        assert.strictEqual(refused.votes.filter((vote) => vote.outcome === "denied").length >= quorum, true)
      }

      assertReleased(yield* redlock.release(first), quorum)
      const second = yield* redlock.lock(name, { retry: { times: 0 } })
      assert.strictEqual(second.attempts, 1)
      assert.notStrictEqual(second.value, first.value)
      yield* redlock.release(second)
      assert.deepStrictEqual(yield* lockKeys(cluster), Array(n).fill([]))
    }))

  it.scopedLive("releases asked for while one is in flight share its report and send no second delete", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(n)
      const lock = yield* redlock.lock(resource("release-in-flight"))
      yield* Effect.forEach(cluster.nodes, (node) => node.resetStats, { discard: true })
      const reports = yield* Effect.all([redlock.release(lock), redlock.release(lock), redlock.release(lock)], {
        concurrency: "unbounded"
      })
      assertReleased(reports[0]!, quorum)
      assert.isTrue(reports.every((report) => report === reports[0]), "one report for all")
      // The deletes not waited for land right after; none is sent twice.
      yield* Effect.sleep("50 millis")
      for (const node of cluster.nodes) {
        assert.strictEqual(yield* eventually(node.commandCount("evalsha"), (count) => count >= 1), 1, "one delete per node")
      }
    }))

  it.scopedLive("a retry Schedule decides how often to try again, and the deadline cuts it short", () =>
    Effect.gen(function*() {
      const { redlock } = yield* withRedlock(n)
      const name = resource("schedule")
      const held = yield* redlock.lock(name)
      const scheduled = yield* Effect.flip(redlock.lock(name, { retry: Schedule.recurs(2) }))
      assert.strictEqual(scheduled._tag === "LockContended" && scheduled.attempts, 2 + 2)
      const [elapsed, cut] = yield* Effect.timed(Effect.flip(
        redlock.lock(name, { retry: Schedule.spaced("40 millis"), deadline: "100 millis" })
      ))
      // Scheduled attempts at about 0, 40 and 80 ms (a loaded machine fits fewer), plus the one
      // after subscribing; none once the deadline passed, although the schedule never ends.
      assert.strictEqual(cut._tag, "LockContended")
      const attempts = cut._tag === "LockContended" ? cut.attempts : 0
      assert.isAtLeast(attempts, 2)
      assert.isAtMost(attempts, 5)
      assert.isBelow(Duration.toMillis(elapsed), 1_000)
      yield* redlock.release(held)
    }))

  it.scopedLive("tryAcquire answers None while held, Some when free", () =>
    Effect.gen(function*() {
      const { redlock } = yield* withRedlock(n)
      const name = resource("try")
      const held = yield* redlock.lock(name)
      assert.isTrue(Option.isNone(yield* Effect.scoped(redlock.tryAcquire(name))))
      yield* redlock.release(held)
      const free = yield* Effect.scoped(redlock.tryAcquire(name))
      assert.isTrue(Option.isSome(free))
    }))

  if (minority > 0) {
    it.scopedLive("survives a minority of dead nodes in one attempt", () =>
      Effect.gen(function*() {
        const { cluster, redlock } = yield* withRedlock(n)
        yield* Effect.forEach(cluster.nodes.slice(0, minority), (node) => node.kill)
        const name = resource("minority")
        const lock = yield* redlock.lock(name, { retry: { times: 0 } })
        assert.strictEqual(lock.attempts, 1)
        assert.isTrue(yield* Lock.isHeld(lock))
        // Done once the live quorum deleted the keys, whatever the dead nodes answer.
        const report = yield* redlock.release(lock)
        assert.strictEqual(report.released, n - minority)
        assert.isTrue(
          report.nodes.slice(0, minority).every((node) => ["error", "timeout", "pending"].includes(node.outcome)),
          report.nodes.map((node) => node.outcome).join(", ")
        )
      }))
  }

  it.scopedLive("a dead majority is QuorumUnavailable, not contention, also with default ioredis clients", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(n, { redisOptions: {} })
      yield* Effect.forEach(cluster.nodes.slice(0, majority), (node) => node.kill)
      const error = yield* Effect.flip(redlock.lock(resource("majority"), { retry: quickRetry })).pipe(
        Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => "hung" as const })
      )
      assert.strictEqual(error._tag, "QuorumUnavailable")
      if (error._tag === "QuorumUnavailable") {
        assert.strictEqual(error.attempts, quickRetry.times + 1)
        assert.strictEqual(error.quorum, quorum)
        assert.isTrue(error.votes.slice(0, majority).every((vote) => vote.outcome === "error" || vote.outcome === "timeout"))
      }
    }))

  it.scopedLive("a failed attempt leaves no key on a node that was paused during it", () =>
    Effect.gen(function*() {
      const { cluster, clients, redlock } = yield* withRedlock(n)
      const name = resource("paused")
      const [paused, ...others] = cluster.nodes
      // Another owner holds the key on enough of the other nodes that the attempt must fail.
      const holders = others.slice(0, n - quorum)
      for (const node of holders) yield* node.call("SET", name, "someone-else", "PX", 30_000)
      yield* paused!.pause
      const error = yield* Effect.flip(redlock.lock(name, { retry: { times: 0 }, nodeTimeout: "50 millis" }))
      assert.include(["LockContended", "QuorumUnavailable"], error._tag)
      yield* paused!.resume
      // The paused node executes the queued SET and then the release that followed it.
      yield* Effect.promise(() => clients[0]!.ping())
      assert.isNull(yield* paused!.get(name))
      for (const node of holders) assert.strictEqual(yield* node.get(name), "someone-else")
    }))

  it.scopedLive("a quorum that answers after the validity ran out is no lock, and its keys are deleted", () =>
    Effect.gen(function*() {
      // A large drift factor leaves 98 ms of validity from a 1 s ttl. A quorum of nodes holds writes
      // back for 350 ms (the pause is in force when the call returns), so they answer long after.
      const { cluster, redlock } = yield* withRedlock(n, { driftFactor: 0.9 })
      const name = resource("slow")
      for (const node of cluster.nodes.slice(0, quorum)) yield* node.call("CLIENT", "PAUSE", 350, "WRITE")
      const error = yield* Effect.flip(redlock.lock(name, { ttl: 1_000, nodeTimeout: 900, retry: { times: 0 } }))
      assert.strictEqual(error._tag, "QuorumUnavailable")
      if (error._tag === "QuorumUnavailable") {
        assert.isAtLeast(error.votes.filter((vote) => vote.outcome === "granted").length, quorum)
      }
      assert.deepStrictEqual(yield* lockKeys(cluster), Array(n).fill([]))
    }))

  it.scopedLive("extend keeps the key past the first ttl; after expiry it is LockLost and recreates nothing", () =>
    Effect.gen(function*() {
      const { cluster, redlock, settle } = yield* withRedlock(n)
      const name = resource("extend")
      // The release at the end waits at most this lock's node timeout for each node's report.
      const lock = yield* redlock.lock(name, { ttl: "300 millis", nodeTimeout: "150 millis" })
      const firstExpiry = lock.expiresAt
      yield* Effect.sleep("150 millis")
      yield* redlock.extend(lock, "600 millis")
      yield* settle
      assert.isTrue(lock.expiresAt > firstExpiry)
      assert.strictEqual(lock.extensions, 1)
      yield* Effect.sleep("300 millis")
      for (const node of cluster.nodes) assert.strictEqual(yield* node.get(name), lock.value)

      yield* Effect.sleep("500 millis")
      const lost = yield* Effect.flip(redlock.extend(lock))
      assert.strictEqual(lost._tag, "LockLost")
      if (lost._tag === "LockLost") assert.strictEqual(lost.reason, "expired")
      assert.isFalse(yield* Lock.isHeld(lock))
      assert.deepStrictEqual(yield* lockKeys(cluster), Array(n).fill([]))

      const report = yield* redlock.release(lock)
      assert.strictEqual(report.released, 0)
      assert.deepStrictEqual(report.nodes.map((node) => node.outcome), Array(n).fill("not-held"))
    }))

  it.scopedLive("extend of a lock taken by another owner is LockLost(taken) and leaves their key alone", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(n)
      const name = resource("taken")
      const lock = yield* redlock.lock(name, { ttl: "5 seconds" })
      for (const node of cluster.nodes) yield* node.call("SET", name, "thief", "PX", 5_000)
      const lost = yield* Effect.flip(redlock.extend(lock, "20 seconds"))
      assert.strictEqual(lost._tag === "LockLost" && lost.reason, "taken")
      for (const node of cluster.nodes) {
        assert.strictEqual(yield* node.get(name), "thief")
        assert.isTrue((yield* node.pttl(name)) <= 5_000)
      }
      const report = yield* redlock.release(lock)
      assert.strictEqual(report.released, 0)
      for (const node of cluster.nodes) assert.strictEqual(yield* node.get(name), "thief")
    }))

  it.scopedLive("the scope's close releases the keys on every node: success, failure, interruption", () =>
    Effect.gen(function*() {
      const { cluster, redlock, settle } = yield* withRedlock(n)
      const held = (name: string) =>
        Effect.zipRight(
          settle,
          Effect.forEach(cluster.nodes, (node) => node.get(name)).pipe(
            Effect.map((values) => values.filter((value) => value !== null).length)
          )
        )

      const ok = resource("scope-ok")
      yield* Effect.scoped(Effect.gen(function*() {
        yield* redlock.acquire(ok)
        assert.strictEqual(yield* held(ok), n)
      }))
      assert.strictEqual(yield* held(ok), 0)

      const failing = resource("scope-fail")
      const exit = yield* Effect.exit(Effect.scoped(Effect.gen(function*() {
        yield* redlock.acquire(failing)
        return yield* Effect.fail("boom")
      })))
      assert.isTrue(Exit.isFailure(exit))
      assert.strictEqual(yield* held(failing), 0)

      const interrupted = resource("scope-interrupt")
      const fiber = yield* Effect.fork(Effect.scoped(Effect.andThen(redlock.acquire(interrupted), Effect.never)))
      while ((yield* held(interrupted)) < n) yield* Effect.sleep("5 millis")
      yield* Fiber.interrupt(fiber)
      assert.strictEqual(yield* held(interrupted), 0)
    }))

  it.scopedLive("interrupting a waiter mid-retry leaves none of its keys behind", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(n)
      const name = resource("waiter")
      const holder = yield* redlock.lock(name, { ttl: "10 seconds" })
      const waiter = yield* Effect.fork(
        Effect.scoped(redlock.acquire(name, { retry: { times: Infinity, delay: "5 millis" } }))
      )
      yield* Effect.sleep("100 millis")
      yield* Fiber.interrupt(waiter)
      for (const node of cluster.nodes) assert.strictEqual(yield* node.get(name), holder.value)
      yield* redlock.release(holder)
      assert.deepStrictEqual(yield* lockKeys(cluster), Array(n).fill([]))
    }))

  it.scopedLive("interrupting an attempt in flight deletes the value its SETs leave behind", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(n)
      const name = resource("interrupted-attempt")
      // Every node holds writes back, so the attempt's SETs wait and land after the interruption.
      yield* Effect.forEach(cluster.nodes, (node) => node.call("CLIENT", "PAUSE", 300, "WRITE"), { discard: true })
      const taker = yield* Effect.fork(redlock.lock(name, { ttl: "10 seconds", nodeTimeout: "2 seconds" }))
      yield* Effect.sleep("50 millis")
      yield* Fiber.interrupt(taker)
      const perNode = yield* eventually(
        Effect.forEach(cluster.nodes, (node) => node.commandCount("set")),
        (sets) => sets.every((count) => count >= 1)
      )
      assert.deepStrictEqual(perNode, Array(n).fill(1), "the SETs did land")
      assert.deepStrictEqual(yield* lockKeys(cluster), Array(n).fill([]))
    }))

  it.scopedLive("multi-resource locks are all or nothing on every node", () =>
    Effect.gen(function*() {
      const { cluster, redlock, settle } = yield* withRedlock(n)
      const [a, b, c] = [resource("multi-a"), resource("multi-b"), resource("multi-c")]
      const both = yield* redlock.lock([a, b])
      yield* settle
      for (const node of cluster.nodes) {
        assert.strictEqual(yield* node.get(a), both.value)
        assert.strictEqual(yield* node.get(b), both.value)
      }
      const overlap = yield* Effect.flip(redlock.lock([b, c], { retry: { times: 0 } }))
      assert.strictEqual(overlap._tag, "LockContended")
      yield* settle
      for (const node of cluster.nodes) assert.isNull(yield* node.get(c))
      yield* redlock.release(both)
      const again = yield* redlock.lock([b, c], { retry: { times: 0 } })
      yield* redlock.release(again)
      assert.deepStrictEqual(yield* lockKeys(cluster), Array(n).fill([]))
    }))
})

/** Counts what a client's socket hands to the kernel: one call per write or per batch of writes. */
const countWrites = (client: Redis) =>
  Effect.gen(function*() {
    const socket = client.stream as unknown as Record<"_write" | "_writev", (...args: Array<unknown>) => void>
    const counts = {
      writes: 0,
      bytes: 0,
      reset() {
        counts.writes = 0
        counts.bytes = 0
      }
    }
    const sizeOf = (chunk: unknown) => typeof chunk === "string" ? Buffer.byteLength(chunk) : (chunk as Buffer).length
    for (const method of ["_write", "_writev"] as const) {
      const original = socket[method]!
      socket[method] = function(this: unknown, ...args: Array<unknown>) {
        counts.writes++
        counts.bytes += method === "_write"
          ? sizeOf(args[0])
          : (args[0] as ReadonlyArray<{ chunk: unknown }>).reduce((sum, { chunk }) => sum + sizeOf(chunk), 0)
        return original.apply(this, args)
      }
      yield* Effect.addFinalizer(() => Effect.sync(() => delete socket[method]))
    }
    return counts
  })

/** Pauses a node until the test ends; `timeouts` reads its `redlock_node_failures_total` timeouts. */
const stall = (node: RedisNodes.RedisNode) =>
  Effect.gen(function*() {
    yield* node.pause
    yield* Effect.addFinalizer(() => node.resume)
    const timeouts = Metric.value(
      Metric.tagged(Metric.tagged(RedlockMetrics.nodeFailures, "node", `127.0.0.1:${node.port}`), "outcome", "timeout")
    )
    return { stalled: node, timeouts }
  })

describe("Redlock scripts and clients", () => {
  it.scopedLive("a release is done once a quorum deleted the keys; a stalled node's delete lands when it answers", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(3)
      const name = resource("release-on-quorum")
      const lock = yield* redlock.lock(name, { nodeTimeout: 2_000 })
      const { stalled, timeouts } = yield* stall(cluster.nodes[2]!)
      const before = (yield* timeouts).count
      // Waiting for the stalled node would end in its timeout; the release does not wait.
      const report = yield* redlock.release(lock)
      assert.deepStrictEqual(report.nodes.map((node) => node.outcome), ["released", "released", "pending"])
      assert.strictEqual(report.released, 2)
      // It still watches the node: its timeout is counted when it comes.
      assert.strictEqual((yield* eventually(timeouts, (state) => state.count > before)).count, before + 1)
      yield* stalled.resume
      assert.isNull(yield* eventually(stalled.get(name), (value) => value === null))
    }))

  it.scopedLive("a failed attempt's clean-up does not watch the nodes it does not wait for", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(3)
      const name = resource("clean-up-unwatched")
      for (const node of cluster.nodes.slice(0, 2)) yield* node.call("SET", name, "another-owner", "PX", 10_000)
      const { timeouts } = yield* stall(cluster.nodes[2]!)
      const before = (yield* timeouts).count
      // Refused by two nodes: decided without the stalled one, whose SET and delete stay unanswered.
      const refused = yield* Effect.flip(redlock.lock(name, { retry: { times: 0 }, nodeTimeout: 100 }))
      assert.strictEqual(refused._tag, "LockContended")
      yield* Effect.sleep("400 millis")
      assert.strictEqual((yield* timeouts).count, before, "nobody waited for the stalled node")
    }))

  it.scopedLive("every round waits for a stalled node exactly its node timeout, as rounds come and go", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(3)
      yield* cluster.nodes[2]!.pause
      yield* Effect.addFinalizer(() => cluster.nodes[2]!.resume)
      // Rounds of two node timeouts interleave. Node 1 lost each lock's key, so no quorum
      // confirms its release without the stalled node: each release waits for it.
      const cycle = (name: string, nodeTimeout: number) =>
        Effect.gen(function*() {
          const lock = yield* redlock.lock(name, { nodeTimeout })
          yield* cluster.nodes[1]!.del(name)
          const started = Date.now()
          const report = yield* redlock.release(lock)
          return { waited: Date.now() - started, report, nodeTimeout }
        })
      const cycles = yield* Effect.all(
        Array.from({ length: 6 }, (_, index) =>
          Effect.zipRight(Effect.sleep(`${index * 40} millis`), cycle(resource(`stalled-${index}`), 150 + (index % 2) * 150))),
        { concurrency: "unbounded" }
      )
      for (const { nodeTimeout, report, waited } of cycles) {
        assert.deepStrictEqual(report.nodes.map((node) => node.outcome), ["released", "not-held", "timeout"])
        assert.isAtLeast(waited, nodeTimeout - 5)
        assert.isBelow(waited, nodeTimeout + 400, "not held up by another round's timer")
      }
    }))

  it.scopedLive("scripts run by EVALSHA and fall back to EVAL after SCRIPT FLUSH", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(3)
      const names = [resource("script-a"), resource("script-b")]
      const first = yield* redlock.lock(names)
      yield* redlock.release(first)
      for (const node of cluster.nodes) yield* node.call("SCRIPT", "FLUSH")
      for (const node of cluster.nodes) yield* node.resetStats
      const second = yield* redlock.lock(names)
      yield* redlock.extend(second)
      yield* redlock.release(second)
      for (const node of cluster.nodes) {
        const calls = yield* node.commandCalls
        assert.strictEqual(calls["eval"], 3, "each of the three scripts falls back to EVAL once")
        assert.strictEqual(calls["evalsha"], 3, "acquire, extend and release try EVALSHA")
      }
      assert.deepStrictEqual(yield* lockKeys(cluster), [[], [], []])
    }))

  it.scopedLive("a single resource costs one SET and one EVALSHA per node", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(3)
      const warm = yield* redlock.lock(resource("warm"))
      yield* redlock.release(warm)
      for (const node of cluster.nodes) yield* node.resetStats
      const lock = yield* redlock.lock(resource("cost"))
      yield* redlock.release(lock)
      for (const node of cluster.nodes) {
        const calls = yield* node.commandCalls
        assert.strictEqual(calls["set"], 1)
        assert.strictEqual(calls["evalsha"], 1)
        assert.isUndefined(calls["eval"])
      }
    }))

  it.scopedLive("locks taken in the same tick leave for a node in a few socket writes of about 4 KB", () =>
    Effect.gen(function*() {
      const { clients, redlock } = yield* withRedlock(1)
      const warm = yield* redlock.lock(resource("warm"))
      yield* redlock.release(warm)
      const socket = yield* countWrites(clients[0]!)
      // The first command of the tick leaves at once; the others in parts of 4 KB.
      const most = () => 2 + Math.floor(socket.bytes / 4096)
      const names = Array.from({ length: 32 }, (_, i) => resource(`batch-${i}`))
      const locks = yield* Effect.forEach(names, (name) => redlock.lock(name), { concurrency: "unbounded" })
      assert.strictEqual(locks.length, 32)
      assert.isAtMost(socket.writes, most(), `${socket.writes} writes (${socket.bytes} bytes) for 32 SETs`)
      socket.reset()
      yield* Effect.forEach(locks, (lock) => redlock.release(lock), { concurrency: "unbounded", discard: true })
      assert.isAtMost(socket.writes, most(), `${socket.writes} writes (${socket.bytes} bytes) for 32 releases`)
      assert.isAtMost(socket.writes, 4)
      // A larger batch goes in parts, so Redis starts on it early: one write for the first
      // command, then one per 4 KB held.
      const many = yield* Effect.forEach(
        Array.from({ length: 128 }, (_, i) => resource(`parts-${i}`)),
        (name) => redlock.lock(name),
        { concurrency: "unbounded" }
      )
      socket.reset()
      yield* Effect.forEach(many, (lock) => redlock.release(lock), { concurrency: "unbounded", discard: true })
      assert.isAtLeast(socket.bytes, 3 * 4096)
      assert.isAtLeast(socket.writes, 3, `${socket.writes} writes (${socket.bytes} bytes) for 128 releases`)
      assert.isAtMost(socket.writes, most())
      // Corking is per tick: the connection is uncorked afterwards and the user's own commands go out.
      assert.strictEqual(clients[0]!.stream.writableCorked, 0)
      assert.strictEqual(yield* Effect.promise(() => clients[0]!.ping()), "PONG")
    }))

  it.scopedLive("a connection the application corked is left to it: nothing is written until it uncorks", () =>
    Effect.gen(function*() {
      const { clients, redlock } = yield* withRedlock(1)
      const client = clients[0]!
      const socket = yield* countWrites(client)
      client.stream.cork()
      const locks = yield* Effect.fork(Effect.forEach(
        Array.from({ length: 128 }, (_, i) => resource(`corked-${i}`)),
        (name) => redlock.lock(name),
        { concurrency: "unbounded" }
      ))
      yield* Effect.sleep("50 millis")
      assert.strictEqual(socket.writes, 0, "more than 4 KB held, and not split")
      assert.strictEqual(client.stream.writableCorked, 1)
      client.stream.uncork()
      assert.lengthOf(yield* Fiber.join(locks), 128)
      assert.isAtLeast(socket.writes, 1)
    }))

  it.scopedLive("a lock handle prints without its owner value or the instance behind it", () =>
    Effect.gen(function*() {
      const { redlock } = yield* withRedlock(1)
      const name = resource("print")
      const lock = yield* redlock.lock(name)
      for (const text of [String(lock), JSON.stringify(lock), inspect(lock, { depth: 10, getters: true })]) {
        assert.notInclude(text, lock.value)
        assert.include(text, name)
        assert.notInclude(text, "127.0.0.1")
      }
      yield* redlock.release(lock)
      assert.include(String(lock), "released")
    }))

  it.scopedLive("borrowed clients keep working and get no listener left behind", () =>
    Effect.gen(function*() {
      const { clients, redlock } = yield* withRedlock(1)
      const before = clients[0]!.listenerCount("error")
      const scope = yield* Scope.make()
      const { make } = yield* Effect.promise(() => import("../src/Redlock.js"))
      const other = yield* Scope.extend(make({ clients }), scope)
      assert.strictEqual(clients[0]!.listenerCount("error"), before + 1)
      const lock = yield* other.lock(resource("listener"))
      yield* other.release(lock)
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(clients[0]!.listenerCount("error"), before)
      assert.strictEqual(yield* Effect.promise(() => clients[0]!.ping()), "PONG")
      assert.strictEqual(redlock.nodes, 1)
    }))

  it.scopedLive("operations record spans when the application installs a tracer", () =>
    Effect.gen(function*() {
      const { redlock } = yield* withRedlock(1)
      const names: Array<string> = []
      const native = yield* Effect.tracer
      const recording = Tracer.make({
        span: (name, ...rest) => {
          names.push(name)
          return native.span(name, ...rest)
        },
        context: native.context
      })
      const name = resource("traced")
      yield* Effect.withTracer(
        Effect.gen(function*() {
          const lock = yield* redlock.lock(name)
          yield* redlock.extend(lock)
          yield* redlock.release(lock)
          yield* redlock.withLock(Effect.void, name)
          yield* Effect.scoped(redlock.acquire(name))
        }),
        recording
      )
      assert.deepStrictEqual(names, ["Redlock.lock", "Redlock.extend", "Redlock.release", "Redlock.withLock", "Redlock.acquire"])
      names.length = 0
      yield* redlock.withLock(Effect.void, name)
      assert.deepStrictEqual(names, [], "the built-in tracer gets no spans")
    }))

  it.scopedLive("a lock is extended and released on the nodes of the instance that took it", () =>
    Effect.gen(function*() {
      const first = yield* withRedlock(3)
      const second = yield* withRedlock(3)
      const name = resource("foreign")
      const lock = yield* first.redlock.lock(name)
      yield* second.redlock.extend(lock, "20 seconds")
      yield* first.settle
      assert.isTrue((yield* first.cluster.nodes[0]!.pttl(name)) > 10_000)
      assertReleased(yield* second.redlock.release(lock), 2)
      assert.deepStrictEqual(yield* keysEverywhere(first.cluster, "test:*"), [[], [], []])
    }))

  it.scopedLive("a client whose node never answered still bounds every call", () =>
    Effect.gen(function*() {
      const { cluster } = yield* withRedlock(1)
      const { make } = yield* Effect.promise(() => import("../src/Redlock.js"))
      const port = cluster.nodes[0]!.port
      yield* cluster.nodes[0]!.kill
      // maxRetriesPerRequest: null makes ioredis queue commands forever.
      const stuck = yield* Effect.acquireRelease(
        Effect.sync(() => new Redis({ port, host: "127.0.0.1", maxRetriesPerRequest: null })),
        (client) => Effect.sync(() => client.disconnect())
      )
      const redlock = yield* make({ clients: [stuck], nodeTimeout: "50 millis" })
      const started = Date.now()
      const error = yield* Effect.flip(redlock.lock(resource("stuck"), { retry: { times: 1, delay: "10 millis" } }))
      assert.strictEqual(error._tag, "QuorumUnavailable")
      assert.isBelow(Date.now() - started, 5_000, "bounded by the node timeout, not by ioredis")
      if (error._tag === "QuorumUnavailable") assert.strictEqual(error.votes[0]!.outcome, "timeout")
    }))
})

describe("node timeouts", () => {
  it.scopedLive("locks of many different ttls do not pile up timeout lists", () =>
    Effect.gen(function*() {
      const { redlock } = yield* withRedlock(1)
      // Default node timeouts are 5 % of the ttl: forty ttls, forty timeout lengths.
      for (let index = 0; index < 40; index++) {
        const lock = yield* redlock.lock(resource("ttls"), { ttl: 1_000 + index * 20 + 7 })
        yield* redlock.release(lock)
      }
      assert.isAtMost(timeoutLengthsKept(), 17)
    }))
})

