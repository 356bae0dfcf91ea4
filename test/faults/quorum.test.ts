/**
 * The quorum table, in the style of redsync's: for N = 1..5 nodes, every assignment of each node
 * to free / down / held by another owner, one `lock` without retries. It must succeed exactly when
 * at least floor(N/2)+1 nodes are up and free, and otherwise fail with `QuorumUnavailable` when the
 * unreachable nodes alone leave fewer than a quorum (src/internal/quorum.ts `isUnavailable`) and
 * with `LockContended` when they do not. `tryAcquire` must agree (Some / None / QuorumUnavailable),
 * and no attempt may leave its owner value on any node.
 *
 * "Down" is a client whose node refuses connections (a proxy in refuse mode; the client fails fast)
 * for the full table, and a node killed with SIGKILL (the client's calls time out) for N = 3.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import { Redis } from "ioredis"
import * as Redlock from "../../src/Redlock.js"
import type { NodeReport } from "../../src/Redlock.js"
import type { NodeOutcome } from "../../src/RedlockError.js"
import * as RedisNodes from "../support/RedisNodes.js"
import { eventually, resource } from "../support/setup.js"
import * as Proxy from "./support/Proxy.js"
import { awaitReady, client } from "./support/clients.js"

type State = "free" | "down" | "held"

const states: ReadonlyArray<State> = ["free", "down", "held"]

/** Every assignment of N nodes to states, as arrays. */
const assignments = (n: number): ReadonlyArray<ReadonlyArray<State>> =>
  Array.from({ length: 3 ** n }, (_, code) =>
    Array.from({ length: n }, (_, i) => states[Math.floor(code / 3 ** i) % 3]!))

type Outcome = "locked" | "LockContended" | "QuorumUnavailable"

const expected = (assignment: ReadonlyArray<State>): Outcome => {
  const n = assignment.length
  const quorum = Math.floor(n / 2) + 1
  const free = assignment.filter((s) => s === "free").length
  const down = assignment.filter((s) => s === "down").length
  if (free >= quorum) return "locked"
  return n - down < quorum ? "QuorumUnavailable" : "LockContended"
}

const allowedVotes: Record<State, ReadonlyArray<NodeOutcome>> = {
  free: ["granted", "pending"],
  held: ["denied", "pending"],
  down: ["error", "timeout", "pending"]
}

/** What each kind of node may answer a release of a lock taken on the free ones. */
const releaseOutcomes: Record<State, ReadonlyArray<NodeReport["outcome"]>> = {
  free: ["released", "pending"],
  held: ["not-held", "pending"],
  down: ["error", "timeout", "pending"]
}

const otherOwner = "another-owner"

interface Env {
  readonly live: ReadonlyArray<Redis>
  readonly dead: ReadonlyArray<Redis>
  readonly admin: ReadonlyArray<Redis>
}


/** Runs one row of the table and checks it; returns the outcome. */
const row = (env: Env, assignment: ReadonlyArray<State>, downIsDeadClient: boolean) =>
  Effect.scoped(Effect.gen(function*() {
    const n = assignment.length
    const name = resource(`quorum-${assignment.join("-")}`)
    const clients = assignment.map((state, i) => state === "down" && downIsDeadClient ? env.dead[i]! : env.live[i]!)
    const redlock = yield* Redlock.make({ clients, ttl: 2_000, nodeTimeout: 100, retry: { times: 0 } })
    const label = `N=${n} [${assignment.join(", ")}]`
    const hold = Effect.forEach(assignment, (state, i) =>
      state === "held"
        ? Effect.promise(() => env.admin[i]!.set(name, otherOwner, "PX", 10_000))
        : Effect.void)
    yield* hold
    const want = expected(assignment)

    const exit = yield* Effect.exit(redlock.lock(name))
    let got: Outcome
    if (Exit.isSuccess(exit)) {
      got = "locked"
      // Done once a quorum deleted the keys: the free nodes did, or their delete is not waited for.
      const report = yield* redlock.release(exit.value)
      assert.isAtLeast(report.released, Math.floor(n / 2) + 1, label)
      assert.isAtMost(report.released, assignment.filter((s) => s === "free").length, label)
      report.nodes.forEach((node, i) => {
        assert.include(releaseOutcomes[assignment[i]!], node.outcome, `${label}: node ${i} released ${node.outcome}`)
      })
    } else {
      const error = Cause.failureOption(exit.cause)
      assert.isTrue(Option.isSome(error), `${label}: ${Cause.pretty(exit.cause)}`)
      const failure = Option.getOrThrow(error)
      assert.notStrictEqual(failure._tag, "InvalidArgument", label)
      if (failure._tag === "LockContended" || failure._tag === "QuorumUnavailable") {
        got = failure._tag
        failure.votes.forEach((vote, i) => {
          assert.include(allowedVotes[assignment[i]!], vote.outcome, `${label}: node ${i} voted ${vote.outcome}`)
        })
      } else {
        got = "LockContended"
        assert.fail(`${label}: unexpected ${failure._tag}`)
      }
    }
    assert.strictEqual(got, want, label)

    // tryAcquire agrees: Some when it locks, None on contention, QuorumUnavailable otherwise.
    const tried = yield* Effect.exit(Effect.scoped(Effect.map(redlock.tryAcquire(name), Option.isSome)))
    const triedOutcome: Outcome = Exit.isSuccess(tried)
      ? tried.value ? "locked" : "LockContended"
      : Option.match(Cause.failureOption(tried.cause), {
        onNone: () => "LockContended" as const,
        onSome: (error) => error._tag === "QuorumUnavailable" ? "QuorumUnavailable" as const : "LockContended" as const
      })
    assert.strictEqual(triedOutcome, want, `${label} (tryAcquire)`)

    // Nothing of ours is left behind: each reachable node holds nothing or the other owner's value
    // (a clean-up reaches nodes that had not answered the attempt after the operation returned).
    yield* Effect.forEach(assignment, (state, i) =>
      Effect.gen(function*() {
        if (state === "down") return
        const expected = state === "held" ? otherOwner : null
        const value = yield* eventually(Effect.promise(() => env.admin[i]!.get(name)), (value) => value === expected)
        assert.strictEqual(value, state === "held" ? otherOwner : null, `${label}: node ${i} holds ${value}`)
      }))
    yield* Effect.forEach(assignment, (state, i) =>
      state === "down" && !downIsDeadClient ? Effect.void : Effect.promise(() => env.admin[i]!.del(name)))
    return { got, name }
  }))

