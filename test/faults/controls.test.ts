/**
 * Positive controls: faults outside Redlock's assumptions, which must break mutual exclusion. A
 * checker that does not flag them proves nothing when it reports no violation elsewhere.
 *
 * Holders here take the lock with `acquire` (so each section knows its validity), hold it for
 * 600–700 ms of a 1 s ttl, and are interrupted by `Lock.awaitLost` when their validity ends; the
 * other fibers retry every ~20 ms.
 */
import { assert, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { assertFlagged } from "./support/assertions.js"
import * as Checker from "./support/Checker.js"
import * as Nemesis from "./support/Nemesis.js"

const timeout = 60_000

const longHolds: Partial<Checker.Config> = {
  roles: () => "acquire",
  autoExtend: false,
  workMs: [600, 700],
  retry: { times: 60, delayMs: 20, jitter: 0.5 },
  runMs: 3_500
}

/**
 * Longer holds for the restart controls: the restarted nodes must be back, and the waiters
 * reconnected (ioredis backs off), while the holder is still inside, even on a loaded machine.
 */
const restartHolds: Partial<Checker.Config> = { ...longHolds, ttlMs: 2_500, workMs: [1_500, 1_700], runMs: 5_000 }

const run = (config: Checker.Config) =>
  Effect.tap(Checker.runPooled(config), (report) => Effect.sync(() => console.log(Checker.summary(report))))

layer(Checker.poolLayer(3), { excludeTestServices: true, timeout: "60 seconds" })("positive controls", (it) => {
  it.effect("a majority restarted without persistence while the lock is held: overlap", () =>
    Effect.gen(function*() {
      const report = yield* run({
        ...restartHolds,
        name: "restart majority",
        nemesis: Nemesis.restartWhileHeld([0, 1], 2)
      })
      assertFlagged(report, { overlaps: true, staleWrites: true })
    }), timeout)

  it.effect("every node restarted without persistence while the lock is held: fencing tokens start over", () =>
    Effect.gen(function*() {
      const report = yield* run({
        ...restartHolds,
        fencing: true,
        name: "restart all fenced",
        // Tokens go on from 1000; a holder that entered after that holds when every node restarts.
        nemesis: Nemesis.sequence("seed, then restart all", [
          Nemesis.seedFence(1_000),
          Nemesis.restartWhileHeld([0, 1, 2], 2, 1, { afterMs: 2_500 })
        ])
      })
      // The counters went with the rest of the data: the next holder's token is below the last.
      assert.isAbove(report.sweep.fenceInversions.length, 0, Checker.summary(report))
    }), timeout)

  it.effect("the clock jumps past the key's expiry on a majority while the lock is held: overlap", () =>
    Effect.gen(function*() {
      const report = yield* run({
        ...longHolds,
        name: "clock jump majority",
        nemesis: Nemesis.clockJumpWhileHeld([1, 2], 0)
      })
      assertFlagged(report, { overlaps: true, staleWrites: true })
    }), timeout)

  it.effect("the key is evicted on a majority (volatile-ttl, small maxmemory, filler load): overlap", () =>
    Effect.gen(function*() {
      const report = yield* run({
        ...longHolds,
        name: "eviction majority",
        nemesis: Nemesis.evictWhileHeld([0, 2], 1)
      })
      assertFlagged(report, { overlaps: true, staleWrites: true })
    }), timeout)

  it.effect("a holder without extension keeps writing past its validity: overstay, late writes fenced off", () =>
    Effect.gen(function*() {
      const report = yield* run({
        name: "zombie holder",
        roles: (process, fiber) => process === 0 && fiber === 0 ? "zombie" : "acquire",
        retry: { times: 60, delayMs: 20, jitter: 0.5 },
        zombieHoldMs: 2_500,
        runMs: 3_500
      })
      assertFlagged(report, { overstays: true, staleWrites: true })
      // The zombie's own section is the one flagged: the honest holders stay inside their validity.
      const zombies = report.sweep.overstays.filter((overstay) => overstay.description.includes("(w0/0,"))
      assert.isAbove(zombies.length, 0, Checker.summary(report))
      assert.strictEqual(zombies.length, report.sweep.overstays.length, Checker.summary(report))
    }), timeout)

  it.effect("a holder whose process stalls past its ttl (blocked event loop): overstay, late write fenced off", () =>
    Effect.gen(function*() {
      const report = yield* run({
        name: "stalled holder",
        roles: (process, fiber) => process === 0 && fiber === 0 ? "stall" : "acquire",
        retry: { times: 60, delayMs: 20, jitter: 0.5 },
        stallMs: 2_500,
        runMs: 3_500
      })
      assertFlagged(report, { overstays: true, staleWrites: true })
    }), timeout)
})
