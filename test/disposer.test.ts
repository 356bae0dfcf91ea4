/**
 * The Promise façade's `disposer` (node-redlock v2–v4) with bluebird's `Promise.using`, against
 * real nodes.
 */
import { assert, describe, it } from "@effect/vitest"
import Bluebird from "bluebird"
import * as Effect from "effect/Effect"
import { execFile } from "node:child_process"
import Redlock, { ExecutionError, type Lock, ResourceLockedError } from "../src/promise.js"
import type { LockLost } from "../src/RedlockError.js"
import * as RedisNodes from "./support/RedisNodes.js"
import { keysEverywhere, resource } from "./support/setup.js"

const setup = (clientOptions: Parameters<RedisNodes.RedisNodes["clients"]>[0] = {}) =>
  Effect.gen(function*() {
    const cluster = yield* RedisNodes.make(3)
    const clients = yield* cluster.clients(clientOptions)
    const redlock = yield* Effect.acquireRelease(
      Effect.sync(() => new Redlock(clients, { retryCount: 2, retryDelay: 20, retryJitter: 10 })),
      (redlock) => Effect.promise(() => redlock.quit())
    )
    /** The errors `errorHandler` was given. */
    const handled: Array<Error> = []
    return { cluster, redlock, handled, handler: (error: Error) => void handled.push(error) }
  })

/** The test keys on every node, read once. */
const keysNow = (cluster: RedisNodes.RedisNodes) =>
  Effect.forEach(cluster.nodes, (node) => Effect.map(node.keys("test:*"), (keys) => [...keys].sort()))

/** What `Promise.using` settled with: its value, or its rejection. */
const settled = <A>(run: () => PromiseLike<A>) =>
  Effect.promise(() =>
    Promise.resolve(run()).then(
      (value) => ({ ok: true as const, value }),
      (error: unknown) => ({ ok: false as const, error })
    )
  )

