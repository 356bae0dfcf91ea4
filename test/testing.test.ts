/**
 * `effect-redlock/testing`: its in-memory node answers every call as a real redis-server node
 * does (the same calls on both, replies compared, expiry included), and the kit's controls give a
 * user's tests the real failure modes under TestClock: expiry, automatic extension, a node down,
 * hung or emptied, another owner, wake-ups, bad input.
 */
import { assert, describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import * as MemoryNode from "../src/internal/memoryNode.js"
import * as Lock from "../src/Lock.js"
import { fromClient, type LockNode } from "../src/internal/node.js"
import * as Redlock from "../src/Redlock.js"
import * as RedlockTest from "../src/testing.js"
import * as RedisNodes from "./support/RedisNodes.js"
import { nextTurn } from "./support/setup.js"


/** Every kind of call, in an order that reaches each reply (1, 0, -1, tokens, counts). */
const script = (node: LockNode, wait: (ms: number) => Promise<void>) => async () => {
  const replies: Array<unknown> = []
  const record = async (call: Promise<number>) => replies.push(await call)
  await record(node.acquire(["a"], "v1", 10_000))
  await record(node.acquire(["a"], "v2", 10_000))
  await record(node.acquire(["b", "a"], "v2", 10_000))
  await record(node.acquire(["b", "c"], "v3", 10_000))
  await record(node.extend(["a"], "v1", 20_000))
  await record(node.extend(["a"], "v2", 20_000))
  await record(node.extend(["b", "gone"], "v3", 20_000))
  await record(node.extend(["gone", "a"], "v3", 20_000))
  // Asked together, extensions go as one batched command (extendMany): replies 1, 0 and -1.
  for (
    const reply of await Promise.all([
      node.extendInBatch(["b", "c"], "v3", 20_000),
      node.extendInBatch(["gone"], "v3", 20_000),
      node.extendInBatch(["a"], "v3", 20_000)
    ])
  ) replies.push(reply)
  await record(node.release(["b", "c"], "v1"))
  await record(node.release(["b", "c"], "v3"))
  await record(node.release(["a"], "v1"))
  await record(node.acquireFenced(["f"], ["f:fence"], "v4", 10_000))
  await record(node.acquireFenced(["f"], ["f:fence"], "v5", 10_000))
  await record(node.raiseFence(["f"], ["f:fence"], "v5", 9))
  await record(node.raiseFence(["f"], ["f:fence"], "v4", 7))
  await record(node.raiseFence(["f"], ["f:fence"], "v4", 2))
  await record(node.release(["f"], "v4"))
  await record(node.acquireFenced(["f", "g"], ["f:fence", "g:fence"], "v6", 10_000))
  // Expiry: a 300 ms lock is gone 700 ms later; an extension moves the expiry.
  await record(node.acquire(["short"], "v7", 300))
  await record(node.acquire(["kept"], "v8", 300))
  await record(node.extend(["kept"], "v8", 10_000))
  await wait(700)
  await record(node.acquire(["short"], "v9", 10_000))
  await record(node.acquire(["kept"], "v9", 10_000))
  await record(node.extend(["short"], "v9", 10_000))
  return replies
}

describe("the in-memory node", () => {
  it.scopedLive("answers every call as a real redis-server node does", () =>
    Effect.gen(function*() {
      const cluster = yield* RedisNodes.make(1)
      const [client] = yield* cluster.clients()
      const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
      const real = yield* Effect.promise(script(fromClient(client!, false), sleep))
      const memory = MemoryNode.make("memory-0", yield* Effect.clock)
      const inMemory = yield* Effect.promise(script(memory, sleep))
      assert.deepStrictEqual(inMemory, real)
      // The expected replies, so that a script that both got wrong the same way still fails.
      assert.deepStrictEqual(real, [1, 0, 0, 1, 1, -1, 0, -1, 1, 0, -1, 0, 2, 1, 1, 0, 0, 1, 1, 1, 8, 1, 1, 1, 1, 0, 1])
      const keys = yield* cluster.nodes[0]!.keys("*")
      assert.deepStrictEqual([...memory.entries().keys()].sort(), [...keys].sort())
      // A fencing counter that is not a number fails the call on both.
      const outcome = (call: Promise<number>) => call.then(() => "answered", () => "failed")
      yield* Effect.promise(() => client!.set("h:fence", "x"))
      memory.put("h:fence", "x")
      const onRedis = yield* Effect.promise(() => outcome(fromClient(client!, false).acquireFenced(["h"], ["h:fence"], "v", 1_000)))
      const onMemory = yield* Effect.promise(() => outcome(memory.acquireFenced(["h"], ["h:fence"], "v", 1_000)))
      assert.deepStrictEqual([onMemory, onRedis], ["failed", "failed"])
    }))
})

const noRetry = { retry: { times: 0 } } as const

describe("effect-redlock/testing under TestClock", () => {
  // The module's example, as the README shows it.
  it.effect("the job reports Redis down, not contention", () =>
    Effect.gen(function*() {
      const nodes = yield* RedlockTest.Nodes
      yield* nodes[0]!.down
      yield* nodes[1]!.down
      const error = yield* Effect.flip(Redlock.withLock(Effect.void, "job", { retry: { times: 0 } }))
      expect(error._tag).toBe("QuorumUnavailable")
    }).pipe(Effect.provide(RedlockTest.layer({ nodes: 3 }))))

  it.effect("a lock expires on the TestClock: another owner takes it once ttl has passed", () =>
    Effect.gen(function*() {
      const redlock = yield* Redlock.Redlock
      yield* redlock.lock("job", { ttl: "1 second" })
      assert.isTrue(Option.isNone(yield* Effect.scoped(redlock.tryAcquire("job"))))
      yield* TestClock.adjust("1 second")
      assert.isTrue(Option.isNone(yield* Effect.scoped(redlock.tryAcquire("job"))), "still held at ttl, as Redis keeps it")
      yield* TestClock.adjust("1 millis")
      assert.isTrue(Option.isSome(yield* Effect.scoped(redlock.tryAcquire("job"))), "free 1 ms after")
    }).pipe(Effect.provide(RedlockTest.layer())))

  it.effect("withLock extends its lock while the body runs far past the ttl, and frees it after", () =>
    Effect.gen(function*() {
      const redlock = yield* Redlock.Redlock
      const nodes = yield* RedlockTest.Nodes
      const body = yield* Effect.fork(redlock.withLock(Effect.sleep("1 minute"), "job", { ttl: "1 second" }))
      for (let second = 0; second < 30; second++) {
        yield* nextTurn
        yield* TestClock.adjust("1 second")
      }
      assert.isTrue(Option.isNone(yield* Effect.scoped(redlock.tryAcquire("job"))), "held after 30 ttls")
      yield* TestClock.adjust("31 seconds")
      yield* Fiber.join(body)
      for (const node of nodes) assert.strictEqual((yield* node.keys).size, 0)
    }).pipe(Effect.provide(RedlockTest.layer())))

  it.effect("a majority down is QuorumUnavailable, a minority down does not matter", () =>
    Effect.gen(function*() {
      const redlock = yield* Redlock.Redlock
      const [first, second] = yield* RedlockTest.Nodes
      yield* first!.down
      const lock = yield* redlock.lock("job", noRetry)
      yield* redlock.release(lock)
      yield* second!.down
      const error = yield* Effect.flip(redlock.lock("job", noRetry))
      assert.strictEqual(error._tag, "QuorumUnavailable")
      if (error._tag !== "QuorumUnavailable") return
      assert.deepStrictEqual(error.votes.slice(0, 2).map((vote) => vote.outcome), ["error", "error"])
      yield* first!.up
      yield* second!.up
      yield* redlock.lock("job", noRetry)
    }).pipe(Effect.provide(RedlockTest.layer())))

  it.effect("another owner on a majority is LockContended; on a minority the lock is still taken", () =>
    Effect.gen(function*() {
      const redlock = yield* Redlock.Redlock
      const [first, second] = yield* RedlockTest.Nodes
      yield* first!.occupy("job", "5 seconds")
      yield* redlock.lock("job", noRetry)
      yield* second!.occupy("other")
      yield* first!.occupy("other")
      const error = yield* Effect.flip(redlock.lock("other", noRetry))
      assert.strictEqual(error._tag, "LockContended")
      assert.strictEqual((yield* first!.keys).get("other"), "effect-redlock/testing:another-owner")
      yield* first!.evict("other")
      yield* redlock.lock("other", noRetry)
    }).pipe(Effect.provide(RedlockTest.layer())))

  it.effect("hung nodes time out after nodeTimeout of TestClock time; their late writes are cleaned up", () =>
    Effect.gen(function*() {
      const redlock = yield* Redlock.Redlock
      const nodes = yield* RedlockTest.Nodes
      yield* nodes[1]!.hang
      yield* nodes[2]!.hang
      const attempt = yield* Effect.fork(Effect.flip(redlock.lock("job", { ...noRetry, nodeTimeout: "100 millis" })))
      yield* nextTurn
      yield* TestClock.adjust("99 millis")
      yield* nextTurn
      assert.isNull(attempt.unsafePoll(), "waits for the hung nodes")
      yield* TestClock.adjust("1 millis")
      const error = yield* Fiber.join(attempt)
      assert.strictEqual(error._tag, "QuorumUnavailable")
      if (error._tag !== "QuorumUnavailable") return
      assert.deepStrictEqual(error.votes.map((vote) => vote.outcome), ["granted", "timeout", "timeout"])
      // Resumed, the nodes run the SET they held, then the clean-up's delete.
      yield* nodes[1]!.up
      yield* nodes[2]!.up
      yield* nextTurn
      for (const node of nodes) assert.strictEqual((yield* node.keys).size, 0)
      assert.strictEqual(yield* nodes[1]!.calls, 2)
    }).pipe(Effect.provide(RedlockTest.layer())))

  it.effect("slow nodes: the lock's validity shrinks by the attempt's time", () =>
    Effect.gen(function*() {
      const redlock = yield* Redlock.Redlock
      for (const node of yield* RedlockTest.Nodes) yield* node.slow("300 millis")
      const attempt = yield* Effect.fork(redlock.lock("job", { ttl: "1 second", nodeTimeout: "500 millis" }))
      yield* nextTurn
      yield* TestClock.adjust("299 millis")
      yield* nextTurn
      assert.isNull(attempt.unsafePoll(), "the nodes have not answered yet")
      yield* TestClock.adjust("1 millis")
      const lock = yield* Fiber.join(attempt)
      // Received with ttl − elapsed − drift left: 1000 − 300 − 12.
      assert.strictEqual(Duration.toMillis(yield* Lock.remaining(lock)), 688)
    }).pipe(Effect.provide(RedlockTest.layer())))

  it.effect("a node slower than nodeTimeout is a timeout; its late write lands, then its clean-up", () =>
    Effect.gen(function*() {
      const redlock = yield* Redlock.Redlock
      const nodes = yield* RedlockTest.Nodes
      for (const node of nodes) yield* node.slow("1 second")
      const attempt = yield* Effect.fork(Effect.flip(redlock.lock("job", { ...noRetry, ttl: "10 seconds", nodeTimeout: "100 millis" })))
      yield* nextTurn
      yield* TestClock.adjust("100 millis")
      const error = yield* Fiber.join(attempt)
      assert.strictEqual(error._tag, "QuorumUnavailable")
      // The SETs land at 1 s, the clean-ups sent at 100 ms land at 1.1 s.
      yield* TestClock.adjust("900 millis")
      yield* nextTurn
      assert.isTrue((yield* nodes[0]!.keys).has("job"), "the late write landed")
      yield* TestClock.adjust("100 millis")
      yield* nextTurn
      for (const node of nodes) assert.strictEqual((yield* node.keys).size, 0, "and was cleaned up")
    }).pipe(Effect.provide(RedlockTest.layer())))

  it.effect("a majority emptied while withLock runs: the body is interrupted with LockLost", () =>
    Effect.gen(function*() {
      const redlock = yield* Redlock.Redlock
      const nodes = yield* RedlockTest.Nodes
      const body = yield* Effect.fork(Effect.flip(redlock.withLock(Effect.never, "job", { ttl: "1 second" })))
      yield* nextTurn
      yield* nodes[0]!.flush
      yield* nodes[1]!.flush
      // The first extension is due with a third of the ttl left: it finds the keys gone, long
      // before the lock would expire (988 ms).
      yield* TestClock.adjust("700 millis")
      for (let turn = 0; turn < 5; turn++) yield* nextTurn
      const lost = body.unsafePoll()
      assert.isTrue(lost !== null && Exit.isSuccess(lost) && lost.value._tag === "LockLost", "lost at the extension")
    }).pipe(Effect.provide(RedlockTest.layer())))

  it.effect("a waiter gets a released lock at once, without the clock moving; without wake-ups it waits its retry delay", () =>
    Effect.gen(function*() {
      const handOver = (wakeUp: boolean) =>
        Effect.gen(function*() {
          const { redlock } = yield* RedlockTest.make({ wakeUp, retry: { times: 5, delay: "1 second", jitter: 0 } })
          const held = yield* redlock.lock("job")
          const waiter = yield* Effect.fork(redlock.lock("job"))
          yield* nextTurn
          yield* redlock.release(held)
          yield* nextTurn
          yield* nextTurn
          const exit = waiter.unsafePoll()
          return exit !== null && Exit.isSuccess(exit)
        })
      assert.isTrue(yield* handOver(true), "woken by the release")
      assert.isFalse(yield* handOver(false), "still waiting for its retry")
    }))

  it.effect("bad options and bad resources are InvalidArgument", () =>
    Effect.gen(function*() {
      for (const nodes of [0, 100, 1.5]) {
        const error = yield* Effect.flip(RedlockTest.make({ nodes }))
        assert.strictEqual(error._tag === "InvalidArgument" && error.argument, "nodes")
      }
      const ttl = yield* Effect.flip(RedlockTest.make({ ttl: -1 }))
      assert.strictEqual(ttl.argument, "ttl")
      const { nodes } = yield* RedlockTest.make({ nodes: 1 })
      const resource = yield* Effect.flip(nodes[0]!.occupy(""))
      assert.strictEqual(resource.argument, "resources")
      const occupyTtl = yield* Effect.flip(nodes[0]!.occupy("job", "0 millis"))
      assert.strictEqual(occupyTtl.argument, "ttl")
      const evicted = yield* Effect.flip(nodes[0]!.evict(""))
      assert.strictEqual(evicted.argument, "resources")
      const latency = yield* Effect.flip(nodes[0]!.slow("0 millis"))
      assert.strictEqual(latency.argument, "latency")
      // Bad input to the operations reaches no node.
      const three = yield* RedlockTest.make()
      for (const bad of [three.redlock.lock(""), three.redlock.lock("job", { ttl: -1 }), three.redlock.withLock(Effect.void, [])]) {
        assert.strictEqual((yield* Effect.flip(bad))._tag, "InvalidArgument")
      }
      for (const node of three.nodes) assert.strictEqual(yield* node.calls, 0, "no call reached a node")
    }))

  it.effect("the layer's keys carry the instance's keyPrefix", () =>
    Effect.gen(function*() {
      const redlock = yield* Redlock.Redlock
      const [node] = yield* RedlockTest.Nodes
      yield* redlock.lock("job")
      assert.deepStrictEqual([...(yield* node!.keys).keys()], ["app:job"])
      yield* node!.occupy("other")
      assert.isTrue((yield* node!.keys).has("app:other"))
    }).pipe(Effect.provide(RedlockTest.layer({ nodes: 1, keyPrefix: "app:" }))))
})
