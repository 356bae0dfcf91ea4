/**
 * effect-redlock against the raw-ioredis floor, alternating in short turns: on a shared machine
 * whose speed drifts from second to second, turns of a few milliseconds (scenario a) or one second
 * (scenario b) put both through the same conditions more closely than `npm run bench`'s windows
 * (50 ms slices in a, 400 ms in b). Reports medians and their ratios.
 *
 *   npm run build && npx tsx test/bench/pairwise.ts [--k 1,3,5] [--seconds 8] [--windows 7] [--variant lock]
 *
 * --variant: lock (lock + release, the default), acquire (Effect.scoped(acquire)), withLock
 * (withLock of an empty body), or floor-scoped: not effect-redlock but the yardstick for acquire,
 * the floor's own commands as the idiomatic Effect scoped resource
 * (`Effect.scoped(Effect.acquireRelease(acquire, release))`, one `Effect.async` each).
 *
 * a: one worker, acquire + release of a fresh resource, turns of 20 cycles: p50 and p90 latency.
 * b: 64 workers, each on its own resources, 1 s turns: cycles/s and client CPU µs per cycle.
 */
import * as Effect from "effect/Effect"
import { loadFloor } from "./impls.js"
import { Redlock } from "./library.js"
import * as RedisNodes from "../support/RedisNodes.js"
import { fromPromise } from "./effect.js"
import { flag } from "./flags.js"

const ks = flag("k", "1,3,5").split(",").map(Number)
const seconds = Number(flag("seconds", "8"))
const windows = Number(flag("windows", "7"))
const workers = 64
const variant = flag("variant", "lock")
if (!["lock", "acquire", "withLock", "floor-scoped"].includes(variant)) {
  throw new Error(`--variant must be lock, acquire, withLock or floor-scoped, got ${variant}`)
}

const quantile = (values: ReadonlyArray<number>, q: number): number => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(q * (sorted.length - 1))]!
}

const measure = (k: number) =>
  Effect.gen(function*() {
    const cluster = yield* RedisNodes.make(k, { args: ["--notify-keyspace-events", "Kgx"] })
    const floorClients = yield* cluster.clients()
    const floor = yield* Effect.promise(() => loadFloor(floorClients))
    const clients = yield* cluster.clients()
    const redlock = yield* Redlock.make({ clients, ttl: 10_000, wakeUp: "keyspace" })
    // The yardstick runs the floor's code over the clients effect-redlock would use.
    const scopedFloor = variant === "floor-scoped" ? yield* Effect.promise(() => loadFloor(clients)) : floor
    let sequence = 0
    const floorCycle = async (worker: number) => {
      const handle = await floor.acquire(`pair:${worker}:${sequence++}`)
      await floor.release(handle)
    }
    const lockCycle = (worker: number): Effect.Effect<unknown, unknown> => {
      const resource = `pair:${worker}:${sequence++}`
      switch (variant) {
        case "acquire":
          return Effect.scoped(redlock.acquire(resource))
        case "withLock":
          return redlock.withLock(Effect.void, resource)
        case "floor-scoped":
          return Effect.scoped(
            Effect.acquireRelease(fromPromise(() => scopedFloor.acquire(resource)), (handle) => Effect.orDie(fromPromise(() => scopedFloor.release(handle))))
          )
        default:
          return Effect.flatMap(redlock.lock(resource), (lock) => redlock.release(lock))
      }
    }

    // a: alternating turns of 20 cycles.
    const latency = { floor: [] as Array<number>, lock: [] as Array<number> }
    const end = Date.now() + seconds * 1000
    while (Date.now() < end) {
      yield* Effect.promise(async () => {
        for (let i = 0; i < 20; i++) {
          const started = performance.now()
          await floorCycle(0)
          latency.floor.push(performance.now() - started)
        }
      })
      for (let i = 0; i < 20; i++) {
        const started = performance.now()
        yield* lockCycle(0)
        latency.lock.push(performance.now() - started)
      }
    }

    // b: alternating 1 s turns of 64 workers; the first pair warms up.
    const rate = { floor: [] as Array<number>, lock: [] as Array<number> }
    const cpu = { floor: [] as Array<number>, lock: [] as Array<number> }
    for (let window = 0; window <= windows; window++) {
      for (const name of ["floor", "lock"] as const) {
        const until = Date.now() + 1000
        let cycles = 0
        const cpuBefore = process.cpuUsage()
        const started = performance.now()
        if (name === "floor") {
          yield* Effect.promise(() =>
            Promise.all(Array.from({ length: workers }, async (_, worker) => {
              for (; Date.now() < until; cycles++) await floorCycle(worker)
            }))
          )
        } else {
          yield* Effect.forEach(
            Array.from({ length: workers }, (_, worker) => worker),
            (worker) => Effect.whileLoop({ while: () => Date.now() < until, body: () => lockCycle(worker), step: () => cycles++ }),
            { concurrency: "unbounded", discard: true }
          )
        }
        const used = process.cpuUsage(cpuBefore)
        if (window === 0) continue
        rate[name].push(cycles / ((performance.now() - started) / 1000))
        cpu[name].push((used.user + used.system) / cycles)
      }
    }
    const p50 = { floor: quantile(latency.floor, 0.5) * 1000, lock: quantile(latency.lock, 0.5) * 1000 }
    const p90 = { floor: quantile(latency.floor, 0.9) * 1000, lock: quantile(latency.lock, 0.9) * 1000 }
    const cycles = { floor: quantile(rate.floor, 0.5), lock: quantile(rate.lock, 0.5) }
    const cpuPerCycle = { floor: quantile(cpu.floor, 0.5), lock: quantile(cpu.lock, 0.5) }
    return {
      K: k,
      [`a p50 µs floor / ${variant}`]: `${p50.floor.toFixed(0)} / ${p50.lock.toFixed(0)}`,
      [`a p50 ${variant} ×floor`]: (p50.lock / p50.floor).toFixed(2),
      [`a p90 ${variant} ×floor`]: (p90.lock / p90.floor).toFixed(2),
      [`b cycles/s floor / ${variant}`]: `${cycles.floor.toFixed(0)} / ${cycles.lock.toFixed(0)}`,
      [`b cycles/s ${variant} ×floor`]: (cycles.lock / cycles.floor).toFixed(2),
      [`b cpu µs/cycle floor / ${variant}`]: `${cpuPerCycle.floor.toFixed(1)} / ${cpuPerCycle.lock.toFixed(1)}`
    }
  })

const program = Effect.gen(function*() {
  const rows = []
  for (const k of ks) rows.push(yield* Effect.scoped(measure(k)))
  console.log(`effect-redlock ${variant} against the floor, alternating turns (a: ${seconds} s; b: ${windows} × 1 s each)`)
  console.table(rows)
})

Effect.runPromise(program).then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
