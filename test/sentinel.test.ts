/**
 * Sentinel on real processes: a master with two replicas, watched by three Sentinels. The lock's
 * ioredis client finds the master through the Sentinels and counts as one vote. A failover is
 * survivable for the library (typed, bounded failures while it lasts; locks on the new master
 * after), and a lock replicated before it survives it; one not yet replicated would be lost:
 * replication is asynchronous (see the README's "Topologies").
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { Redis } from "ioredis"
import type { Client } from "../src/internal/node.js"
import * as Redlock from "../src/Redlock.js"
import * as RedisNodes from "./support/RedisNodes.js"
import { eventually, resource } from "./support/setup.js"

const master = "locks"

/** `eventually`, failing the test when `done` does not hold within `seconds`. */
const within = <A, E>(seconds: number, read: Effect.Effect<A, E>, done: (value: A) => boolean) =>
  Effect.tap(eventually(read, done, seconds), (value) =>
    Effect.sync(() => assert.isTrue(done(value), `not within ${seconds} s: ${JSON.stringify(value)}`)))

const startSentinel = Effect.gen(function*() {
  const data = yield* RedisNodes.make(3)
  const [primary, ...replicas] = data.nodes
  yield* Effect.forEach(replicas, (node) => node.call("REPLICAOF", "127.0.0.1", primary!.port), { discard: true })
  const replication = Effect.forEach(replicas, (node) => Effect.map(node.call("INFO", "replication"), String))
  yield* within(10, replication, (infos) => infos.every((info) => info.includes("master_link_status:up")))
  const sentinels = yield* RedisNodes.make(3, {
    sentinel: { name: master, masterPort: primary!.port, quorum: 2, downAfterMs: 1_000 }
  })
  // Each Sentinel must know the replicas and the other Sentinels before it can fail over.
  const views = Effect.forEach(sentinels.nodes, (node) => Effect.map(node.call("SENTINEL", "MASTER", master), String))
  yield* within(15, views, (all) =>
    all.every((view) => /num-slaves,2\b/.test(view.replace(/\s+/g, ",")) && /num-other-sentinels,2\b/.test(view.replace(/\s+/g, ","))))
  const client = yield* Effect.acquireRelease(
    Effect.sync(() => {
      const redis = new Redis({
        sentinels: sentinels.nodes.map((node) => ({ host: "127.0.0.1", port: node.port })),
        name: master
      })
      redis.on("error", () => {})
      return redis
    }),
    (redis) => Effect.sync(() => redis.disconnect())
  )
  yield* Effect.promise(() => client.ping())
  return { data, sentinels, client }
})

/** The port Sentinel `node` names as the master's. */
const masterPortOf = (node: RedisNodes.RedisNode) =>
  Effect.map(node.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", master), (reply) => Number((reply as Array<string>)[1]))

describe("Sentinel", () => {
  it.scopedLive("a client that finds its master through Sentinel is one vote, labelled by master and Sentinels", () =>
    Effect.gen(function*() {
      const { client, data } = yield* startSentinel
      const redlock = yield* Redlock.make({ clients: [client] })
      assert.strictEqual(redlock.nodes, 1)
      const name = resource("sentinel")
      const lock = yield* redlock.lock(name)
      assert.strictEqual(yield* data.nodes[0]!.get(name), lock.value)
      yield* redlock.release(lock)
      assert.isNull(yield* data.nodes[0]!.get(name))
    }))

  it.scopedLive("two Sentinel-watched masters are two votes; the same one twice is refused", () =>
    Effect.gen(function*() {
      const lazy = (name: string, port: number) =>
        Effect.acquireRelease(
          Effect.sync(() => new Redis({ sentinels: [{ host: "127.0.0.1", port }], name, lazyConnect: true })),
          (redis) => Effect.sync(() => redis.disconnect())
        )
      const a = yield* lazy("a", 1)
      const b = yield* lazy("b", 1)
      const sameAsA = yield* lazy("a", 1)
      const two = yield* Redlock.make({ clients: [a, b] as Array<Client> })
      assert.strictEqual(two.nodes, 2)
      const twice = yield* Effect.flip(Redlock.make({ clients: [a, sameAsA] as Array<Client> }))
      assert.strictEqual(twice._tag, "InvalidArgument")
      assert.include(String(twice), "a@127.0.0.1:1")
      assert.strictEqual(a.status, "wait", "nothing was sent")
    }))

  it.scopedLive(
    "a failover: calls fail typed and bounded while it lasts, a replicated lock survives it, new locks go to the new master",
    () =>
      Effect.gen(function*() {
        const { client, data, sentinels } = yield* startSentinel
        const redlock = yield* Redlock.make({ clients: [client] })
        const held = yield* redlock.lock(resource("sentinel-held"), { ttl: "30 seconds" })
        // Both replicas have the key before the master dies.
        assert.strictEqual(yield* data.nodes[0]!.call("WAIT", 2, 2_000), 2)
        yield* data.nodes[0]!.kill

        const outcomes: Array<{ readonly tag: string; readonly ms: number }> = []
        const name = resource("sentinel-after")
        const taken = yield* within(
          30,
          Effect.gen(function*() {
            const startedAt = Date.now()
            const attempt = yield* Effect.either(redlock.lock(name, { retry: { times: 0 }, nodeTimeout: "200 millis" }))
            outcomes.push({ tag: Either.isLeft(attempt) ? attempt.left._tag : "locked", ms: Date.now() - startedAt })
            return attempt
          }),
          Either.isRight
        )
        const failures = outcomes.filter((outcome) => outcome.tag !== "locked")
        assert.isAbove(failures.length, 0, "the failover took some calls")
        // While no master answers: QuorumUnavailable. Right after, a `LockContended` or two is
        // possible: the client's offline queue replays a timed-out attempt's SET on the new master
        // just before that attempt's delete.
        assert.include(failures.map((failure) => failure.tag), "QuorumUnavailable")
        for (const failure of failures) assert.include(["QuorumUnavailable", "LockContended"], failure.tag)
        assert.isBelow(Math.max(...outcomes.map((outcome) => outcome.ms)), 1_000, "every call bounded by its node timeout")

        // The Sentinels promoted a replica, which holds the new lock and the replicated one.
        // Sentinels agree on the new master one after another: ask until this one knows.
        const promoted = yield* eventually(masterPortOf(sentinels.nodes[0]!), (port) => port !== data.nodes[0]!.port, 10)
        const newMaster = data.nodes.find((node) => node.port === promoted)
        assert.isTrue(newMaster !== undefined && newMaster.index !== 0, `promoted ${promoted}`)
        const lock = Either.getOrThrow(taken)
        assert.strictEqual(yield* newMaster!.get(name), lock.value)
        yield* redlock.extend(held)
        yield* redlock.release(lock)
        yield* redlock.release(held)
      }),
    60_000
  )
})
