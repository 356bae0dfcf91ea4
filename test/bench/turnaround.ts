/**
 * Where a lone worker's cycle goes: the client's turnaround, from a reply arriving on the socket
 * to the next command written, for effect-redlock's `lock` / `release` and for the floor, in
 * alternating turns of 50 cycles on the same nodes.
 *
 *   npm run build && npx tsx test/bench/turnaround.ts [--k 1] [--cycles 4000]
 */
import * as Effect from "effect/Effect"
import type { Redis } from "ioredis"
import { loadFloor } from "./impls.js"
import { Redlock } from "./library.js"
import * as RedisNodes from "../support/RedisNodes.js"
import { flag } from "./flags.js"

const k = Number(flag("k", "1"))
const cycles = Number(flag("cycles", "4000"))

type Event = "data" | "write"

/** Records when each client's socket receives data and is written to. */
const watch = (clients: ReadonlyArray<Redis>, events: Array<[Event, number]>) => {
  for (const client of clients) {
    const stream = client.stream as unknown as { write: (...args: Array<unknown>) => boolean }
    const write = stream.write.bind(stream)
    stream.write = (...args) => {
      events.push(["write", performance.now()])
      return write(...args)
    }
    client.stream.prependListener("data", () => events.push(["data", performance.now()]))
  }
}

/** The gaps from a data event to an immediately following write, in µs. */
const turnarounds = (events: ReadonlyArray<[Event, number]>): Array<number> => {
  const gaps: Array<number> = []
  for (let index = 0; index + 1 < events.length; index++) {
    const [kind, at] = events[index]!
    const [nextKind, nextAt] = events[index + 1]!
    if (kind === "data" && nextKind === "write") gaps.push((nextAt - at) * 1000)
  }
  return gaps.sort((a, b) => a - b)
}

const program = Effect.gen(function*() {
  const cluster = yield* RedisNodes.make(k, { args: ["--notify-keyspace-events", "Kgx"] })
  const floorClients = yield* cluster.clients()
  const lockClients = yield* cluster.clients()
  const events = { floor: [] as Array<[Event, number]>, lock: [] as Array<[Event, number]> }
  watch(floorClients, events.floor)
  watch(lockClients, events.lock)
  const floor = yield* Effect.promise(() => loadFloor(floorClients))
  const redlock = yield* Redlock.make({ clients: lockClients, ttl: 10_000, wakeUp: "keyspace" })
  let sequence = 0
  for (let turn = 0; turn < cycles / 50; turn++) {
    yield* Effect.promise(async () => {
      for (let i = 0; i < 50; i++) await floor.release(await floor.acquire(`turn:${sequence++}`))
    })
    for (let i = 0; i < 50; i++) yield* Effect.flatMap(redlock.lock(`turn:${sequence++}`), redlock.release)
  }
  const rows = Object.entries(events).map(([name, recorded]) => {
    const gaps = turnarounds(recorded)
    const at = (q: number) => gaps[Math.floor(q * (gaps.length - 1))]!.toFixed(1)
    return { implementation: name, turnarounds: gaps.length, "p50 µs": at(0.5), "p90 µs": at(0.9) }
  })
  console.log(`reply → next command, K = ${k}, ${cycles} cycles each`)
  console.table(rows)
})

Effect.runPromise(Effect.scoped(program)).then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
