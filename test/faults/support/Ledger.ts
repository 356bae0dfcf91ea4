/**
 * The ledger: a Redis that is never faulted, with one clock (`TIME` inside Lua scripts). Holders
 * write `enter`, `act` and `exit` records to it. `enter` hands out the next fencing token; `act`
 * and `exit` carry their token and are rejected (recorded, but marked stale) when a newer token
 * has been handed out since: the write a fenced resource would refuse.
 *
 * A record is `kind|token|worker|fiber|timeMicros|remainingMs|accepted|lateMs`, where
 * An `enter` record adds `|fencingToken`: the lock's own token from effect-redlock (`-` without
 * fencing), which the sweep checks grows in the order holders entered.
 * `remainingMs` is what the holder's lock handle said was left of its validity (`expiresAt − now`)
 * when it wrote, or `-` when the holder cannot know it (the body of `withLock` has no handle), and
 * `lateMs` how long after it was due the step that wrote ran (its timer fired late: the holder's
 * event loop stalled), or `-` when unknown.
 */
import { Redis } from "ioredis"

/** Keys of one run in the ledger (its own Redis; runs of a worker pool share it). */
export const keysOf = (run: string) => ({
  fence: `${run}:fence`,
  history: `${run}:history`,
  ready: `${run}:ready`,
  go: `${run}:go`,
  results: `${run}:results`
})

export type RunKeys = ReturnType<typeof keysOf>

/** Keys of a worker pool: a job list per worker, and a counter of started workers. */
export const poolKeys = {
  started: "pool:started",
  jobs: (worker: string) => `pool:jobs:${worker}`
} as const

const now = `local t = redis.call('TIME')
local now = t[1] .. string.format('%06d', tonumber(t[2]))`

/**
 * KEYS: fence, history. ARGV: worker, fiber, remaining, the lock's own fencing token (or `-`).
 * Replies `{token, timeMicros}`.
 */
export const enterScript = `${now}
local token = redis.call('INCR', KEYS[1])
redis.call('RPUSH', KEYS[2], table.concat({'enter', token, ARGV[1], ARGV[2], now, ARGV[3], 1, '-', ARGV[4]}, '|'))
return {token, now}`

/**
 * KEYS: fence, history. ARGV: kind, token, worker, fiber, remaining, late. Replies
 * `{accepted, timeMicros}`: accepted is 0 when a newer token was handed out (fencing).
 */
export const writeScript = `${now}
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local token = tonumber(ARGV[2])
local accepted = 0
if token >= current then accepted = 1 end
redis.call('RPUSH', KEYS[2], table.concat({ARGV[1], ARGV[2], ARGV[3], ARGV[4], now, ARGV[5], accepted, ARGV[6]}, '|'))
return {accepted, now}`

/** Replies the ledger's clock in microseconds, as a string. */
export const timeScript = `${now}
return now`

/** One record of the history. */
export interface Entry {
  readonly kind: "enter" | "act" | "exit" | "interrupted"
  readonly token: number
  readonly worker: string
  readonly fiber: number
  /** Ledger time, microseconds since the epoch. */
  readonly at: number
  /** The holder's remaining validity in ms when it wrote, or `undefined` when unknown. */
  readonly remainingMs: number | undefined
  readonly accepted: boolean
  /** How late (ms) the holder's step that wrote ran after it was due, or `undefined` when unknown. */
  readonly lateMs?: number | undefined
  /** On an `enter` record, the lock's own fencing token (`Lock.fencingToken`), if it took one. */
  readonly fencingToken?: number | undefined
}

const optionalMs = (field: string | undefined) => field === undefined || field === "-" ? undefined : Number(field)

export const parseEntry = (line: string): Entry => {
  const [kind, token, worker, fiber, at, remaining, accepted, late, fencingToken] = line.split("|")
  return {
    kind: kind as Entry["kind"],
    token: Number(token),
    worker: worker ?? "?",
    fiber: Number(fiber),
    at: Number(at),
    remainingMs: optionalMs(remaining),
    accepted: accepted === "1",
    lateMs: optionalMs(late),
    fencingToken: optionalMs(fencingToken)
  }
}

/** A holder's connection to the ledger, for one run. */
export interface LedgerClient {
  readonly redis: Redis
  readonly keys: RunKeys
  enter(
    fiber: number,
    remainingMs: number | undefined,
    fencingToken: number | undefined
  ): Promise<{ readonly token: number; readonly at: number }>
  write(
    kind: "act" | "exit" | "interrupted",
    token: number,
    fiber: number,
    remainingMs: number | undefined,
    lateMs?: number
  ): Promise<{ readonly accepted: boolean; readonly at: number }>
  /** The ledger's clock, in milliseconds. */
  now(): Promise<number>
}

const msArg = (ms: number | undefined) => ms === undefined ? "-" : String(Math.round(ms * 1000) / 1000)

/** A connection to the ledger node (close it with `disconnect`). */
export const open = (port: number): Redis => {
  const redis = new Redis({ host: "127.0.0.1", port, maxRetriesPerRequest: 3 })
  redis.on("error", () => {})
  return redis
}

export const client = (redis: Redis, run: string, worker: string): LedgerClient => {
  const keys = keysOf(run)
  return {
    redis,
    keys,
    enter: (fiber, remainingMs, fencingToken) =>
      (redis.eval(
        enterScript,
        2,
        keys.fence,
        keys.history,
        worker,
        fiber,
        msArg(remainingMs),
        fencingToken ?? "-"
      ) as Promise<
        [number, string]
      >).then(([token, at]) => ({ token: Number(token), at: Number(at) })),
    write: (kind, token, fiber, remainingMs, lateMs) =>
      (redis.eval(
        writeScript,
        2,
        keys.fence,
        keys.history,
        kind,
        token,
        worker,
        fiber,
        msArg(remainingMs),
        msArg(lateMs)
      ) as Promise<[number, string]>).then(([accepted, at]) => ({ accepted: Number(accepted) === 1, at: Number(at) })),
    now: () => (redis.eval(timeScript, 0) as Promise<string>).then((micros) => Number(micros) / 1000)
  }
}
