/**
 * The Promise façade, used as node-redlock users would, against real nodes.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import Redlock, { ExecutionError, type Lock, LockError, ResourceLockedError, type Settings } from "../src/promise.js"
import type { ReleaseReport } from "../src/Redlock.js"
import * as RedisNodes from "./support/RedisNodes.js"
import { eventually, keysEverywhere, resource } from "./support/setup.js"
import { assertReleased } from "./support/assertions.js"

const setup = Effect.gen(function*() {
  const cluster = yield* RedisNodes.make(3)
  const clients = yield* cluster.clients()
  const redlock = yield* Effect.acquireRelease(
    Effect.sync(() => new Redlock(clients, { retryCount: 2, retryDelay: 20, retryJitter: 10 })),
    (redlock) => Effect.promise(() => redlock.quit())
  )
  return { cluster, clients, redlock }
})

const promise = <A>(f: () => Promise<A>) => Effect.promise(f)
const rejection = (f: () => Promise<unknown>) =>
  Effect.promise(() => f().then(() => undefined, (error: unknown) => error))

/** Connections of a node whose last command was SUBSCRIBE or UNSUBSCRIBE, by CLIENT LIST. */
const subscriberConnections = (node: RedisNodes.RedisNode) =>
  Effect.map(node.call("CLIENT", "LIST"), (list) =>
    String(list).split("\n").filter((line) => / cmd=(un)?subscribe /.test(line)).length)

