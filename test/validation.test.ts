import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Cluster, Redis } from "ioredis"
import type { Client } from "../src/internal/node.js"
import * as Redlock from "../src/Redlock.js"
import * as RedisNodes from "./support/RedisNodes.js"
import { withRedlock } from "./support/setup.js"

/** Commands the library would send; the harness's own admin commands are not among them. */
const lockCommands = ["set", "eval", "evalsha", "pexpire", "del", "get", "exists"]

const sentByLibrary = (cluster: RedisNodes.RedisNodes) =>
  Effect.map(
    Effect.forEach(cluster.nodes, (node) => node.commandCalls),
    (perNode) => perNode.flatMap((calls) => lockCommands.filter((name) => (calls[name] ?? 0) > 0))
  )

const expectInvalid = <A, E extends { readonly _tag: string }>(
  effect: Effect.Effect<A, E, never>,
  argument: string
) =>
  Effect.gen(function*() {
    const error = yield* Effect.flip(effect)
    assert.strictEqual(error._tag, "InvalidArgument", `${argument}: ${String(error)}`)
    if (error._tag === "InvalidArgument") {
      assert.strictEqual((error as unknown as { argument: string }).argument, argument)
    }
  })

describe("bad input is refused before any Redis call", () => {
  it.scopedLive("per-call options and resources", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* withRedlock(3)
      yield* Effect.forEach(cluster.nodes, (node) => node.resetStats)
      const lock = (resources: unknown, options?: unknown) =>
        redlock.lock(resources as Redlock.Resources, options as Redlock.LockOptions)
      const acquire = (resources: unknown, options?: unknown) =>
        Effect.scoped(redlock.acquire(resources as Redlock.Resources, options as Redlock.AcquireOptions))

      // 8 ms: the drift allowance (2 ms) plus the 5 ms by which a loss is declared early, plus one.
      for (const ttl of [0, -1, Number.NaN, Infinity, 1.5, 2 ** 31, "abc", "-5 seconds", 2, 8, {}]) {
        yield* expectInvalid(lock("r", { ttl }), "ttl")
      }
      for (const resources of ["", [], ["a", "a"], [1], ["a", 2], "x".repeat(4097), null, undefined, 42]) {
        yield* expectInvalid(lock(resources), "resources")
      }
      yield* expectInvalid(lock("r", { retry: { times: -1 } }), "retry.times")
      yield* expectInvalid(lock("r", { retry: { times: 1.5 } }), "retry.times")
      yield* expectInvalid(lock("r", { retry: { jitter: 1 } }), "retry.jitter")
      yield* expectInvalid(lock("r", { retry: { delay: -5 } }), "retry.delay")
      yield* expectInvalid(lock("r", { retry: "often" }), "retry")
      yield* expectInvalid(lock("r", { nodeTimeout: 0 }), "nodeTimeout")
      yield* expectInvalid(lock("r", { ttl: 100, nodeTimeout: 100 }), "nodeTimeout")
      yield* expectInvalid(lock("r", { deadline: -1 }), "deadline")
      yield* expectInvalid(lock("r", "5 seconds"), "options")
      yield* expectInvalid(lock("r", { fencing: "yes" }), "fencing")
      yield* expectInvalid(acquire("r", { ttl: 1000, autoExtend: { threshold: 1000 } }), "autoExtend.threshold")
      // A lock reaching a threshold of 6 ms is already declared lost: it could never extend.
      yield* expectInvalid(acquire("r", { ttl: 1000, autoExtend: { threshold: 6 } }), "autoExtend.threshold")
      yield* expectInvalid(acquire("r", { autoExtend: { maxExtensions: -1 } }), "autoExtend.maxExtensions")
      yield* expectInvalid(acquire("r", { autoExtend: { maxHoldTime: 0 } }), "autoExtend.maxHoldTime")
      yield* expectInvalid(Effect.scoped(redlock.tryAcquire("")), "resources")
      yield* expectInvalid(redlock.withLock(Effect.void, [] as unknown as string), "resources")
      yield* expectInvalid(redlock.tryWithLock(Effect.void, "r", { ttl: -1 }), "ttl")

      assert.deepStrictEqual(yield* sentByLibrary(cluster), [])

      const held = yield* redlock.lock("valid")
      yield* expectInvalid(redlock.extend(held, 0), "ttl")
      yield* redlock.release(held)
      yield* Effect.forEach(cluster.nodes, (node) => node.resetStats)
      yield* expectInvalid(redlock.extend(held), "lock")
      yield* expectInvalid(redlock.extend({ value: held.value } as unknown as typeof held), "lock")
      const notALock = yield* Effect.exit(redlock.release({} as unknown as typeof held))
      assert.isTrue(notALock._tag === "Failure" && String(notALock.cause).includes("not a lock handle"))
      assert.deepStrictEqual(yield* sentByLibrary(cluster), [])
    }))

  it.scopedLive("instance options and clients", () =>
    Effect.gen(function*() {
      const cluster = yield* RedisNodes.make(2)
      const clients = yield* cluster.clients()
      const make = (options: unknown) => Effect.scoped(Redlock.make(options as Redlock.MakeOptions))
      const [a, b] = clients as [Redis, Redis]

      yield* expectInvalid(make({ clients: [] }), "clients")
      yield* expectInvalid(make({}), "clients")
      yield* expectInvalid(make(undefined), "options")
      yield* expectInvalid(make({ clients: [a, a] }), "clients")
      yield* expectInvalid(make({ clients: [a, {}] }), "clients")
      const twin = new Redis({ host: "127.0.0.1", port: a.options.port!, lazyConnect: true })
      yield* expectInvalid(make({ clients: [a, twin] }), "clients")
      for (const driftFactor of [-0.1, 1, Number.NaN, "0.01"]) {
        yield* expectInvalid(make({ clients: [a, b], driftFactor }), "driftFactor")
      }
      yield* expectInvalid(make({ clients: [a, b], keyPrefix: 5 }), "keyPrefix")
      yield* expectInvalid(make({ clients: [a, b], ttl: 0 }), "ttl")
      yield* expectInvalid(make({ clients: [a, b], wakeUp: "sometimes" }), "wakeUp")
      yield* expectInvalid(
        Effect.scoped(Layer.build(Redlock.layer({ nodes: ["http://x"] }))),
        "nodes"
      )
      assert.deepStrictEqual(yield* sentByLibrary(cluster), [])
    }))

  it.scopedLive("on a Cluster client, resources in different hash slots are refused", () =>
    Effect.gen(function*() {
      const cluster = yield* Effect.acquireRelease(
        Effect.sync(() => new Cluster([{ host: "127.0.0.1", port: 1 }], { lazyConnect: true })),
        (client) => Effect.sync(() => client.disconnect())
      )
      const redlock = yield* Redlock.make({ clients: [cluster as Client] })
      yield* expectInvalid(redlock.lock(["user:1", "user:2"]), "resources")
      // A fencing counter must share its lock key's slot: a key with "}" but no hash tag cannot.
      yield* expectInvalid(redlock.lock("user}1", { fencing: true }), "resources")
      assert.strictEqual(cluster.status, "wait", "nothing was sent: the client never connected")
      const sameSlot = ["{user:1}:profile", "{user:1}:balance"]
      const attempt = yield* Effect.flip(
        redlock.lock(sameSlot, { retry: { times: 0 }, nodeTimeout: "20 millis" })
      )
      assert.strictEqual(attempt._tag, "QuorumUnavailable", "same-slot resources pass validation")
      const fenced = yield* Effect.flip(
        redlock.lock("{user:1}:profile", { fencing: true, retry: { times: 0 }, nodeTimeout: "20 millis" })
      )
      assert.strictEqual(fenced._tag, "QuorumUnavailable", "a tagged resource passes validation with fencing")
      // Keyspace notifications stay on the node that holds the key: not usable through a Cluster client.
      yield* expectInvalid(Effect.scoped(Redlock.make({ clients: [cluster as Client], wakeUp: "keyspace" })), "wakeUp")
    }))

})
