/**
 * The node-failure hook `makeInstance` passes to the nodes (the Promise façade's events), on real
 * redis-server nodes: a hook that throws cannot leave a round undecided.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { makeInstance } from "../src/internal/instance.js"
import * as RedisNodes from "./support/RedisNodes.js"
import { eventually, resource } from "./support/setup.js"

describe("makeInstance's node-failure hook", () => {
  it.scopedLive("a hook that throws is told of each failure, and every round still decides", () =>
    Effect.gen(function*() {
      const cluster = yield* RedisNodes.make(3)
      const clients = yield* cluster.clients({ enableOfflineQueue: false })
      const told: Array<string> = []
      const redlock = yield* makeInstance({ clients, ttl: "2 seconds" }, (node) => {
        told.push(node)
        throw new Error("a hook that throws")
      })
      const failing = cluster.nodes[2]!
      yield* failing.kill
      yield* eventually(Effect.sync(() => clients[2]!.status), (status) => status !== "ready")
      // Without the guard, the throw escapes the reply handler as an unhandled rejection and skips
      // the round's decision for that reply.
      const lock = yield* redlock.lock(resource("hook-throws"))
      const report = yield* Effect.timeout(redlock.release(lock), "2 seconds")
      assert.deepStrictEqual(report.nodes.map((node) => node.outcome), ["released", "released", "error"])
      assert.deepStrictEqual(told, [`127.0.0.1:${failing.port}`, `127.0.0.1:${failing.port}`])
    }))
})
