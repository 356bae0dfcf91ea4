import { assert, describe, it } from "@effect/vitest"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import * as Redlock from "../src/Redlock.js"
import * as RedisNodes from "./support/RedisNodes.js"
import { eventually, resource } from "./support/setup.js"

/** Client connections a node sees, from CLIENT LIST, excluding the one asking. */
const connections = (node: RedisNodes.RedisNode) =>
  Effect.map(node.call("CLIENT", "LIST"), (list) => String(list).trim().split("\n").length - 1)

describe("layers", () => {
  it.scopedLive("layer opens one client per URL and closes them when released", () =>
    Effect.gen(function*() {
      const cluster = yield* RedisNodes.make(3)
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        Redlock.layer({ nodes: cluster.urls, ttl: "2 seconds", keyPrefix: "app:" }),
        scope
      )
      const name = resource("layer")
      yield* Effect.scoped(Effect.gen(function*() {
        const lock = yield* Redlock.acquire(name)
        const values = yield* eventually(
          Effect.forEach(cluster.nodes, (node) => node.get(`app:${name}`)),
          (values) => values.every((value) => value === lock.value)
        )
        assert.deepStrictEqual(values, [lock.value, lock.value, lock.value])
        const pttl = yield* cluster.nodes[0]!.pttl(`app:${name}`)
        assert.isTrue(pttl > 1_000 && pttl <= 2_000)
      })).pipe(Effect.provide(context))
      for (const node of cluster.nodes) assert.strictEqual(yield* connections(node), 1)
      yield* Scope.close(scope, Exit.void)
      yield* Effect.sleep("50 millis")
      for (const node of cluster.nodes) {
        assert.strictEqual(yield* connections(node), 0)
        assert.deepStrictEqual(yield* node.keys("app:*"), [])
      }
    }))

  it.scopedLive("closing a layer whose nodes are down is quick and prints nothing", () =>
    Effect.gen(function*() {
      const cluster = yield* RedisNodes.make(3)
      const printed: Array<unknown> = []
      const original = console.error
      yield* Effect.acquireRelease(
        Effect.sync(() => (console.error = (...args: Array<unknown>) => void printed.push(args))),
        () => Effect.sync(() => (console.error = original))
      )
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(Redlock.layer({ nodes: cluster.urls }), scope)
      yield* Effect.scoped(Redlock.acquire(resource("down"))).pipe(Effect.provide(context))
      yield* Effect.forEach(cluster.nodes.slice(0, 2), (node) => node.kill)
      yield* Effect.sleep("300 millis")
      const [closing] = yield* Effect.timed(Scope.close(scope, Exit.void))
      yield* Effect.sleep("300 millis")
      assert.deepStrictEqual(printed, [])
      assert.isBelow(Duration.toMillis(closing), 1_500)
    }))

  it.scopedLive("layerConfig reads node URLs, a redacted password and tuning from Config", () =>
    Effect.gen(function*() {
      const cluster = yield* RedisNodes.make(3)
      for (const node of cluster.nodes) yield* node.call("ACL", "SETUSER", "locker", "on", ">s3cret", "~test:*", "+@all")
      const RedlockLive = Redlock.layerConfig({
        nodes: Config.array(Config.string(), "REDLOCK_NODES"),
        username: Config.string("REDLOCK_USER"),
        password: Config.option(Config.redacted("REDLOCK_PASSWORD")).pipe(Config.map(Option.getOrUndefined)),
        ttl: Config.duration("REDLOCK_TTL")
      })
      const provider = ConfigProvider.fromMap(
        new Map([
          ["REDLOCK_NODES", cluster.urls.join(",")],
          ["REDLOCK_USER", "locker"],
          ["REDLOCK_PASSWORD", "s3cret"],
          ["REDLOCK_TTL", "3 seconds"]
        ])
      )
      const name = resource("config")
      const pttl = yield* Effect.scoped(Effect.gen(function*() {
        yield* Redlock.acquire(name)
        return yield* eventually(
          Effect.forEach(cluster.nodes, (node) => node.pttl(name)),
          (pttl) => pttl.every((ms) => ms > 0)
        )
      })).pipe(Effect.provide(RedlockLive), Effect.withConfigProvider(provider))
      assert.isTrue(pttl.every((ms) => ms > 2_000 && ms <= 3_000))

      const missing = yield* Effect.flip(
        Effect.scoped(Layer.build(RedlockLive)).pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map())))
      )
      assert.notStrictEqual(missing._tag, "InvalidArgument")
    }))

  it.scopedLive("a wrong password is an unavailable quorum whose error does not reveal it", () =>
    Effect.gen(function*() {
      const cluster = yield* RedisNodes.make(1)
      yield* cluster.nodes[0]!.call("ACL", "SETUSER", "locker", "on", ">right-password", "~*", "+@all")
      const error = yield* Effect.flip(
        Redlock.lock(resource("auth"), { retry: { times: 0 } }).pipe(
          Effect.provide(Redlock.layer({
            nodes: cluster.urls,
            username: "locker",
            password: Redacted.make("wrong-password")
          }))
        )
      )
      assert.strictEqual(error._tag, "QuorumUnavailable")
      assert.notInclude(error.message, "wrong-password")
      assert.notInclude(JSON.stringify(error), "wrong-password")
    }))

})
