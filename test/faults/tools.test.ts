/**
 * The fault tools themselves: the TCP proxy's modes, the ledger's fencing scripts, and the sweep
 * on hand-made histories (each kind of violation found, clean histories left alone).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { Redis } from "ioredis"
import * as RedisNodes from "../support/RedisNodes.js"
import * as Ledger from "./support/Ledger.js"
import * as Proxy from "./support/Proxy.js"
import { sweep } from "./support/Sweep.js"
import { awaitReady, client } from "./support/clients.js"

const toolClient = (port: number) =>
  client(port, { maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => 20 })

const ready = (redis: Redis) =>
  Effect.map(awaitReady(redis), (redis) => assert.strictEqual(redis.status, "ready"))

/** PING with a deadline: the reply, the error's message, or "timeout". */
const ping = (redis: Redis, ms: number) =>
  Effect.tryPromise(() => redis.ping()).pipe(
    Effect.timeout(ms),
    Effect.catchTag("TimeoutException", () => Effect.succeed("timeout")),
    Effect.catchAll((error) => Effect.succeed(`error: ${String(error.cause ?? error)}`))
  )

describe("TCP proxy", () => {
  it.scopedLive("pass, delay, black-hole, refuse and cut, switched at runtime", () =>
    Effect.gen(function*() {
      const { nodes } = yield* RedisNodes.make(1)
      const proxy = yield* Proxy.make(nodes[0]!)
      const redis = yield* toolClient(proxy.port)
      yield* ready(redis)
      assert.strictEqual(yield* ping(redis, 1_000), "PONG")
      assert.strictEqual(proxy.connections(), 1)

      yield* proxy.set(Proxy.delay(100))
      const started = Date.now()
      assert.strictEqual(yield* ping(redis, 2_000), "PONG")
      assert.isAtLeast(Date.now() - started, 190, "100 ms each way")
      yield* proxy.set(Proxy.pass)
      assert.strictEqual(yield* ping(redis, 1_000), "PONG")

      // Black hole: the command vanishes; leaving the mode drops the poisoned connection, and the
      // client's reconnection works again.
      yield* proxy.set(Proxy.blackHole)
      assert.strictEqual(yield* ping(redis, 300), "timeout")
      assert.isAbove(proxy.stats().swallowed, 0)
      yield* proxy.set(Proxy.pass)
      yield* Effect.sleep("100 millis")
      yield* ready(redis)
      assert.strictEqual(yield* ping(redis, 1_000), "PONG")

      // Refuse: the open connection is reset, new ones are refused until the mode changes.
      yield* proxy.set(Proxy.refuse)
      yield* Effect.sleep("50 millis")
      assert.notStrictEqual(redis.status, "ready")
      assert.match(yield* ping(redis, 300), /error|timeout/)
      assert.isAbove(proxy.stats().refused, 0)
      yield* proxy.set(Proxy.pass)
      yield* ready(redis)
      assert.strictEqual(yield* ping(redis, 1_000), "PONG")

      // Cut: the open connection is destroyed; the client's next one passes.
      const accepted = proxy.stats().accepted
      yield* proxy.cut
      yield* Effect.sleep("50 millis")
      yield* ready(redis)
      assert.strictEqual(proxy.stats().accepted, accepted + 1)
      assert.strictEqual(yield* ping(redis, 1_000), "PONG")
    }), 30_000)
})

describe("ledger", () => {
  it.scopedLive("enter hands out increasing tokens; a write with an older token is recorded but refused", () =>
    Effect.gen(function*() {
      const { nodes } = yield* RedisNodes.make(1)
      const redis = yield* Effect.acquireRelease(
        Effect.sync(() => Ledger.open(nodes[0]!.port)),
        (redis) => Effect.sync(() => redis.disconnect())
      )
      const ledger = Ledger.client(redis, "run:test", "w0")
      const a = yield* Effect.promise(() => ledger.enter(0, 900, 41))
      assert.strictEqual((yield* Effect.promise(() => ledger.write("act", a.token, 0, 800))).accepted, true)
      const b = yield* Effect.promise(() => ledger.enter(1, undefined, undefined))
      assert.strictEqual(b.token, a.token + 1)
      assert.isAtLeast(b.at, a.at)
      assert.strictEqual((yield* Effect.promise(() => ledger.write("act", a.token, 0, -5))).accepted, false)
      assert.strictEqual((yield* Effect.promise(() => ledger.write("exit", b.token, 1, undefined))).accepted, true)
      const history = (yield* Effect.promise(() => redis.lrange(ledger.keys.history, 0, -1))).map(Ledger.parseEntry)
      assert.deepStrictEqual(history.map((e) => [e.kind, e.token, e.accepted, e.remainingMs, e.fencingToken]), [
        ["enter", a.token, true, 900, 41],
        ["act", a.token, true, 800, undefined],
        ["enter", b.token, true, undefined, undefined],
        ["act", a.token, false, -5, undefined],
        ["exit", b.token, true, undefined, undefined]
      ])
      const micros = Date.now() * 1000
      for (const entry of history) assert.approximately(entry.at, micros, 5_000_000, "TIME in microseconds")
    }), 30_000)
})

