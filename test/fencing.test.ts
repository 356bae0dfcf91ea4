/**
 * Fencing tokens on real redis-server nodes: they grow with every lock of a resource, across
 * instances and operations; when the nodes' counters disagree the token is the highest and the
 * others are raised before the lock is handed over, so a later lock that misses the highest node
 * still gets a higher token; a raise that reaches no quorum fails the attempt and leaves no key; the
 * raise also goes to a node whose acquire reply is still pending; a caller interrupted during the
 * raise gets no lock and leaves no key.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import type { Redis } from "ioredis"
import * as Scripts from "../src/internal/scripts.js"
import { fenceKeyOf } from "../src/internal/options.js"
import * as Redlock from "../src/Redlock.js"
import * as RedlockMetrics from "../src/RedlockMetrics.js"
import type * as RedisNodes from "./support/RedisNodes.js"
import { eventually, keysEverywhere, resource, withRedlock } from "./support/setup.js"

const fenced = { fencing: true } as const

describe.each([1, 3, 5])("fencing tokens on %i node(s)", (n) => {
  it.scopedLive("grow with every lock of a resource, whichever operation and instance takes it", () =>
    Effect.gen(function*() {
      const { clients, redlock } = yield* withRedlock(n)
      // The other instance fences by default: its calls below give no options.
      const other = yield* Redlock.make({ clients, fencing: true })
      const name = resource("fence-grow")
      const tokens: Array<number | undefined> = []
      for (let round = 0; round < 2; round++) {
        const held = yield* redlock.lock(name, fenced)
        tokens.push(held.fencingToken)
        yield* redlock.release(held)
        tokens.push(yield* Effect.scoped(Effect.map(other.acquire(name), (lock) => lock.fencingToken)))
        tokens.push(yield* redlock.withLock((lock) => Effect.succeed(lock.fencingToken), name, fenced))
        const tried = yield* Effect.scoped(other.tryAcquire(name))
        tokens.push(Option.getOrThrow(tried).fencingToken)
      }
      assert.deepStrictEqual(tokens, [1, 2, 3, 4, 5, 6, 7, 8])
    }))

  it.scopedLive("without fencing a lock has no token and leaves no counter", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(n)
      const name = resource("fence-off")
      const held = yield* redlock.lock(name)
      assert.isUndefined(held.fencingToken)
      yield* redlock.release(held)
      assert.deepStrictEqual(yield* keysEverywhere(cluster, `*${name}*`), Array(n).fill([]))
    }))
})

/**
 * Node 0 saw 100 locks of `name` that node 1 missed, and node 2 is held by another owner: an
 * attempt's quorum is nodes 0 and 1, whose counters disagree.
 */
const disagreeingQuorum = (cluster: RedisNodes.RedisNodes, name: string) =>
  Effect.orDie(Effect.zipRight(
    cluster.nodes[0]!.call("SET", fenceKeyOf(name), 100),
    cluster.nodes[2]!.call("SET", name, "someone-else", "PX", 60_000)
  ))

describe("fencing tokens when the nodes' counters disagree", () => {
  it.scopedLive("the token is the highest counter, and the others are raised before the lock is handed over", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(3)
      const name = resource("fence-raise")
      const fenceKey = fenceKeyOf(name)
      yield* disagreeingQuorum(cluster, name)
      const first = yield* redlock.lock(name, fenced)
      assert.strictEqual(first.fencingToken, 101)
      // Node 1 was raised before the lock was handed over; node 2 refused the lock and kept none.
      assert.deepStrictEqual(yield* Effect.forEach(cluster.nodes, (node) => node.get(fenceKey)), ["101", "101", null])
      yield* redlock.release(first)

      // The next lock misses node 0: node 1's raised counter still puts it above the first.
      yield* cluster.nodes[2]!.del(name)
      yield* cluster.nodes[0]!.kill
      const second = yield* redlock.lock(name, fenced)
      assert.strictEqual(second.fencingToken, 102)
      yield* redlock.release(second)
    }))

  it.scopedLive("a multi-resource lock's token exceeds every earlier token of each of its resources", () =>
    Effect.gen(function*() {
      const { redlock } = yield* withRedlock(3)
      const [a, b] = [resource("fence-a"), resource("fence-b")]
      const tokenOf = (resources: string | ReadonlyArray<string>) =>
        Effect.flatMap(redlock.lock(resources, fenced), (lock) => Effect.as(redlock.release(lock), lock.fencingToken))
      const tokens = [yield* tokenOf(a), yield* tokenOf(a), yield* tokenOf(a), yield* tokenOf(b)]
      assert.deepStrictEqual(tokens, [1, 2, 3, 1])
      // Both counters are raised to the token: the next lock of b alone is above it too.
      assert.strictEqual(yield* tokenOf([a, b]), 4)
      assert.strictEqual(yield* tokenOf(b), 5)
    }))

  it.scopedLive("a raise that reaches no quorum fails the attempt, and its keys are deleted", () =>
    Effect.gen(function*() {
      const { cluster, clients, redlock } = yield* withRedlock(3)
      const name = resource("fence-unconfirmed")
      // Node 1 fails the raise.
      yield* disagreeingQuorum(cluster, name)
      refuseScript(clients[1]!, Scripts.raiseFence.sha)
      const error = yield* Effect.flip(redlock.lock(name, { ...fenced, retry: { times: 0 } }))
      assert.strictEqual(error._tag, "QuorumUnavailable")
      yield* cluster.nodes[2]!.del(name)
      assert.deepStrictEqual(yield* keysEverywhere(cluster, name), [[], [], []])
    }))
})

