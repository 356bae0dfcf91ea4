/**
 * Scenario d of the benchmark: the cost of holding many auto-extended locks. Acquires N locks
 * with automatic extension, holds them for a window, and reports the client's CPU share, the
 * extension rounds per lock per extension interval (the target is at most one) and the extension
 * commands Redis received per second, against one command per lock per node per interval.
 *
 *   npm run build && npx tsx test/bench/held-locks.ts [--nodes 3] [--ttl-ms 3000] [--window-s 12] [--counts 1000,10000]
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Scope from "effect/Scope"
import * as Exit from "effect/Exit"
import type * as LockTypes from "../../src/Lock.js"
import type * as RedlockTypes from "../../src/Redlock.js"
import { Lock, Redlock } from "./library.js"
import * as RedisNodes from "../support/RedisNodes.js"
import { flag } from "./flags.js"


const nodeCount = Number(flag("nodes", "3"))
const ttlMs = Number(flag("ttl-ms", "3000"))
const windowS = Number(flag("window-s", "12"))
const counts = flag("counts", "1000,10000").split(",").map(Number)

/** Extension commands (EVALSHA of the extend scripts) summed over nodes. */
const evalshaCalls = (cluster: RedisNodes.RedisNodes) =>
  Effect.map(
    Effect.forEach(cluster.nodes, (node) => node.commandCalls),
    (all) => all.reduce((sum, calls) => sum + (calls["evalsha"] ?? 0), 0)
  )

/** Successful extension rounds so far, summed over the locks. */
const extensionsOf = (locks: ReadonlyArray<LockTypes.Lock>): number => locks.reduce((sum, lock) => sum + lock.extensions, 0)

const measure = (cluster: RedisNodes.RedisNodes, redlock: RedlockTypes.Redlock.Service, count: number) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const locks = yield* Effect.forEach(
      Array.from({ length: count }, (_, index) => `held:${count}:${index}`),
      (name) => Scope.extend(redlock.acquire(name, { ttl: ttlMs, autoExtend: true }), scope),
      { concurrency: 64 }
    )
    // Let the acquisition burst settle into the steady extension rhythm before measuring.
    yield* Effect.sleep(Duration.millis(ttlMs))
    yield* Effect.forEach(cluster.nodes, (node) => node.resetStats, { discard: true })
    const extensionsBefore = extensionsOf(locks)
    const cpuBefore = process.cpuUsage()
    const started = performance.now()
    yield* Effect.sleep(Duration.seconds(windowS))
    const elapsedS = (performance.now() - started) / 1000
    const cpu = process.cpuUsage(cpuBefore)
    const rounds = extensionsOf(locks) - extensionsBefore
    const calls = yield* evalshaCalls(cluster)
    const lost = (yield* Effect.forEach(locks, Lock.isHeld)).filter((held) => !held).length
    yield* Scope.close(scope, Exit.void)

    const intervalS = (ttlMs * 2) / 3 / 1000
    return {
      locks: count,
      lost,
      cpuPercentOfOneCore: Math.round(((cpu.user + cpu.system) / 1e6 / elapsedS) * 1000) / 10,
      roundsPerLockPerInterval: Math.round((rounds / count / (elapsedS / intervalS)) * 100) / 100,
      extendCommandsPerS: Math.round(calls / elapsedS),
      // One command per lock per node per interval: what extending each lock on its own costs.
      unbatchedCommandsPerS: Math.round((count * nodeCount) / intervalS)
    }
  })

const program = Effect.gen(function*() {
  const cluster = yield* RedisNodes.make(nodeCount)
  const clients = yield* cluster.clients(process.argv.includes("--pipeline") ? { enableAutoPipelining: true } : {})
  const redlock = yield* Redlock.make({ clients })
  const rows = []
  for (const count of counts) rows.push(yield* measure(cluster, redlock, count))
  console.log(`held auto-extended locks: ${nodeCount} nodes, ttl ${ttlMs} ms (extension every ~${Math.round(ttlMs * 2 / 3)} ms), window ${windowS} s`)
  console.table(rows)
  return rows
})

Effect.runPromise(Effect.scoped(program)).then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