describe("effect-redlock/promise", () => {
  it.scopedLive("closing the clients without quit() closes the wake-up connections too", () =>
    Effect.gen(function*() {
      const cluster = yield* RedisNodes.make(1)
      const [client] = yield* cluster.clients()
      const redlock = new Redlock([client!], { retryCount: 5, retryDelay: 50, retryJitter: 0 })
      const name = resource("promise-no-quit")
      const lock = yield* promise(() => redlock.acquire([name], 2_000))
      // A waiter subscribes to release announcements through its own connection.
      const waiter = redlock.acquire([name], 2_000)
      yield* eventually(subscriberConnections(cluster.nodes[0]!), (count) => count === 1)
      yield* promise(() => lock.release())
      yield* promise(() => waiter.then((next) => next.release()))
      yield* promise(() => client!.quit())
      assert.strictEqual(yield* eventually(subscriberConnections(cluster.nodes[0]!), (count) => count === 0), 0)
    }))


  it.scopedLive("v5: acquire, contention as ResourceLockedError, extend, release", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* setup
      const name = resource("promise-v5")
      const lock = yield* promise(() => redlock.acquire([name], 2_000))
      assert.deepStrictEqual(lock.resources, [name])
      assert.strictEqual(lock.attempts, 1)
      // Contention is the operation's result, not an event (node-redlock v5 emits one per node).
      // A node that times out on a stalled machine is a real failure, and not counted here.
      const events: Array<unknown> = []
      const record = (error: Error) => {
        if (!/did not answer in time/.test(error.message)) events.push(error)
      }
      redlock.on("error", record)
      redlock.on("clientError", record)
      const refused = yield* rejection(() => redlock.acquire([name], 2_000))
      yield* Effect.sleep("20 millis")
      assert.deepStrictEqual(events, [])
      assert.instanceOf(refused, ResourceLockedError)
      assert.instanceOf(refused, ExecutionError)
      assert.strictEqual((refused as ExecutionError).cause._tag, "LockContended")
      assert.isAbove((refused as ExecutionError).attempts, 2)
      const before = lock.expiration
      const extended = yield* promise(() => lock.extend(10_000))
      assert.strictEqual(extended, lock)
      assert.isAbove(lock.expiration, before + 5_000)
      assertReleased(yield* promise(() => lock.release()), 2)
      assert.deepStrictEqual(yield* keysEverywhere(cluster, "test:*"), [[], [], []])
    }))

  it.scopedLive("v2–v4: lock / unlock / extend with callbacks", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* setup
      const name = resource("promise-v4")
      const lock = yield* Effect.async<Lock, Error>((resume) => {
        redlock.lock(name, 2_000, (error, lock) => resume(error ? Effect.fail(error) : Effect.succeed(lock!)))
      })
      assert.strictEqual(lock.resource, name)
      const failed = yield* Effect.async<Error | null>((resume) => {
        redlock.lock(name, 2_000, (error) => resume(Effect.succeed(error)))
      })
      assert.instanceOf(failed, LockError)
      yield* Effect.async<void>((resume) => {
        lock.extend(3_000, (error) => resume(error ? Effect.die(error) : Effect.void))
      })
      const report = yield* Effect.async<ReleaseReport>((resume) => {
        lock.unlock((error, report) => resume(error ? Effect.die(error) : Effect.succeed(report!)))
      })
      assertReleased(report, 2)
      assert.deepStrictEqual(yield* keysEverywhere(cluster, "test:*"), [[], [], []])
    }))

  it.scopedLive("using: the lock outlives its duration while the routine runs and is released after", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* setup
      const name = resource("promise-using")
      const result = yield* promise(() =>
        redlock.using([name], 400, { automaticExtensionThreshold: 150 }, async (signal) => {
          await new Promise((resolve) => setTimeout(resolve, 1_000))
          const stolen = await redlock.acquire([name], 1_000, { retryCount: 0 }).then(() => true, () => false)
          return { aborted: signal.aborted, stolen }
        })
      )
      assert.deepStrictEqual(result, { aborted: false, stolen: false })
      assert.deepStrictEqual(yield* keysEverywhere(cluster, "test:*"), [[], [], []])
    }))

  it.scopedLive("using: a threshold under the least the Effect API takes extends at the default instead", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* setup
      const name = resource("promise-tiny-threshold")
      const result = yield* promise(() =>
        redlock.using([name], 200, { automaticExtensionThreshold: 1 }, async (signal) => {
          await new Promise((resolve) => setTimeout(resolve, 500))
          return signal.aborted
        })
      )
      assert.isFalse(result, "held through a routine longer than the duration")
      assert.deepStrictEqual(yield* keysEverywhere(cluster, "test:*"), [[], [], []])
    }))

  it.scopedLive("using: a lost lock aborts the routine's signal with the error", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* setup
      const name = resource("promise-lost")
      const outcome = yield* promise(() =>
        redlock.using([name], 400, async (signal) => {
          await new Promise((resolve) => setTimeout(resolve, 50))
          await Promise.all(cluster.nodes.map((node) => Effect.runPromise(node.del(name))))
          await new Promise((resolve) => setTimeout(resolve, 700))
          return { aborted: signal.aborted, error: signal.error }
        })
      )
      assert.isTrue(outcome.aborted)
      assert.instanceOf(outcome.error, ExecutionError)
      assert.strictEqual((outcome.error as ExecutionError).cause._tag, "LockLost")
    }))

  it.scopedLive("a warm façade takes and releases locks on the engine, as the Effect API would", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* setup
      // The first call builds the instance; the later ones run their first attempt without a fiber.
      yield* promise(() => redlock.acquire([resource("warm-up")], 1_000).then((lock) => lock.release()))
      const name = resource("warm")
      const lock = yield* promise(() => redlock.acquire([name], 2_000))
      assert.strictEqual(lock.attempts, 1)
      for (const node of cluster.nodes) assert.strictEqual(yield* node.get(name), lock.value)
      // Contended: retried as effects, counting attempts on from the first one.
      const once = yield* rejection(() => redlock.acquire([name], 2_000, { retryCount: 0 }))
      assert.instanceOf(once, ResourceLockedError)
      assert.strictEqual((once as ExecutionError).attempts, 1)
      const refused = yield* rejection(() => redlock.acquire([name], 2_000))
      assert.instanceOf(refused, ResourceLockedError)
      assert.isAtLeast((refused as ExecutionError).attempts, 3, "the first attempt and two retries")
      // Freed while a waiter retries: the waiter gets it.
      const waiting = redlock.acquire([name], 2_000, { retryCount: 50, retryDelay: 20 })
      yield* Effect.sleep("30 millis")
      assertReleased(yield* promise(() => lock.release()), 2)
      const next = yield* promise(() => waiting)
      assert.isAbove(next.attempts, 1)
      yield* promise(() => next.release())
      assert.deepStrictEqual(yield* keysEverywhere(cluster, "test:*"), [[], [], []])
      // Bad input is refused before any call.
      yield* Effect.forEach(cluster.nodes, (node) => node.resetStats, { discard: true })
      const empty = yield* rejection(() => redlock.acquire([""], 1_000))
      assert.strictEqual((empty as ExecutionError).cause._tag, "InvalidArgument")
      const zero = yield* rejection(() => redlock.acquire([name], 0))
      assert.strictEqual((zero as ExecutionError).cause._tag, "InvalidArgument")
      for (const node of cluster.nodes) assert.strictEqual(yield* node.commandCount("set"), 0)
      // After quit(), every operation rejects, as before the engine was used directly.
      const kept = yield* promise(() => redlock.acquire([resource("kept")], 2_000))
      yield* promise(() => redlock.quit())
      const afterQuit = [yield* rejection(() => kept.release()), yield* rejection(() => redlock.acquire([resource("after")], 1_000))]
      for (const error of afterQuit) {
        assert.instanceOf(error, Error)
        assert.match((error as Error).message, /quit\(\) was called/)
      }
    }))

  it.scopedLive("quit() stops an acquisition that is still retrying: it rejects, it does not retry for ever", () =>
    Effect.gen(function*() {
      const cluster = yield* RedisNodes.make(1)
      const clients = yield* cluster.clients()
      const redlock = new Redlock(clients, { retryCount: -1, retryDelay: 50, retryJitter: 0 })
      const name = resource("quit-retrying")
      yield* promise(() => redlock.acquire([name], 5_000))
      const waiting = redlock.acquire([name], 1_000).then(() => "acquired", (error: Error) => error.message)
      yield* Effect.sleep("200 millis")
      yield* promise(() => redlock.quit())
      const outcome = yield* promise(() =>
        Promise.race([waiting, new Promise<string>((resolve) => setTimeout(resolve, 3_000, "still waiting"))])
      )
      assert.match(outcome, /quit\(\) was called/)
    }))

  it.scopedLive("many operations at once raise no MaxListenersExceededWarning", () =>
    Effect.gen(function*() {
      const { redlock } = yield* setup
      const warnings: Array<string> = []
      const onWarning = (warning: Error) => warnings.push(warning.name)
      process.on("warning", onWarning)
      yield* Effect.addFinalizer(() => Effect.sync(() => process.off("warning", onWarning)))
      const name = resource("many")
      yield* promise(() => redlock.acquire([name], 2_000))
      // Twenty acquisitions retrying at once, each running as an effect.
      yield* promise(() => Promise.allSettled(Array.from({ length: 20 }, () => redlock.acquire([name], 1_000))))
      yield* Effect.sleep("50 millis")
      assert.notInclude(warnings, "MaxListenersExceededWarning")
    }))

  it.scopedLive("node-redlock v2–v4's Redlock.LockError is there for instanceof checks", () =>
    Effect.gen(function*() {
      const { redlock } = yield* setup
      const name = resource("lock-error")
      yield* promise(() => redlock.acquire([name], 2_000))
      const error = yield* rejection(() => redlock.lock(name, 1_000))
      assert.strictEqual(Redlock.LockError, LockError)
      assert.instanceOf(error, Redlock.LockError)
    }))

  it.scopedLive("await using releases the lock when the block ends, and when it throws", () =>
    Effect.gen(function*() {
      const { cluster, redlock } = yield* setup
      const name = resource("await-using")
      const { stored, value } = yield* promise(async () => {
        await using lock = await redlock.acquire([name], 5_000)
        const stored = await Promise.all(cluster.nodes.map((node) => Effect.runPromise(node.get(name))))
        return { stored, value: lock.value }
      })
      assert.deepStrictEqual(stored, [value, value, value], "held on every node inside the block")
      assert.deepStrictEqual(yield* keysEverywhere(cluster, "test:*"), [[], [], []])
      const thrown = yield* rejection(async () => {
        await using _lock = await redlock.acquire([name], 5_000)
        throw new Error("inside the block")
      })
      assert.match(String(thrown), /inside the block/)
      assert.deepStrictEqual(yield* keysEverywhere(cluster, "test:*"), [[], [], []])
      // A lock released inside the block, or still being released when it ends, is not released
      // twice, and disposal does not reject.
      yield* Effect.forEach(cluster.nodes, (node) => node.resetStats, { discard: true })
      yield* promise(async () => {
        await using lock = await redlock.acquire([name], 5_000)
        assertReleased(await lock.release(), 2)
      })
      yield* promise(async () => {
        await using lock = await redlock.acquire([name], 5_000)
        void lock.release()
      })
      // The last deletes may land after the release was done (on a quorum).
      yield* Effect.sleep("50 millis")
      for (const node of cluster.nodes) {
        assert.strictEqual(yield* eventually(node.commandCount("evalsha"), (count) => count >= 2), 2, "one delete per lock")
      }
      // Free again: acquired at the first attempt. Disposed after quit(): no rejection either.
      yield* promise(async () => {
        await using _lock = await redlock.acquire([name], 5_000, { retryCount: 0 })
        await redlock.quit()
      })
    }))

  it.scopedLive("fencing: tokens grow with each lock of a resource; none without the setting", () =>
    Effect.gen(function*() {
      const { clients, redlock } = yield* setup
      const fenced = new Redlock(clients, { fencing: true })
      yield* Effect.addFinalizer(() => Effect.promise(() => fenced.quit()))
      const name = resource("promise-fencing")
      const plain = yield* promise(() => redlock.acquire([name], 2_000))
      assert.isUndefined(plain.fencingToken)
      yield* promise(() => plain.release())
      const tokens: Array<number | undefined> = []
      for (let index = 0; index < 3; index++) {
        const lock = yield* promise(() => fenced.acquire([name], 2_000))
        tokens.push(lock.fencingToken)
        yield* promise(() => lock.release())
      }
      // Per call, as node-redlock settings go.
      const perCall = yield* promise(() => redlock.acquire([name], 2_000, { fencing: true }))
      tokens.push(perCall.fencingToken)
      yield* promise(() => perCall.release())
      assert.deepStrictEqual(tokens, [1, 2, 3, 4])
      // using takes no token (its routine could not read it): the counter stays where it was.
      yield* promise(() => fenced.using([name], 2_000, () => Promise.resolve()))
      const after = yield* promise(() => fenced.acquire([name], 2_000))
      assert.strictEqual(after.fencingToken, 5)
      yield* promise(() => after.release())
      // node-redlock v5's five settings still make a whole Settings.
      const v5: Settings = { driftFactor: 0.01, retryCount: 1, retryDelay: 10, retryJitter: 0, automaticExtensionThreshold: 100 }
      const plainV5 = yield* promise(() => redlock.acquire([name], 2_000, v5))
      assert.isUndefined(plainV5.fencingToken)
      yield* promise(() => plainV5.release())
    }))

  it.scopedLive("node failures are emitted as clientError, and as error only when someone listens", () =>
    Effect.gen(function*() {
      const cluster = yield* RedisNodes.make(3)
      const clients = yield* cluster.clients({ enableOfflineQueue: false })
      const redlock = new Redlock(clients, { retryCount: 0 })
      yield* Effect.addFinalizer(() => Effect.promise(() => redlock.quit()))
      const failing = cluster.nodes[2]!
      const label = `127.0.0.1:${failing.port}`
      // Only the failing node's events: on a slow machine a healthy node may time out too.
      const clientErrors: Array<[Error, string]> = []
      redlock.on("clientError", (error: Error, node: string) => {
        if (node === label) clientErrors.push([error, node])
      })
      // A node that does not answer: the acquire decides on the other two, and so does the
      // release, which still watches the silent node: its timeout is emitted all the same.
      yield* failing.pause
      const lock = yield* promise(() => redlock.acquire([resource("events-pause")], 5_000))
      const report = yield* promise(() => lock.release())
      assert.strictEqual(report.nodes[2]!.outcome, "pending")
      yield* eventually(Effect.sync(() => clientErrors.length), (count) => count === 1)
      yield* failing.resume
      assert.strictEqual(clientErrors[0]![1], label)
      assert.match(clientErrors[0]![0].message, /did not answer in time/)
      // A node that is gone: its calls fail at once. Nobody listens to `error`: nothing crashes.
      yield* failing.kill
      yield* eventually(Effect.sync(() => clients[2]!.status), (status) => status !== "ready")
      const second = yield* promise(() => redlock.acquire([resource("events-kill")], 5_000))
      yield* promise(() => second.release())
      yield* eventually(Effect.sync(() => clientErrors.length), (count) => count === 3)
      assert.deepStrictEqual(clientErrors.slice(1).map(([, node]) => node), [label, label])
      assert.isTrue(clientErrors.slice(1).every(([error]) => error instanceof Error && !/in time/.test(error.message)))
      // With an `error` listener, node-redlock v5's event too.
      const errors: Array<string> = []
      redlock.on("error", (_error: Error, node: string) => {
        if (node === label) errors.push(node)
      })
      const third = yield* promise(() => redlock.acquire([resource("events-error")], 5_000))
      yield* promise(() => third.release())
      assert.deepStrictEqual(yield* eventually(Effect.sync(() => errors), (nodes) => nodes.length === 2), [label, label])
      assert.lengthOf(clientErrors, 5)
    }))

  it.scopedLive("nothing is emitted after quit(), even for a release that times out after it", () =>
    Effect.gen(function*() {
      const cluster = yield* RedisNodes.make(3)
      const clients = yield* cluster.clients()
      const redlock = new Redlock(clients, { retryCount: 0 })
      const events: Array<string> = []
      redlock.on("clientError", (_error: Error, node: string) => events.push(node))
      const silent = cluster.nodes[2]!
      yield* silent.pause
      const name = resource("events-after-quit")
      const lock = yield* promise(() => redlock.acquire([name], 2_000))
      // Node 1 lost the key: the release waits for the silent node (100 ms node timeout); quit()
      // comes first.
      yield* cluster.nodes[1]!.del(name)
      const released = lock.release()
      const quitting = redlock.quit()
      yield* promise(() => released)
      yield* Effect.sleep("50 millis")
      yield* silent.resume
      yield* promise(() => quitting)
      assert.deepStrictEqual(events, [])
    }))

  it.scopedLive("bad input rejects with an ExecutionError whose cause is InvalidArgument", () =>
    Effect.gen(function*() {
      const { clients, cluster, redlock } = yield* setup
      const zero = yield* rejection(() => redlock.acquire(["x"], 0))
      assert.strictEqual((zero as ExecutionError).cause._tag, "InvalidArgument")
      yield* Effect.forEach(cluster.nodes, (node) => node.resetStats, { discard: true })
      const fencing = yield* rejection(() => redlock.acquire(["x"], 1_000, { fencing: "yes" as unknown as boolean }))
      assert.strictEqual((fencing as ExecutionError).cause._tag, "InvalidArgument")
      for (const node of cluster.nodes) {
        assert.strictEqual((yield* node.commandCount("set")) + (yield* node.commandCount("evalsha")), 0, "no call")
      }
      const twice = new Redlock([clients[0]!, clients[0]!])
      const error = yield* rejection(() => twice.acquire(["x"], 1_000))
      assert.strictEqual((error as ExecutionError).cause._tag, "InvalidArgument")
    }))
})