describe("fencing tokens: the raise round", () => {
  it.scopedLive("a node whose acquire reply had not arrived gets the raise too, behind its SET", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(3)
      const name = resource("fence-raise-pending")
      const fenceKey = fenceKeyOf(name)
      // Nodes 0 and 1 decide the attempt with counters that disagree; node 2 answers nothing yet.
      yield* cluster.nodes[0]!.call("SET", fenceKey, 100)
      yield* cluster.nodes[2]!.pause
      const lock = yield* redlock.lock(name, fenced)
      assert.strictEqual(lock.fencingToken, 101)
      // Node 2 runs the SET, then the raise queued behind it on the same connection.
      yield* cluster.nodes[2]!.resume
      // Read until both landed: the test's own connection may be served before the queued SET.
      const node2 = yield* eventually(
        Effect.all([cluster.nodes[2]!.get(name), cluster.nodes[2]!.get(fenceKey)]),
        ([value, counter]) => value !== null && counter === "101"
      )
      assert.deepStrictEqual(node2, [lock.value, "101"])
      yield* redlock.release(lock)
    }))

  it.scopedLive("a caller interrupted during the raise gets no lock, and the attempt's keys are deleted", () =>
    Effect.gen(function*() {
      const { cluster, clients, redlock } = yield* withRedlock(3)
      const name = resource("fence-raise-interrupted")
      yield* disagreeingQuorum(cluster, name)
      // Node 1's raise is held back until the test lets it go.
      const raise = holdScript(clients[1]!, Scripts.raiseFence.sha)
      const before = yield* Metric.value(RedlockMetrics.acquired)
      const locking = yield* Effect.fork(redlock.lock(name, { ...fenced, retry: { times: 0 } }))
      yield* eventually(Effect.sync(() => raise.calls()), (calls) => calls === 1)
      // The attempt holds nodes 0 and 1, unconfirmed: the interruption deletes its keys.
      assert.isString(yield* cluster.nodes[1]!.get(name))
      const exit = yield* Fiber.interrupt(locking)
      assert.isTrue(Exit.isInterrupted(exit))
      assert.deepStrictEqual(
        yield* Effect.forEach(cluster.nodes, (node) => node.get(name)),
        [null, null, "someone-else"]
      )
      // The raise, let go now, runs (by EVAL: the node never loaded the script), finds the keys
      // gone, and leaves node 1's counter where the attempt put it.
      yield* cluster.nodes[1]!.resetStats
      yield* Effect.promise(() => raise.open().catch(() => undefined))
      yield* eventually(Effect.orDie(cluster.nodes[1]!.commandCount("eval")), (count) => count === 1)
      assert.strictEqual(yield* cluster.nodes[1]!.get(fenceKeyOf(name)), "1")
      assert.strictEqual((yield* Metric.value(RedlockMetrics.acquired)).count, before.count, "no lock was handed out")
    }))
})

/** Routes the client's EVALSHA calls of one script through `onCall`, which may `send` them. */
const interceptScript = (client: Redis, sha: string, onCall: (send: () => Promise<unknown>) => Promise<unknown>) => {
  const evalsha = client.evalsha.bind(client) as (...args: Array<unknown>) => Promise<unknown>
  ;(client as unknown as { evalsha: typeof evalsha }).evalsha = (...args) =>
    args[0] === sha ? onCall(() => evalsha(...args)) : evalsha(...args)
}

/** Makes the client's EVALSHA of one script fail, as a node that errors would. */
const refuseScript = (client: Redis, sha: string) =>
  interceptScript(client, sha, () => Promise.reject(new Error("ERR refused by the test")))

/**
 * Holds back the client's EVALSHA of one script until `open` is called, which sends it and
 * returns its reply.
 */
const holdScript = (client: Redis, sha: string) => {
  let calls = 0
  let open: () => void = () => {}
  const gate = new Promise<void>((resolve) => {
    open = resolve
  })
  let reply: Promise<unknown> = Promise.resolve(undefined)
  interceptScript(client, sha, (send) => {
    calls++
    reply = gate.then(send)
    return reply
  })
  return {
    calls: () => calls,
    open: () => {
      open()
      return reply
    }
  }
}
