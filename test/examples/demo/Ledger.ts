/**
 * The ledger: one extra redis-server that is never faulted and that every worker writes to from
 * inside the critical section. Redis runs scripts one at a time, so the ledger puts every enter
 * and exit of every worker in one order, whatever the workers' clocks say. That is the mutual
 * exclusion check of the demo:
 *
 * - `enter` (first thing a worker does once `withLock` gave it the lock) takes the next fencing
 *   token, counts the holders already inside, and adds itself; when it finds anyone inside, the
 *   critical sections overlapped and the overlap counter goes up.
 * - `exit` (last thing before `withLock` releases the lock, also when the body is interrupted
 *   because the lock was lost) removes the worker again.
 *
 * What this proves: no two critical sections, as the ledger saw them, overlapped. A worker that
 * kept working after its lock ran out would show up as an overlap as soon as another worker got
 * the lock.
 *
 * The ledger is also the start line: workers wait for the demo's `start` before contending.
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import { Redis } from "ioredis"

export class LedgerError extends Data.TaggedError("LedgerError")<{ readonly message: string }> {}

interface Keys {
  readonly start: string
  readonly fence: string
  readonly inside: string
  readonly overlaps: string
}

const keysOf = (run: string): Keys => ({
  start: `demo:${run}:start`,
  fence: `demo:${run}:fence`,
  inside: `demo:${run}:inside`,
  overlaps: `demo:${run}:overlaps`
})

const enterScript = `
local token = redis.call('INCR', KEYS[1])
local others = redis.call('SCARD', KEYS[2])
if others > 0 then redis.call('INCR', KEYS[3]) end
redis.call('SADD', KEYS[2], ARGV[1] .. ':' .. token)
for _, key in ipairs(KEYS) do redis.call('PEXPIRE', key, 3600000) end
return {token, others}
`

/** One entry in the critical section. */
export interface Entry {
  readonly token: number
  /** Holders the ledger saw inside when this one entered. */
  readonly others: number
}

/** The ledger's totals at the end of a run. */
export interface Totals {
  readonly entries: number
  readonly overlaps: number
  /** Holders still inside (none once every worker stopped cleanly), as `worker:token`. */
  readonly inside: ReadonlyArray<string>
}

const connect = (url: string) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const redis = new Redis(url, { maxRetriesPerRequest: 1, connectTimeout: 2000 })
      redis.on("error", () => {})
      return redis
    }),
    (redis) =>
      Effect.promise(() => redis.quit()).pipe(
        Effect.timeout("1 second"),
        Effect.ignore,
        Effect.ensuring(Effect.sync(() => redis.disconnect()))
      )
  )

const call = <A>(what: string, f: () => Promise<A>) =>
  Effect.tryPromise({
    try: f,
    catch: (cause) => new LedgerError({ message: `ledger ${what} failed: ${String(cause)}` })
  })

/** The worker's side: enter and exit the critical section. */
export const make = (url: string, run: string, worker: number) =>
  Effect.gen(function*() {
    const redis = yield* connect(url)
    const keys = keysOf(run)
    return {
      /** Waits until the demo says go (every worker is connected). */
      awaitStart: call("start", () => redis.get(keys.start)).pipe(
        Effect.repeat({ until: (value) => value !== null, schedule: Schedule.spaced("20 millis") }),
        Effect.asVoid
      ),
      enter: call("enter", async (): Promise<Entry> => {
        const [token, others] = await redis.eval(
          enterScript,
          3,
          keys.fence,
          keys.inside,
          keys.overlaps,
          String(worker)
        ) as [number, number]
        return { token, others }
      }),
      exit: (entry: Entry) => call("exit", () => redis.srem(keys.inside, `${worker}:${entry.token}`))
    }
  })

/** The demo's side: let the workers go. */
export const start = (url: string, run: string): Effect.Effect<void, LedgerError> =>
  Effect.scoped(Effect.gen(function*() {
    const redis = yield* connect(url)
    yield* call("start", () => redis.set(keysOf(run).start, "go", "PX", 3_600_000))
  }))

/** The demo's side: read the totals once the workers stopped, and delete the run's keys. */
export const read = (url: string, run: string): Effect.Effect<Totals, LedgerError> =>
  Effect.scoped(Effect.gen(function*() {
    const redis = yield* connect(url)
    const keys = keysOf(run)
    const [fence, overlaps, inside] = yield* call("read", () =>
      Promise.all([redis.get(keys.fence), redis.get(keys.overlaps), redis.smembers(keys.inside)]))
    yield* call("clean-up", () => redis.del(...Object.values(keys)))
    return { entries: Number(fence ?? 0), overlaps: Number(overlaps ?? 0), inside }
  }))
