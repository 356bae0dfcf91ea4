/**
 * Automatic extension: a loop, forked into the lock's scope, that extends the lock when the
 * threshold is reached, retries while the lock is still valid, and declares the lock lost the
 * moment its validity runs out unconfirmed (even with an extension still in flight) or its cap
 * is reached.
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Runtime from "effect/Runtime"
import * as Lock from "../Lock.js"
import { LockLost } from "../RedlockError.js"
import { extend } from "./engine.js"
import { startTimer } from "./fanout.js"
import type { LockState } from "./lock.js"
import type { AutoExtend } from "./options.js"

/** Sleeps until `at` (epoch ms by `Clock`), if it is in the future. */
const sleepUntil = (at: number, now: number): Effect.Effect<void> =>
  at > now ? Effect.sleep(Duration.millis(at - now)) : Effect.void

const lossOf = (lock: LockState, reason: LockLost["reason"]) =>
  new LockLost({ resources: lock.resources, reason, votes: [] })

/** Keeps the lock alive until it is released (the fiber is interrupted) or lost. */
export const keepAlive = (lock: LockState, policy: AutoExtend): Effect.Effect<void> =>
  Effect.gen(function*() {
    const { settings } = lock
    const retryDelayMs = Math.max(settings.nodeTimeoutMs, 10)
    let lastFailure: LockLost | undefined
    while (lock.status === "held") {
      const now = yield* Clock.currentTimeMillis
      if (now >= lock.expiresAt) {
        lock.markLost(lastFailure ?? lossOf(lock, "unavailable"))
        return
      }
      const capped = lock.extensions >= policy.maxExtensions ||
        now + settings.ttlMs - lock.acquiredAt > policy.maxHoldTimeMs
      if (capped) {
        yield* sleepUntil(lock.expiresAt, now)
        lock.markLost(lossOf(lock, "limit"))
        return
      }
      const extendAt = lock.expiresAt - policy.thresholdMs
      if (extendAt > now) {
        yield* sleepUntil(extendAt, now)
        continue
      }
      // The round gives up at the current expiry: past it, the lock is not guaranteed any more.
      const result = yield* Effect.either(extend(lock, settings, true))
      if (Either.isRight(result) || lock.status !== "held") continue
      if (result.left._tag === "LockLost") lastFailure = result.left
      const after = yield* Clock.currentTimeMillis
      yield* sleepUntil(Math.min(lock.expiresAt, after + retryDelayMs), after)
    }
  }).pipe(Effect.catchAllDefect((defect) => {
    lock.markLost(lossOf(lock, "unavailable"))
    return Effect.logError("effect-redlock: automatic extension failed", defect)
  }))

/** A running keeper: `stop` ends it and waits until it has. */
export interface Keeper {
  readonly stop: Effect.Effect<void>
}

/**
 * Looks after a held lock in the background: extends it when automatic extension is on, else
 * watches its expiry; runs `onLost` once the lock is lost. No fiber exists until the first
 * extension (or the expiry) is due, so a lock released before then costs one timer.
 */
export const startKeeper = (lock: LockState, onLost: Effect.Effect<void>): Effect.Effect<Keeper> =>
  Effect.clockWith((clock) =>
    Effect.map(Effect.runtime<never>(), (runtime): Keeper => {
      const policy = lock.settings.autoExtend
      lock.autoExtending = policy !== undefined
      const watch = policy === undefined ? Effect.ignore(Lock.awaitLost(lock)) : keepAlive(lock, policy)
      const dueAt = policy === undefined ? lock.expiresAt : lock.expiresAt - policy.thresholdMs
      let fiber: Fiber.RuntimeFiber<void> | undefined
      let stopped = false
      const cancel = startTimer(clock, Math.max(0, dueAt - clock.unsafeCurrentTimeMillis()), () => {
        // The runtime may come from an uninterruptible region: the keeper itself must stay stoppable.
        if (!stopped) fiber = Runtime.runFork(runtime)(Effect.interruptible(Effect.zipRight(watch, onLost)))
      })
      return {
        stop: Effect.suspend(() => {
          stopped = true
          cancel()
          return fiber === undefined ? Effect.void : Fiber.interrupt(fiber)
        })
      }
    })
  )
