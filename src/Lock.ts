/**
 * The handle of a held lock: what it covers, who owns it, how long it is guaranteed.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Predicate from "effect/Predicate"
import { startTimer } from "./internal/fanout.js"
import * as internal from "./internal/lock.js"
import { LockLost } from "./RedlockError.js"

/**
 * The type id every lock handle carries.
 *
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: typeof internal.TypeId = internal.TypeId

/**
 * The type of `TypeId`.
 *
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * A lock held on a quorum of nodes. The handle is live: `expiresAt` and `extensions` move
 * forward with every successful extension.
 *
 * @since 0.1.0
 * @category models
 */
export interface Lock {
  /** Marks lock handles (see `isLock`). */
  readonly [TypeId]: TypeId
  /** The resources as the caller named them (without the key prefix). */
  readonly resources: ReadonlyArray<string>
  /** The owner value stored in every key: 122 random bits, fresh for every attempt. */
  readonly value: string
  /** How many attempts the acquisition took. */
  readonly attempts: number
  /** The ttl the lock was taken (and is extended) with, in milliseconds. */
  readonly ttlMs: number
  /** When the winning attempt started, in epoch milliseconds from Effect's `Clock`. */
  readonly acquiredAt: number
  /**
   * Until when the lock is guaranteed, in epoch milliseconds: the start of the last successful
   * acquire or extend attempt, plus the ttl, less the clock drift allowance. It can also move
   * earlier: an extension with a shorter ttl shortens the lock on the nodes it reaches, even when
   * it failed.
   */
  readonly expiresAt: number
  /** How many times the lock was extended. */
  readonly extensions: number
  /**
   * With `fencing: true`, a number higher than that of every earlier lock of the same resources
   * (under Redlock's assumptions; see the README's "Fencing tokens"): pass it with every write,
   * and have the storage refuse a write whose token is below the highest it has seen. Undefined
   * without fencing.
   */
  readonly fencingToken: number | undefined
}

/**
 * Tells whether a value is a lock handle.
 *
 * @since 0.1.0
 * @category refinements
 */
export const isLock = (u: unknown): u is Lock => Predicate.hasProperty(u, TypeId)

const stateOf = (lock: Lock): internal.LockState => lock as internal.LockState

/**
 * How long the lock is still guaranteed (zero once it expired, was lost or was released).
 *
 * @since 0.1.0
 * @category accessors
 */
export const remaining = (lock: Lock): Effect.Effect<Duration.Duration> =>
  Effect.map(Clock.currentTimeMillis, (now) =>
    stateOf(lock).status === "held" ? Duration.millis(Math.max(0, lock.expiresAt - now)) : Duration.zero)

/**
 * Whether the lock is still guaranteed: not released, not lost, and inside its validity.
 *
 * @since 0.1.0
 * @category accessors
 */
export const isHeld = (lock: Lock): Effect.Effect<boolean> =>
  Effect.map(Clock.currentTimeMillis, (now) => stateOf(lock).status === "held" && now < lock.expiresAt)

/** Waits until the lock's loss instant, or until its expiry moves earlier (a shorter `extend`). */
const untilLossOrEarlier = (state: internal.LockState, now: number): Effect.Effect<void> =>
  Effect.clockWith((clock) =>
    Effect.async<void>((resume) => {
      const done = () => {
        stopTimer()
        unwatch()
        resume(Effect.void)
      }
      const unwatch = state.watchExpiry(done)
      const stopTimer = startTimer(clock, state.lossAt - now, done)
      return Effect.sync(() => {
        stopTimer()
        unwatch()
      })
    })
  )

/**
 * Waits until the lock is lost and fails with the `LockLost`, so work can be raced against it.
 * With automatic extension the lock's keeper decides when the lock is lost; without it, the lock
 * is lost when its validity runs out without a successful `extend`. Either way the loss comes 5 ms
 * ahead of the validity's end, so work raced against it stops before any step it scheduled for
 * the last milliseconds of the validity. Never completes for a lock that is released first.
 *
 * @example
 * ```ts
 * Effect.raceFirst(work, Lock.awaitLost(lock))
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const awaitLost = (lock: Lock): Effect.Effect<never, LockLost> => {
  const state = stateOf(lock)
  // Interruptible even where the caller is not: a race or a fork that outlives its use must end.
  if (state.autoExtending) return Effect.interruptible(state.awaitLoss())
  const watchExpiry: Effect.Effect<never> = Effect.flatMap(Clock.currentTimeMillis, (now) => {
    if (state.status === "held" && state.isLossDue(now)) {
      state.markLost(new LockLost({ resources: state.resources, reason: "expired", votes: [] }))
    }
    return state.status === "held" ? Effect.zipRight(untilLossOrEarlier(state, now), watchExpiry) : Effect.never
  })
  return Effect.interruptible(Effect.raceFirst(state.awaitLoss(), watchExpiry))
}
