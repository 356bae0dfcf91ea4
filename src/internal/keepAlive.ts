/**
 * The keeper of a held lock: extends it when the threshold is reached, retries while the lock is
 * still valid, and declares it lost the moment its validity runs out unconfirmed (even with an
 * extension still in flight) or its cap is reached. Without automatic extension it only watches
 * the expiry. Plain timers and round callbacks, no fiber: ten thousand held locks are ten
 * thousand timers, and a fiber is forked only to react to a loss.
 */
import type * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Runtime from "effect/Runtime"
import { LockLost } from "../RedlockError.js"
import { extensionSpec, settleExtension } from "./engine.js"
import { type Round, type Running, startRound, startTimer } from "./fanout.js"
import type { LockState } from "./lock.js"

/**
 * When the keeper extends a lock that expires at `expiresAt`: at the threshold, moved back onto a
 * grid every lock shares (a step of a twentieth of the threshold, 1 to 50 ms), so locks that come
 * due within one step extend together, in one command per node (see `extendInBatch`). The lock
 * extends a little early, never late.
 */
export const extensionDueAt = (expiresAt: number, thresholdMs: number): number => {
  const step = Math.min(50, Math.max(1, Math.floor(thresholdMs / 20)))
  return Math.floor((expiresAt - thresholdMs) / step) * step
}

const lossOf = (lock: LockState, reason: LockLost["reason"]) =>
  new LockLost({ resources: lock.resources, reason, votes: [] })

/** A running keeper: `stop` ends it, and waits for its reaction to a loss if one is running. */
export interface Keeper {
  readonly stop: Effect.Effect<void>
}

class LockKeeper implements Keeper {
  private stopped = false
  private cancelTimer: (() => void) | undefined = undefined
  private round: Running | undefined = undefined
  private lastFailure: LockLost | undefined = undefined
  private reaction: Fiber.RuntimeFiber<void> | undefined = undefined

  constructor(
    readonly lock: LockState,
    readonly clock: Clock.Clock,
    readonly runtime: Runtime.Runtime<never>,
    readonly onLost: Effect.Effect<void>
  ) {}

  start(): void {
    const { lock } = this
    const policy = lock.settings.autoExtend
    lock.autoExtending = policy !== undefined
    lock.onLoss = () => this.lost()
    this.wakeAt(policy === undefined ? lock.expiresAt : extensionDueAt(lock.expiresAt, policy.thresholdMs))
  }

  private wakeAt(at: number): void {
    const delay = Math.max(0, at - this.clock.unsafeCurrentTimeMillis())
    this.cancelTimer = startTimer(this.clock, delay, () => this.step())
  }

  /** Runs a step; a defect in it loses the lock rather than leaving it unwatched. */
  private guarded(step: () => void): void {
    try {
      step()
    } catch (defect) {
      this.lock.markLost(lossOf(this.lock, "unavailable"))
      Runtime.runFork(this.runtime)(Effect.logError("effect-redlock: automatic extension failed", defect))
    }
  }

  private step(): void {
    this.cancelTimer = undefined
    const { lock } = this
    if (this.stopped || lock.status !== "held") return
    this.guarded(() => this.check(lock, this.clock.unsafeCurrentTimeMillis()))
  }

  private check(lock: LockState, now: number): void {
    const policy = lock.settings.autoExtend
    if (policy === undefined) {
      if (now < lock.expiresAt) return this.wakeAt(lock.expiresAt)
      return lock.markLost(lossOf(lock, "expired"))
    }
    if (now >= lock.expiresAt) return lock.markLost(this.lastFailure ?? lossOf(lock, "unavailable"))
    const capped = lock.extensions >= policy.maxExtensions ||
      now + lock.settings.ttlMs - lock.acquiredAt > policy.maxHoldTimeMs
    if (capped) {
      this.cancelTimer = startTimer(this.clock, lock.expiresAt - now, () => lock.markLost(lossOf(lock, "limit")))
      return
    }
    const extendAt = extensionDueAt(lock.expiresAt, policy.thresholdMs)
    if (extendAt > now) return this.wakeAt(extendAt)
    this.round = startRound(extensionSpec(lock, lock.settings, true), this.clock, (round) => {
      this.round = undefined
      this.guarded(() => this.settled(lock, round))
    })
  }

  private settled(lock: LockState, round: Round): void {
    const { settings } = lock
    const failure = settleExtension(lock, settings, round)
    if (failure === undefined || lock.status !== "held") return this.step()
    this.lastFailure = failure
    // The round gave up at the expiry at the latest: retry soon, or declare the loss then.
    this.wakeAt(Math.min(lock.expiresAt, round.decidedAt + Math.max(settings.nodeTimeoutMs, 10)))
  }

  /** The lock was lost (by the keeper or by a caller's `extend`): react once. */
  private lost(): void {
    this.halt()
    if (this.stopped) return
    // The runtime may come from an uninterruptible region: the reaction itself must stay stoppable.
    this.reaction = Runtime.runFork(this.runtime)(Effect.interruptible(this.onLost))
  }

  private halt(): void {
    this.cancelTimer?.()
    this.cancelTimer = undefined
    this.round?.cancel()
    this.round = undefined
  }

  readonly stop: Effect.Effect<void> = Effect.suspend(() => {
    this.stopped = true
    this.halt()
    this.lock.onLoss = undefined
    return this.reaction === undefined ? Effect.void : Fiber.interrupt(this.reaction)
  })
}

/**
 * Looks after a held lock in the background: extends it when automatic extension is on, else
 * watches its expiry; runs `onLost` once the lock is lost.
 */
export const startKeeper = (lock: LockState, onLost: Effect.Effect<void>): Effect.Effect<Keeper> =>
  Effect.clockWith((clock) =>
    Effect.map(Effect.runtime<never>(), (runtime) => {
      const keeper = new LockKeeper(lock, clock, runtime, onLost)
      keeper.start()
      return keeper
    })
  )
