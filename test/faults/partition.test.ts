/**
 * A holder cut off from every node (a client-side partition, through TCP proxies that black-hole
 * its connections) while another client reaches the nodes directly. The keys run out on the nodes;
 * the other client takes the lock as soon as they do. The holder's body must have stopped by then:
 * `withLock` promises to interrupt the body when the lock can no longer be guaranteed, and the
 * guarantee ends at `expiresAt`, one drift allowance before the earliest moment a key can expire.
 *
 * Everything runs in this process, so the two clients' events share one clock (`Date.now()`).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import { Redis } from "ioredis"
import * as Lock from "../../src/Lock.js"
import * as Redlock from "../../src/Redlock.js"
import * as RedisNodes from "../support/RedisNodes.js"
import { resource } from "../support/setup.js"
import * as Proxy from "./support/Proxy.js"

interface Timeline {
  /** When the holder's body started, wrote for the last time, and when its lock said it expired. */
  readonly entered: number
  readonly lastAct: number
  readonly expiresAt: number | undefined
  /** When the other client got the lock. */
  readonly otherEntered: number
  readonly exit: Exit.Exit<unknown, unknown>
}

/**
 * The holder takes the lock through proxies, its links go black 50 ms into the body, the body
 * writes every 2 ms until interrupted; the other client polls `tryAcquire` every 2 ms.
 */
const partitioned = (
  take: (redlock: Redlock.Redlock.Service, name: string, body: (lock?: Lock.Lock) => Effect.Effect<void>) => Effect.Effect<
    unknown,
    unknown
  >,
  options: { readonly ttlMs: number; readonly nodeTimeoutMs: number | undefined }
) =>
  Effect.gen(function*() {
    const cluster = yield* RedisNodes.make(3)
    const proxies = yield* Proxy.makeAll(cluster.nodes)
    const viaProxy = yield* Effect.forEach(proxies, (proxy) =>
      Effect.acquireRelease(
        Effect.promise(async () => {
          const redis = new Redis({ host: "127.0.0.1", port: proxy.port })
          await new Promise((ok) => redis.once("ready", ok))
          return redis
        }),
        (redis) => Effect.sync(() => redis.disconnect())
      ))
    const direct = yield* cluster.clients()
    const settings = { ttl: options.ttlMs, nodeTimeout: options.nodeTimeoutMs }
    // (nodeTimeout undefined: the library's default for the ttl)
    const holder = yield* Redlock.make({ clients: viaProxy, ...settings })
    const other = yield* Redlock.make({ clients: direct, ...settings, retry: { times: 0 } })
    const name = resource("partitioned")

    let entered = 0
    let lastAct = 0
    let expiresAt: number | undefined
    const body = (lock?: Lock.Lock) =>
      Effect.gen(function*() {
        entered = Date.now()
        expiresAt = lock?.expiresAt
        yield* Effect.fork(Effect.andThen(Effect.sleep("50 millis"), Effect.forEach(proxies, (p) => p.set(Proxy.blackHole))))
        while (true) {
          lastAct = Date.now()
          expiresAt = lock?.expiresAt ?? expiresAt
          yield* Effect.sleep("2 millis")
        }
      })
    const holderFiber = yield* Effect.fork(Effect.exit(take(holder, name, body)))
    while (entered === 0) yield* Effect.sleep("2 millis")
    let otherEntered = 0
    while (otherEntered === 0) {
      const got = yield* Effect.scoped(other.tryAcquire(name)).pipe(Effect.orElseSucceed(() => Option.none()))
      if (Option.isSome(got)) otherEntered = Date.now()
      else yield* Effect.sleep("2 millis")
      if (Date.now() - entered > options.ttlMs * 5) break
    }
    const exit = yield* Fiber.join(holderFiber)
    return { entered, lastAct, expiresAt, otherEntered, exit } satisfies Timeline
  })

const describeTimeline = (t: Timeline) =>
  `holder entered at 0, ${t.expiresAt === undefined ? "" : `expiresAt ${t.expiresAt - t.entered} ms, `}last act ${
    t.lastAct - t.entered
  } ms, other client entered ${t.otherEntered - t.entered} ms; holder exit: ${
    Exit.isFailure(t.exit) ? "failure" : "success"
  }`

describe("a holder partitioned from every node", () => {
  it.scopedLive("without automatic extension, acquire + awaitLost stops the body at expiresAt, before anyone else enters", () =>
    Effect.gen(function*() {
      const timeline = yield* partitioned(
        (redlock, name, body) =>
          Effect.scoped(
            Effect.flatMap(
              redlock.acquire(name),
              (lock) => Effect.raceFirst(body(lock), Lock.awaitLost(lock))
            )
          ),
        { ttlMs: 1_000, nodeTimeoutMs: 300 }
      )
      console.log(describeTimeline(timeline))
      assert.isTrue(timeline.otherEntered > 0, describeTimeline(timeline))
      assert.isBelow(timeline.lastAct, timeline.otherEntered, describeTimeline(timeline))
    }), 30_000)

  // Regression test for a bug found at commit 69ef5b2 (reported): with automatic extension the
  // extension fiber alone decided that the lock was lost, and only once an extend round that had
  // started before expiresAt timed out — up to one node timeout after expiresAt. The keys expire a
  // ttl after the SET reached each node (≥ expiresAt + drift), so with nodeTimeout > drift (the
  // defaults: 50 ms vs 12 ms at a 1 s ttl, 300 ms vs 62 ms at 6 s) the other client entered while
  // the body still ran: at 69ef5b2 this test saw "last act 1286 ms, other client entered 1001 ms".
  // The keepAlive change that races each extension with the current expiry fixes it.
  it.scopedLive("withLock (auto-extending) stops the body by expiresAt, before anyone else enters", () =>
    Effect.gen(function*() {
      const timeline = yield* partitioned(
        (redlock, name, body) => redlock.withLock(name)(body()),
        { ttlMs: 1_000, nodeTimeoutMs: 300 }
      )
      console.log(describeTimeline(timeline))
      assert.isTrue(timeline.otherEntered > 0, describeTimeline(timeline))
      assert.isBelow(timeline.lastAct, timeline.otherEntered, describeTimeline(timeline))
    }), 30_000)

  it.scopedLive("withLock with the defaults of a 6 s ttl (300 ms node timeout): the same, at default settings", () =>
    Effect.gen(function*() {
      const timeline = yield* partitioned(
        (redlock, name, body) => redlock.withLock(name)(body()),
        { ttlMs: 6_000, nodeTimeoutMs: undefined }
      )
      console.log(describeTimeline(timeline))
      assert.isTrue(timeline.otherEntered > 0, describeTimeline(timeline))
      assert.isBelow(timeline.lastAct, timeline.otherEntered, describeTimeline(timeline))
    }), 30_000)

  it.scopedLive("acquire with autoExtend + awaitLost stops the body by expiresAt (the same path, the handle visible)", () =>
    Effect.gen(function*() {
      const timeline = yield* partitioned(
        (redlock, name, body) =>
          Effect.scoped(
            Effect.flatMap(
              redlock.acquire(name, { autoExtend: true }),
              (lock) => Effect.raceFirst(body(lock), Lock.awaitLost(lock))
            )
          ),
        { ttlMs: 1_000, nodeTimeoutMs: 300 }
      )
      console.log(describeTimeline(timeline))
      assert.isTrue(timeline.otherEntered > 0, describeTimeline(timeline))
      assert.isDefined(timeline.expiresAt)
      assert.isBelow(timeline.lastAct, timeline.otherEntered, describeTimeline(timeline))
    }), 30_000)
})
