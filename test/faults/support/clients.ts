/** Plain ioredis clients for fault tests: opened in a scope, errors swallowed, closed with it. */
import * as Effect from "effect/Effect"
import { Redis, type RedisOptions } from "ioredis"

/** A client to 127.0.0.1:port, disconnected when the scope closes. */
export const client = (port: number, options: RedisOptions = {}) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const redis = new Redis({ host: "127.0.0.1", port, ...options })
      redis.on("error", () => {})
      return redis
    }),
    (redis) => Effect.sync(() => redis.disconnect())
  )

/** Waits (at most 5 s) until the client is ready, and returns it. */
export const awaitReady = (redis: Redis) =>
  Effect.gen(function*() {
    const until = Date.now() + 5_000
    while (redis.status !== "ready" && Date.now() < until) yield* Effect.sleep("5 millis")
    return redis
  })
