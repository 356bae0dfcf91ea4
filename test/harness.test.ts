import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as RedisNodes from "./support/RedisNodes.js"

const isGone = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return false
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ESRCH"
  }
}

const childRedisServers = (): ReadonlyArray<string> => {
  try {
    return execFileSync("ps", ["--ppid", String(process.pid), "-o", "pid=,comm="], { encoding: "utf8" })
      .split("\n")
      .filter((line) => line.includes("redis-server"))
  } catch {
    return []
  }
}

const connectOutcome = (port: number) =>
  Effect.async<string>((resume) => {
    const socket = Net.connect(port, "127.0.0.1")
    socket.once("connect", () => {
      socket.destroy()
      resume(Effect.succeed("connected"))
    })
    socket.once("error", (error: NodeJS.ErrnoException) => resume(Effect.succeed(error.code ?? error.message)))
  })

describe("RedisNodes", () => {
  it.scopedLive("starts three nodes that answer on distinct loopback ports", () =>
    Effect.gen(function*() {
      const { clients, nodes, urls } = yield* RedisNodes.make(3)
      assert.strictEqual(nodes.length, 3)
      assert.strictEqual(new Set(nodes.map((node) => node.port)).size, 3)
      assert.strictEqual(new Set(nodes.map((node) => node.pid)).size, 3)
      for (const node of nodes) {
        assert.notStrictEqual(node.port, 6379)
        assert.strictEqual(node.url, `redis://127.0.0.1:${node.port}`)
        assert.strictEqual(yield* node.call("PING"), "PONG")
        assert.isTrue(yield* node.isRunning)
      }
      assert.deepStrictEqual(urls, nodes.map((node) => node.url))

      const redis = yield* clients()
      yield* Effect.promise(() => Promise.all(redis.map((client, i) => client.set(`harness:${i}`, "v", "PX", 10_000))))
      for (const [i, node] of nodes.entries()) {
        assert.deepStrictEqual(yield* node.keys("harness:*"), [`harness:${i}`])
        assert.strictEqual(yield* node.get(`harness:${i}`), "v")
        const pttl = yield* node.pttl(`harness:${i}`)
        assert.isTrue(pttl > 9_000 && pttl <= 10_000)
      }
      assert.strictEqual(yield* nodes[0]!.del("harness:0"), 1)
      assert.deepStrictEqual(yield* nodes[0]!.keys(), [])
      yield* nodes[1]!.flushAll
      assert.deepStrictEqual(yield* nodes[1]!.keys(), [])
    }))

  it.scopedLive("counts commands per node", () =>
    Effect.gen(function*() {
      const { clients, nodes } = yield* RedisNodes.make(1)
      const node = nodes[0]!
      const [redis] = yield* clients()
      yield* node.resetStats
      yield* Effect.promise(() => redis!.set("stats:a", "1").then(() => redis!.set("stats:b", "2")))
      yield* Effect.promise(() => redis!.eval("return 1", 0))
      assert.strictEqual(yield* node.commandCount("set"), 2)
      assert.strictEqual(yield* node.commandCount("EVAL"), 1)
      assert.strictEqual(yield* node.commandCount("evalsha"), 0)
      const calls = yield* node.commandCalls
      assert.strictEqual(calls["set"], 2)
    }))

  it.scopedLive("kill refuses connections, restart comes back empty on the same port", () =>
    Effect.gen(function*() {
      const { clients, nodes } = yield* RedisNodes.make(3)
      const node = nodes[1]!
      const [, redis] = yield* clients({ maxRetriesPerRequest: 0 })
      yield* Effect.promise(() => redis!.set("restart:k", "v"))
      const firstPid = node.pid

      yield* node.kill
      assert.isFalse(yield* node.isRunning)
      assert.isTrue(isGone(firstPid))
      assert.strictEqual(yield* connectOutcome(node.port), "ECONNREFUSED")
      const error = yield* Effect.flip(node.call("PING"))
      assert.strictEqual(error._tag, "RedisNodesError")
      assert.match(error.message, /ECONNREFUSED/)
      yield* node.kill

      yield* node.restart
      assert.isTrue(yield* node.isRunning)
      assert.notStrictEqual(node.pid, firstPid)
      assert.strictEqual(yield* node.call("PING"), "PONG")
      assert.deepStrictEqual(yield* node.keys(), [])
      assert.strictEqual(yield* nodes[0]!.call("PING"), "PONG")
    }))

  it.scopedLive("keeps data across a restart with appendfsync always", () =>
    Effect.gen(function*() {
      const { nodes } = yield* RedisNodes.make(1, { args: ["--appendonly", "yes", "--appendfsync", "always"] })
      const node = nodes[0]!
      yield* node.call("SET", "aof:k", "v")
      yield* node.restart
      assert.strictEqual(yield* node.get("aof:k"), "v")
    }))

  it.scopedLive("pause stalls commands until resume", () =>
    Effect.gen(function*() {
      const { clients, nodes } = yield* RedisNodes.make(3, { adminTimeout: "300 millis" })
      const node = nodes[2]!
      const [, , redis] = yield* clients()

      yield* node.pause
      assert.isTrue(yield* node.isRunning)
      const pending = redis!.set("pause:k", "v")
      const early = yield* Effect.promise(() => pending).pipe(Effect.timeout("200 millis"), Effect.option)
      assert.isTrue(Option.isNone(early))
      const error = yield* Effect.flip(node.get("pause:k"))
      assert.match(error.message, /timed out/)

      yield* node.resume
      assert.strictEqual(yield* Effect.promise(() => pending), "OK")
      assert.strictEqual(yield* node.get("pause:k"), "v")

      yield* node.pause
      yield* node.kill
      assert.isFalse(yield* node.isRunning)
      yield* node.restart
      yield* node.pause
    }))

  it.live("kills every process and removes the dirs when the scope closes", () =>
    Effect.gen(function*() {
      const started = yield* Effect.scoped(
        Effect.gen(function*() {
          const { nodes } = yield* RedisNodes.make(3)
          yield* nodes[0]!.pause
          yield* nodes[1]!.kill
          return nodes.map((node) => ({ pid: node.pid, dir: node.dir }))
        })
      )
      for (const { dir, pid } of started) {
        assert.isTrue(isGone(pid), `pid ${pid} still alive`)
        assert.isFalse(Fs.existsSync(dir))
      }
      assert.deepStrictEqual(childRedisServers(), [])
    }))

  it.live("kills the processes when the scope fails or is interrupted", () =>
    Effect.gen(function*() {
      const pids: Array<number> = []
      const failed = yield* Effect.scoped(
        Effect.gen(function*() {
          const { nodes } = yield* RedisNodes.make(2)
          pids.push(...nodes.map((node) => node.pid))
          return yield* Effect.fail("boom" as const)
        })
      ).pipe(Effect.flip)
      assert.strictEqual(failed, "boom")
      assert.isTrue(pids.every(isGone))

      const fiber = yield* Effect.fork(Effect.scoped(Effect.zipRight(RedisNodes.make(3), Effect.never)))
      yield* Effect.sleep("5 millis")
      yield* Fiber.interrupt(fiber)
      assert.deepStrictEqual(childRedisServers(), [])

      const started = yield* Effect.fork(
        Effect.scoped(RedisNodes.make(3).pipe(Effect.tap(({ nodes }) => pids.push(...nodes.map((node) => node.pid))), Effect.zipRight(Effect.never)))
      )
      yield* Effect.sleep("1 second")
      yield* Fiber.interrupt(started)
      assert.strictEqual(pids.length, 5)
      assert.isTrue(pids.every(isGone))
      assert.deepStrictEqual(childRedisServers(), [])
    }))

  it.scopedLive("starts five nodes quickly", () =>
    Effect.gen(function*() {
      const startedAt = Date.now()
      const { nodes } = yield* RedisNodes.make(5)
      const elapsed = Date.now() - startedAt
      assert.strictEqual(nodes.length, 5)
      for (const node of nodes) assert.strictEqual(yield* node.call("PING"), "PONG")
      assert.isBelow(elapsed, 5_000)
    }))

  it.scopedLive("fails clearly when redis-server is missing", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(RedisNodes.make(1, { binary: "redis-server-that-does-not-exist" }))
      assert.strictEqual(error._tag, "RedisNodesError")
      assert.match(error.message, /not found on PATH/)
    }))

  it.scopedLive("fails clearly when redis-server rejects its arguments", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(RedisNodes.make(1, { args: ["--no-such-option", "x"] }))
      assert.match(error.message, /exited before answering/)
      assert.deepStrictEqual(childRedisServers(), [])
    }))
})
