/**
 * Where the client's time goes in one cycle, without Redis: effect-redlock's compiled operations
 * over in-memory nodes that answer at once, beside the Effect machinery they are built from. The
 * ways of taking a lock differ here by what Effect itself charges: `Effect.scoped` and a fiber
 * each cost about what a whole `lock` + `release` does. Rounds alternate the cycles; reports the
 * median µs per cycle and its ratio to `lock` + `release`.
 *
 *   npm run build && npx tsx test/bench/overhead.ts [--k 1] [--rounds 15] [--batch 2000]
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import type * as EngineModule from "../../src/internal/engine.js"
import type * as MemoryNodeModule from "../../src/internal/memoryNode.js"
import type * as OptionsModule from "../../src/internal/options.js"
import type * as QuorumModule from "../../src/internal/quorum.js"
import type * as ServiceModule from "../../src/internal/service.js"
import type { Lock } from "../../src/Lock.js"
import { flag } from "./flags.js"
import { loadInternal } from "./library.js"

const k = Number(flag("k", "1"))
const rounds = Number(flag("rounds", "15"))
const batch = Number(flag("batch", "2000"))

const { makeService } = await loadInternal<typeof ServiceModule>("service.js")
const Options = await loadInternal<typeof OptionsModule>("options.js")
const { quorumOf } = await loadInternal<typeof QuorumModule>("quorum.js")

const MemoryNode = await loadInternal<typeof MemoryNodeModule>("memoryNode.js")
const clock = Effect.runSync(Effect.clock)
const nodes = Array.from({ length: k }, (_, index) => MemoryNode.make(`memory-${index}`, clock))
const engine: EngineModule.Engine = {
  nodes,
  quorum: quorumOf(k),
  keyPrefix: "",
  settings: Options.baseSettings({ ttl: 10_000 }),
  waker: undefined
}
const redlock = makeService(engine)

let sequence = 0
const fresh = () => `overhead:${sequence++}`

const cycles: Record<string, () => Effect.Effect<unknown, unknown>> = {
  "lock + release": () => Effect.flatMap(redlock.lock(fresh()), (lock) => redlock.release(lock)),
  "Effect.scoped(acquire)": () => Effect.scoped(redlock.acquire(fresh())),
  "Effect.scoped(lock + addFinalizer(release))": () =>
    Effect.scoped(
      Effect.flatMap(Effect.scope, (scope) =>
        Effect.flatMap(redlock.lock(fresh()), (lock: Lock) => Scope.addFinalizer(scope, redlock.release(lock))))
    ),
  "withLock(Effect.void)": () => redlock.withLock(Effect.void, fresh()),
  "withLock(Effect.yieldNow())": () => redlock.withLock(Effect.yieldNow(), fresh()),
  "Effect.scoped(Effect.void)": () => Effect.scoped(Effect.void),
  "Effect.scoped(addFinalizer(void))": () => Effect.scoped(Effect.addFinalizer(() => Effect.void)),
  "Scope.make + close": () => Effect.flatMap(Scope.make(), (scope) => Scope.close(scope, Exit.void)),
  "Effect.fork(void) + join": () => Effect.flatMap(Effect.fork(Effect.void), (fiber) => fiber.await)
}

const perCycle: Record<string, Array<number>> = {}
const names = Object.keys(cycles)
for (let round = 0; round < rounds; round++) {
  for (let turn = 0; turn < names.length; turn++) {
    const name = names[(round + turn) % names.length]!
    const cycle = cycles[name]!
    const startedAt = performance.now()
    let done = 0
    await Effect.runPromise(Effect.whileLoop({ while: () => done++ < batch, body: cycle, step: () => {} }))
    ;(perCycle[name] ??= []).push((performance.now() - startedAt) * 1000 / batch)
  }
}

const median = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!
const base = median(perCycle["lock + release"]!)
console.log(`K=${k}, ${rounds} rounds of ${batch} cycles each; median µs per cycle, ×(lock + release)`)
for (const name of names) {
  const value = median(perCycle[name]!)
  console.log(`  ${name.padEnd(46)} ${value.toFixed(2).padStart(7)} µs  ${(value / base).toFixed(2)}×`)
}
