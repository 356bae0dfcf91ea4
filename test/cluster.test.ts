/**
 * A real Redis Cluster (3 masters on loopback) behind one ioredis `Cluster` client: one vote,
 * keys routed by slot, multi-resource locks within one slot, wake-ups through cluster pub/sub.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { Cluster } from "ioredis"
import { execFileSync } from "node:child_process"
import { slotOf } from "../src/internal/slot.js"
import * as Redlock from "../src/Redlock.js"
import * as RedisNodes from "./support/RedisNodes.js"
import { eventually, resource } from "./support/setup.js"

const startCluster = Effect.gen(function*() {
  const nodes = yield* RedisNodes.make(3, {
    args: ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"]
  })
  yield* Effect.sync(() =>
    execFileSync("redis-cli", [
      "--cluster",
      "create",
      ...nodes.nodes.map((node) => `127.0.0.1:${node.port}`),
      "--cluster-replicas",
      "0",
      "--cluster-yes"
    ], { stdio: "ignore", timeout: 20_000 })
  )
  yield* eventually(
    Effect.forEach(nodes.nodes, (node) => Effect.map(node.call("CLUSTER", "INFO"), String)),
    (infos) => infos.every((info) => info.includes("cluster_state:ok"))
  )
  const client = yield* Effect.acquireRelease(
    Effect.sync(() => new Cluster(nodes.nodes.map((node) => ({ host: "127.0.0.1", port: node.port })))),
    (client) => Effect.sync(() => client.disconnect())
  )
  client.on("error", () => {})
  yield* Effect.promise(() => client.ping())
  return { nodes, client }
})

/** The value of `key` on whichever master holds it. */
const valueOf = (nodes: RedisNodes.RedisNodes, key: string) =>
  Effect.map(
    Effect.forEach(nodes.nodes, (node) => Effect.either(node.get(key))),
    (values) => values.find((value) => value._tag === "Right" && value.right !== null)
  )

describe("Redis Cluster", () => {
  it.scopedLive("a Cluster client is one vote: locks, multi-resource in one slot, refused across slots", () =>
    Effect.gen(function*() {
      const { client, nodes } = yield* startCluster
      const redlock = yield* Redlock.make({ clients: [client] })
      assert.strictEqual(redlock.nodes, 1)

      const names = Array.from({ length: 6 }, (_, index) => resource(`cluster-${index}`))
      const locks = yield* Effect.forEach(names, (name) => redlock.lock(name))
      for (const [index, name] of names.entries()) {
        const found = yield* valueOf(nodes, name)
        assert.isTrue(found !== undefined && found._tag === "Right" && found.right === locks[index]!.value)
      }
      yield* Effect.forEach(locks, redlock.release)

      const tagged = [`{${names[0]}}:a`, `{${names[0]}}:b`]
      const both = yield* redlock.lock(tagged)
      assert.strictEqual((yield* Effect.flip(redlock.lock(tagged[1]!, { retry: { times: 0 } })))._tag, "LockContended")
      yield* redlock.release(both)

      const across = yield* Effect.flip(redlock.lock([names[0]!, names[1]!, names[2]!]))
      assert.strictEqual(across._tag, "InvalidArgument")
    }))

  it.scopedLive("fencing tokens through Cluster clients, with and without their own keyPrefix", () =>
    Effect.gen(function*() {
      const { client, nodes } = yield* startCluster
      const prefixed = yield* Effect.acquireRelease(
        Effect.sync(() =>
          new Cluster(nodes.nodes.map((node) => ({ host: "127.0.0.1", port: node.port })), { keyPrefix: "app:" })
        ),
        (prefixed) => Effect.sync(() => prefixed.disconnect())
      )
      prefixed.on("error", () => {})
      // The client's slot of a key is Redis's own, tags, braces without a tag and multi-byte keys included.
      for (const key of ["a", "{a}b", "a{}b", "{}a", "a{b", "a}b{c}", "x{y}z{w}", "ключ{é}", "ключ", "p:{p:k}:fence"]) {
        assert.strictEqual(slotOf(key), Number(yield* nodes.nodes[0]!.call("CLUSTER", "KEYSLOT", key)), key)
      }
      for (const clients of [[client], [prefixed]]) {
        const redlock = yield* Redlock.make({ clients })
        // Keys without a hash tag, with one, and with braces but no tag: every counter in its key's slot.
        for (const name of [resource("cluster-fence"), `{${resource("cluster-fence")}}:x`, `${resource("cluster-fence")}{`]) {
          const tokens = []
          for (let round = 0; round < 3; round++) {
            const lock = yield* redlock.lock(name, { fencing: true, retry: { times: 0 } })
            tokens.push(lock.fencingToken)
            yield* redlock.release(lock)
          }
          assert.deepStrictEqual(tokens, [1, 2, 3], `${name} ${clients[0] === prefixed ? "with" : "without"} keyPrefix`)
        }
      }
    }))

  it.scopedLive("withLock and wake-ups work through the Cluster client", () =>
    Effect.gen(function*() {
      const { client } = yield* startCluster
      const redlock = yield* Redlock.make({ clients: [client] })
      const name = resource("cluster-wake")
      const holder = yield* redlock.lock(name)
      const waiter = yield* Effect.fork(
        Effect.timed(redlock.withLock(Effect.succeed("done"), name, { retry: { times: 3, delay: "5 seconds" } }))
      )
      yield* Effect.sleep("200 millis")
      yield* redlock.release(holder)
      const [waited, result] = yield* Fiber.join(waiter)
      assert.strictEqual(result, "done")
      assert.isBelow(Duration.toMillis(waited), 4_000, "woken by the release, not by the 5 s poll")
    }))
})