describe("sweep", () => {
  const ms = 1000
  const entry = (
    kind: Ledger.Entry["kind"],
    token: number,
    atMs: number,
    remainingMs: number | undefined,
    accepted = true
  ): Ledger.Entry => ({ kind, token, worker: `w${token}`, fiber: 0, at: atMs * ms, remainingMs, accepted })

  it("one section after another: clean", () => {
    const report = sweep([
      entry("enter", 1, 0, 1_000),
      entry("act", 1, 10, 990),
      entry("exit", 1, 20, 980),
      entry("enter", 2, 25, 1_000),
      entry("exit", 2, 40, undefined)
    ])
    assert.strictEqual(report.holders, 2)
    assert.deepStrictEqual(report.overlaps, [])
    assert.deepStrictEqual(report.overstays, [])
    assert.strictEqual(report.staleWrites, 0)
    assert.strictEqual(report.longestGapMs, 25)
  })

  it("fencing tokens: each holder's must be above every earlier holder's, in the order they entered", () => {
    const fenced = (token: number, atMs: number, fencingToken: number): Ledger.Entry => ({
      ...entry("enter", token, atMs, 1_000),
      fencingToken
    })
    const inOrder = sweep([fenced(1, 0, 7), entry("exit", 1, 10, 990), entry("enter", 2, 20, 1_000), fenced(3, 40, 9)])
    assert.strictEqual(inOrder.fenced, 2)
    assert.deepStrictEqual(inOrder.fenceInversions, [])
    // Holder 3 entered after holder 2 but with a lower token; holder 4's equals the highest so far.
    const inverted = sweep([fenced(1, 0, 7), fenced(2, 20, 12), fenced(3, 40, 9), fenced(4, 60, 12), fenced(5, 80, 13)])
    assert.deepStrictEqual(inverted.fenceInversions.map((inversion) => inversion.split(" ")[0]), ["#3", "#4"])
  })

  it("a second holder entering inside the first one's section and validity: overlap", () => {
    const report = sweep([
      entry("enter", 1, 0, 1_000),
      entry("enter", 2, 300, 1_000),
      entry("act", 1, 400, 600, false),
      entry("exit", 1, 500, 500, false),
      entry("exit", 2, 600, 700)
    ])
    assert.strictEqual(report.overlaps.length, 1)
    assert.strictEqual(report.overlaps[0]!.first, 1)
    assert.strictEqual(report.overlaps[0]!.second, 2)
    assert.approximately(report.overlaps[0]!.byMs, 200, 0.001)
    assert.strictEqual(report.staleWrites, 2)
  })

  it("a holder writing after its validity: overstay (and stale once someone else entered)", () => {
    const report = sweep([
      entry("enter", 1, 0, 100),
      entry("act", 1, 50, 50),
      entry("enter", 2, 150, 1_000),
      entry("act", 1, 200, -100, false),
      entry("exit", 1, 210, -110, false),
      entry("exit", 2, 300, 850)
    ])
    assert.deepStrictEqual(report.overlaps, [], "2 entered after 1's validity: not an overlap")
    assert.strictEqual(report.overstays.length, 1)
    assert.strictEqual(report.overstays[0]!.token, 1)
    assert.strictEqual(report.overstays[0]!.writes, 2)
    assert.strictEqual(report.staleWrites, 2)
  })

  it("late writes from steps due inside the validity that a stalled event loop ran late: set apart", () => {
    const late = (token: number, atMs: number, remainingMs: number, lateMs: number): Ledger.Entry => ({
      ...entry("act", token, atMs, remainingMs),
      lateMs
    })
    const report = sweep([
      entry("enter", 1, 0, 100),
      late(1, 110, -10, 13),
      entry("interrupted", 1, 111, -11),
      entry("enter", 2, 200, 100),
      late(2, 301, -1, 1),
      entry("interrupted", 2, 302, -2)
    ])
    // 1's step was due 3 ms inside its validity and ran 13 ms late; 2's step was due past it.
    assert.deepStrictEqual(report.stalledOverstays.map((overstay) => overstay.token), [1])
    assert.deepStrictEqual(report.overstays.map((overstay) => overstay.token), [2])
  })

  it("an interruption record after the validity is bookkeeping, not an overstay", () => {
    const report = sweep([
      entry("enter", 1, 0, 100),
      entry("act", 1, 50, 50),
      entry("interrupted", 1, 101, -1),
      entry("enter", 2, 115, 1_000),
      entry("exit", 2, 200, 900)
    ])
    assert.deepStrictEqual(report.overstays, [])
    assert.deepStrictEqual(report.overlaps, [])
    assert.strictEqual(report.staleInterruptions, 0)
  })

  it("unknown validity (a withLock body): the section lasts until its exit record", () => {
    const report = sweep([
      entry("enter", 1, 0, undefined),
      entry("enter", 2, 50, undefined),
      entry("exit", 1, 60, undefined, false),
      entry("exit", 2, 70, undefined)
    ])
    assert.strictEqual(report.overlaps.length, 1)
    assert.deepStrictEqual(report.overstays, [])
  })

  it("a holder that never exited counts until its validity ends", () => {
    const report = sweep([
      entry("enter", 1, 0, 500),
      entry("enter", 2, 400, 1_000),
      entry("exit", 2, 450, 900)
    ])
    assert.strictEqual(report.unfinished, 1)
    assert.strictEqual(report.overlaps.length, 1)
  })
})