const tally = (rows: ReadonlyArray<{ readonly assignment: ReadonlyArray<State>; readonly got: Outcome }>) => {
  const table = new Map<string, Outcome>()
  for (const { assignment, got } of rows) {
    const count = (s: State) => assignment.filter((x) => x === s).length
    table.set(`N=${assignment.length} free=${count("free")} down=${count("down")} held=${count("held")}`, got)
  }
  return [...table.entries()].map(([key, outcome]) => `${key.padEnd(28)} → ${outcome}`).join("\n")
}

describe("quorum table", () => {
  it.scopedLive("N = 1..5, every subset down (refused) or held by another owner: 363 rows", () =>
    Effect.gen(function*() {
      const cluster = yield* RedisNodes.make(5)
      const refusing = yield* Effect.forEach(cluster.nodes, (node) => Proxy.make(node, Proxy.refuse))
      const live = yield* Effect.forEach(cluster.nodes, (node) => client(node.port))
      const admin = yield* Effect.forEach(cluster.nodes, (node) => client(node.port))
      // A client whose node refuses connections fails its calls at once instead of queueing them.
      const dead = yield* Effect.forEach(refusing, (proxy) =>
        client(proxy.port, { enableOfflineQueue: false, retryStrategy: () => 1_000 }))
      yield* Effect.forEach([...live, ...admin], awaitReady)
      const env: Env = { live, dead, admin }
      const rows: Array<{ readonly assignment: ReadonlyArray<State>; readonly got: Outcome }> = []
      for (let n = 1; n <= 5; n++) {
        for (const assignment of assignments(n)) {
          rows.push({ assignment, got: (yield* row(env, assignment, true)).got })
        }
      }
      assert.strictEqual(rows.length, 3 + 9 + 27 + 81 + 243)
      console.log(tally(rows))
      // Each outcome appears for every N where it is possible.
      for (const outcome of ["locked", "LockContended", "QuorumUnavailable"] as const) {
        assert.isTrue(rows.some((r) => r.got === outcome), outcome)
      }
    }), 120_000)

  it.scopedLive("N = 3 with nodes really killed (calls time out): 27 rows", () =>
    Effect.gen(function*() {
      const cluster = yield* RedisNodes.make(3)
      const live = yield* Effect.forEach(cluster.nodes, (node) => client(node.port, { retryStrategy: () => 20 }))
      const admin = yield* Effect.forEach(cluster.nodes, (node) => client(node.port, { retryStrategy: () => 20 }))
      yield* Effect.forEach([...live, ...admin], awaitReady)
      const env: Env = { live, dead: [], admin }
      const rows: Array<{ readonly assignment: ReadonlyArray<State>; readonly got: Outcome }> = []
      for (const assignment of assignments(3)) {
        const down = cluster.nodes.filter((_, i) => assignment[i] === "down")
        yield* Effect.forEach(down, (node) => node.kill, { concurrency: "unbounded" })
        const { got, name } = yield* row(env, assignment, false)
        rows.push({ assignment, got })
        yield* Effect.forEach(down, (node) => node.restart, { concurrency: "unbounded" })
        yield* Effect.forEach([...live, ...admin], awaitReady)
        // The calls queued while the node was down (the SET, then the clean-up behind it) are
        // flushed on reconnection: no ghost lock may remain.
        yield* Effect.sleep("50 millis")
        for (const node of cluster.nodes) {
          assert.strictEqual(yield* node.get(name), null, `ghost lock on node ${node.index} after [${assignment.join(", ")}]`)
        }
      }
      console.log(tally(rows))
    }), 120_000)
})