describe("effect-redlock/promise disposer", () => {
  it.scopedLive("Promise.using holds the lock while the routine runs and releases it after, also when it rejects", () =>
    Effect.gen(function*() {
      const { cluster, handled, handler, redlock } = yield* setup()
      const names = [resource("disposer-a"), resource("disposer-b")]
      const seen: Array<ReadonlyArray<ReadonlyArray<string>>> = []
      const result = yield* settled(() =>
        Bluebird.using(redlock.disposer(names, 10_000, handler), async (lock: Lock) => {
          assert.deepStrictEqual(lock.resources, names)
          seen.push(await Effect.runPromise(keysNow(cluster)))
          return 42
        })
      )
      assert.deepStrictEqual(result, { ok: true, value: 42 })
      assert.deepStrictEqual(seen, [[[...names].sort(), [...names].sort(), [...names].sort()]])
      assert.deepStrictEqual(yield* keysEverywhere(cluster, "test:*"), [[], [], []])

      const boom = new Error("boom")
      const failed = yield* settled(() =>
        Bluebird.using(redlock.disposer(names[0]!, 10_000, handler), async () => {
          seen.push(await Effect.runPromise(keysNow(cluster)))
          throw boom
        })
      )
      assert.deepStrictEqual(failed, { ok: false, error: boom })
      assert.deepStrictEqual(seen[1], [[names[0]!], [names[0]!], [names[0]!]])
      assert.deepStrictEqual(yield* keysEverywhere(cluster, "test:*"), [[], [], []])
      assert.deepStrictEqual(handled, [])
    }))

  it.scopedLive("a held resource rejects with ResourceLockedError and the routine never runs; bad input with InvalidArgument", () =>
    Effect.gen(function*() {
      const { cluster, handled, handler, redlock } = yield* setup()
      const name = resource("disposer-held")
      const holder = yield* Effect.promise(() => redlock.acquire(name, 5_000))
      let ran = 0
      const routine = async () => void ran++
      const refused = yield* settled(() => Bluebird.using(redlock.disposer(name, 2_000, handler), routine))
      assert.isFalse(refused.ok)
      assert.instanceOf(!refused.ok && refused.error, ResourceLockedError)
      yield* Effect.promise(() => holder.release())

      yield* Effect.forEach(cluster.nodes, (node) => node.resetStats)
      const invalid = yield* settled(() => Bluebird.using(redlock.disposer(name, -5, handler), routine))
      assert.isFalse(invalid.ok)
      const error = !invalid.ok ? invalid.error : undefined
      assert.instanceOf(error, ExecutionError)
      assert.strictEqual((error as ExecutionError).cause._tag, "InvalidArgument")
      // An error handler that is not a function is refused when the disposer is made.
      assert.throws(() => redlock.disposer(name, 2_000, "log" as unknown as () => void), TypeError, /errorHandler must be a function/)
      const sets = yield* Effect.forEach(cluster.nodes, (node) => node.commandCount("set"))
      assert.deepStrictEqual(sets, [0, 0, 0])
      assert.strictEqual(ran, 0)
      assert.deepStrictEqual(handled, [])
    }))

  it.scopedLive("the error handler learns that the lock was gone when the routine ended", () =>
    Effect.gen(function*() {
      const { cluster, handled, handler, redlock } = yield* setup()
      const name = resource("disposer-gone")
      const result = yield* settled(() =>
        Bluebird.using(redlock.disposer(name, 10_000, handler), async () => {
          // As if it had expired (or been evicted) on every node while the routine ran.
          await Effect.runPromise(Effect.forEach(cluster.nodes, (node) => node.del(name)))
          return "late"
        })
      )
      // `using` settles after the release, and its verdict.
      assert.deepStrictEqual(result, { ok: true, value: "late" })
      assert.lengthOf(handled, 1)
      assert.instanceOf(handled[0], ExecutionError)
      const lost = (handled[0] as ExecutionError).cause as LockLost
      assert.strictEqual(lost._tag, "LockLost")
      assert.strictEqual(lost.reason, "expired")
      assert.deepStrictEqual(lost.votes.map((vote) => vote.outcome), ["denied", "denied", "denied"])
    }))

  it.scopedLive("a release that reaches no majority: unavailable when the silent nodes could have made one, else expired", () =>
    Effect.gen(function*() {
      const { cluster, handled, handler, redlock } = yield* setup({ enableOfflineQueue: false })
      // Node 2 is dead: locks are taken on nodes 0 and 1; the routine deletes the key on `gone`.
      yield* cluster.nodes[2]!.kill
      const run = (name: string, gone: ReadonlyArray<number>) =>
        settled(() =>
          Bluebird.using(redlock.disposer(name, 5_000, handler), async () => {
            await Effect.runPromise(Effect.forEach(gone, (index) => cluster.nodes[index]!.del(name)))
            return "done"
          })
        )
      // Released on node 0, gone from node 1, node 2 silent: node 2 may still have held it.
      assert.deepStrictEqual(yield* run(resource("disposer-maybe"), [1]), { ok: true, value: "done" })
      // Gone from nodes 0 and 1: a majority no longer held it, whatever node 2 says.
      assert.deepStrictEqual(yield* run(resource("disposer-gone-two"), [0, 1]), { ok: true, value: "done" })
      assert.lengthOf(handled, 2)
      const [maybe, gone] = handled.map((error) => (error as ExecutionError).cause as LockLost)
      assert.strictEqual(maybe!.reason, "unavailable")
      assert.strictEqual(gone!.reason, "expired")
      // A killed node's call fails, or times out when ioredis had not yet seen the socket close.
      const silent = (vote: { readonly outcome: string }) => vote.outcome === "error" || vote.outcome === "timeout"
      assert.deepStrictEqual(maybe!.votes.slice(0, 2).map((vote) => vote.outcome), ["granted", "denied"])
      assert.deepStrictEqual(gone!.votes.slice(0, 2).map((vote) => vote.outcome), ["denied", "denied"])
      assert.isTrue(silent(maybe!.votes[2]!) && silent(gone!.votes[2]!))
    }))

  it.scopedLive("a release that cannot run (after quit) reaches the error handler; a null handler is no handler", () =>
    Effect.gen(function*() {
      const { handled, handler, redlock } = yield* setup()
      const result = yield* settled(() =>
        Bluebird.using(redlock.disposer(resource("disposer-quit"), 2_000, handler), () => redlock.quit())
      )
      assert.isTrue(result.ok)
      assert.lengthOf(handled, 1)
      assert.instanceOf(handled[0], Error)
      assert.match(handled[0]!.message, /quit\(\) was called/)
      // node-redlock v4 took a missing handler as `null` too.
      const { redlock: other } = yield* setup()
      const quiet = yield* settled(() =>
        Bluebird.using(other.disposer(resource("disposer-null"), 2_000, null), () => other.quit())
      )
      assert.isTrue(quiet.ok)
    }))

  it.live("without bluebird installed, disposer throws a TypeError that says so", () =>
    Effect.gen(function*() {
      // A fresh process in which resolving "bluebird" fails, as where it is not installed.
      const script = `
        const Module = require("node:module")
        const resolve = Module._resolveFilename
        Module._resolveFilename = function (request, ...rest) {
          if (request === "bluebird") throw Object.assign(new Error("Cannot find module 'bluebird'"), { code: "MODULE_NOT_FOUND" })
          return resolve.call(this, request, ...rest)
        }
        import("./src/promise.ts").then(({ default: Redlock }) => {
          try { new Redlock([]).disposer("r", 1000); console.log("no error") }
          catch (error) { console.log(error.constructor.name + ": " + error.message) }
        })`
      const output = yield* Effect.promise(() =>
        new Promise<string>((resolve, reject) =>
          execFile(process.execPath, ["--import", "tsx", "-e", script], { cwd: new URL("..", import.meta.url), timeout: 20_000 }, (error, stdout) =>
            error === null ? resolve(stdout.trim()) : reject(error))
        )
      )
      assert.match(output, /^TypeError: .*disposer returns a bluebird Disposer and needs the bluebird package/)
    }))
})
