/**
 * Automatic extension: a loop, forked into the lock's scope, that extends the lock when the
 * threshold is reached, retries while the lock is still valid, and declares the lock lost when
 * its validity runs out unconfirmed or its cap is reached.
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { LockLost } from "../RedlockError.js"
import { extend } from "./engine.js"
import type { LockState } from "./lock.js"
import type { AutoExtend } from "./options.js"

/** Sleeps until `at` (epoch ms by `Clock`), if it is in the future. */
const sleepUntil = (at: number, now: number): Effect.Effect<void> =>
  at > now ? Effect.sleep(Duration.millis(at - now)) : Effect.void

/** Keeps the lock alive until it is released (the fiber is interrupted) or lost. */
export const keepAlive = (lock: LockState, policy: AutoExtend): Effect.Effect<void> =>
  Effect.gen(function*() {
    const { settings } = lock
    const retryDelayMs = Math.max(settings.nodeTimeoutMs, 10)
    while (lock.status === "held") {
      const now = yield* Clock.currentTimeMillis
      const capped = lock.extensions >= policy.maxExtensions ||
        now + settings.ttlMs - lock.acquiredAt > policy.maxHoldTimeMs
      if (capped) {
        yield* sleepUntil(lock.expiresAt, now)
        lock.markLost(new LockLost({ resources: lock.resources, reason: "limit", votes: [] }))
        return
      }
      const extendAt = lock.expiresAt - policy.thresholdMs
      if (extendAt > now) {
        yield* sleepUntil(extendAt, now)
        continue
      }
      const result = yield* Effect.either(extend(lock, settings))
      if (Either.isRight(result) || lock.status !== "held") continue
      const after = yield* Clock.currentTimeMillis
      if (after >= lock.expiresAt) {
        const failure = result.left
        lock.markLost(
          failure._tag === "LockLost"
            ? failure
            : new LockLost({ resources: lock.resources, reason: "unavailable", votes: [] })
        )
        return
      }
      yield* sleepUntil(Math.min(lock.expiresAt, after + retryDelayMs), after)
    }
  }).pipe(Effect.catchAllDefect((defect) => {
    lock.markLost(new LockLost({ resources: lock.resources, reason: "unavailable", votes: [] }))
    return Effect.logError("effect-redlock: automatic extension failed", defect)
  }))
