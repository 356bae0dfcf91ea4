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
import { startNow } from "./fiber.js"
import { extensionSpec, settleExtension } from "./engine.js"
import { liveClock, type Round, type Running, startRound, startTimer } from "./fanout.js"
import type { LockState } from "./lock.js"
import { type Waiting, WaitingList } from "./waitingList.js"

/**
 * When the keeper extends a lock that expires at `expiresAt`: at the threshold, moved back onto a
 * grid every lock shares (a step of a twentieth of the threshold, 1 to 50 ms), so locks that come
 * due within one step extend together, in one command per node (see `extendInBatch`). The lock
 * extends a little early, never late.
 */
export const extensionDueAt = (expiresAt: number, thresholdMs: number): number => {
  const step = gridStepOf(thresholdMs)
  return Math.floor((expiresAt - thresholdMs) / step) * step
}

/** The step of the extension grid: a twentieth of the threshold, from 1 to 50 ms. */
const gridStepOf = (thresholdMs: number): number => Math.min(50, Math.max(1, Math.floor(thresholdMs / 20)))

/** The keepers due at one instant of the grid, and the one timer that wakes them. */
interface Alarm {
  readonly at: number
  readonly keepers: WaitingList<LockKeeper>
  readonly handle: ReturnType<typeof setTimeout>
}

/** An alarm left without keepers stays armed for later locks when it is due within this. */
const idleAlarmMs = 1_000

const alarms = new Map<number, Alarm>()

const ring = (at: number): void => {
  const alarm = alarms.get(at)
  if (alarm === undefined) return
  alarms.delete(at)
  for (const keeper of alarm.keepers.takeWhere(() => true)) keeper.step()
}

const lossOf = (lock: LockState, reason: LockLost["reason"]) =>
  new LockLost({ resources: lock.resources, reason, votes: [] })

/** A running keeper: `stop` ends it, and waits for its reaction to a loss if one is running. */
export interface Keeper {
  readonly stop: Effect.Effect<void>
}

class LockKeeper implements Keeper, Waiting<LockKeeper> {
  nextWaiting: LockKeeper | undefined = undefined
  previousWaiting: LockKeeper | undefined = undefined
  private stopped = false
  private cancelTimer: (() => void) | undefined = undefined
  private round: Running | undefined = undefined
  /** While its own round runs: the loss watch of an expiry a caller's `extend` moved earlier. */
  private cancelLossWatch: (() => void) | undefined = undefined
  private settling = false
  private lastFailure: LockLost | undefined = undefined
  /** When the last extension was confirmed. */
  private extendedAt = -Infinity
  private reaction: Fiber.RuntimeFiber<void> | undefined = undefined
  private alarm: Alarm | undefined = undefined
  constructor(
    readonly lock: LockState,
    readonly clock: Clock.Clock,
    // The starting fiber, whose services (logger, tracer, …) the reaction and the logs use: read
    // only then, since a keeper seldom reacts and copying a fiber's refs costs a visible share of
    // a short `withLock`.
    readonly fiber: Fiber.RuntimeFiber<unknown, unknown>,
    readonly onLost: Effect.Effect<void>
  ) {}

  private fork(effect: Effect.Effect<void>): Fiber.RuntimeFiber<void> {
    const { fiber } = this
    return startNow(fiber, Runtime.defaultRuntimeFlags, fiber.currentContext, effect)
  }

  start(): void {
    const { lock } = this
    const policy = lock.settings.autoExtend
    lock.autoExtending = policy !== undefined
    lock.onLoss = () => this.lost()
    lock.onExpiryLowered = () => this.replan()
    if (policy === undefined) this.wakeAt(lock.lossAt)
    else this.wakeOnGrid(extensionDueAt(lock.expiresAt, policy.thresholdMs))
  }

  private wakeAt(at: number): void {
    const now = this.clock.unsafeCurrentTimeMillis()
    // Due now: a timer would let the holder's own timers of this turn run first.
    if (at <= now) return this.step()
    this.cancelTimer = startTimer(this.clock, at - now, () => this.step())
  }

  /**
   * Wakes at an instant of the extension grid: the keepers due at one instant share one timer
   * (under the live clock), so ten thousand short `withLock`s cost a few timers, not ten thousand.
   * When its last keeper leaves, a timer due within a second stays armed, unreferenced, for the
   * next lock due at that instant: a short `withLock` costs no timer of its own.
   */
  private wakeOnGrid(at: number): void {
    if (this.clock !== liveClock) return this.wakeAt(at)
    let alarm = alarms.get(at)
    if (alarm === undefined) {
      const delay = Math.max(0, at - this.clock.unsafeCurrentTimeMillis())
      alarm = { at, keepers: new WaitingList(), handle: setTimeout(ring, delay, at) }
      alarms.set(at, alarm)
    } else if (alarm.keepers.isEmpty) {
      alarm.handle.ref()
    }
    alarm.keepers.add(this)
    this.alarm = alarm
  }

  /** Runs a step; a defect in it loses the lock rather than leaving it unwatched. */
  private guarded(step: () => void): void {
    try {
      step()
    } catch (defect) {
      this.lock.markLost(lossOf(this.lock, "unavailable"))
      this.fork(Effect.logError("effect-redlock: automatic extension failed", defect))
    }
  }

  step(): void {
    this.cancelTimer = undefined
    this.alarm = undefined
    const { lock } = this
    if (this.stopped || lock.status !== "held") return
    this.guarded(() => this.check(lock, this.clock.unsafeCurrentTimeMillis()))
  }

  private check(lock: LockState, now: number): void {
    const policy = lock.settings.autoExtend
    if (policy === undefined) {
      if (!lock.isLossDue(now)) return this.wakeAt(lock.lossAt)
      return lock.markLost(lossOf(lock, "expired"))
    }
    if (lock.isLossDue(now)) return lock.markLost(this.lastFailure ?? lossOf(lock, "unavailable"))
    const capped = lock.extensions >= policy.maxExtensions ||
      now + lock.settings.ttlMs - lock.acquiredAt > policy.maxHoldTimeMs
    if (capped) {
      this.cancelTimer = startTimer(this.clock, lock.lossAt - now, () => lock.markLost(lossOf(lock, "limit")))
      return
    }
    const extendAt = extensionDueAt(lock.expiresAt, policy.thresholdMs)
    if (extendAt > now) return this.wakeOnGrid(extendAt)
    // A threshold that is most of the ttl leaves every extension due at once: one grid step
    // between extensions keeps such a lock from sending them back to back (while that step ends
    // before the loss instant).
    const spacedUntil = this.extendedAt + gridStepOf(policy.thresholdMs)
    if (spacedUntil > now && spacedUntil < lock.lossAt) return this.wakeAt(spacedUntil)
    this.round = startRound(extensionSpec(lock, lock.settings, true), this.clock, (round) => {
      this.round = undefined
      this.cancelLossWatch?.()
      this.cancelLossWatch = undefined
      this.settling = true
      try {
        this.guarded(() => this.settled(lock, round))
      } finally {
        this.settling = false
      }
    })
  }

  private settled(lock: LockState, round: Round): void {
    const { settings } = lock
    const failure = settleExtension(lock, settings, round)
    if (failure === undefined) this.extendedAt = round.decidedAt
    if (failure === undefined || lock.status !== "held") return this.step()
    this.lastFailure = failure
    // The round gave up at the loss instant at the latest: retry soon, or declare the loss then.
    this.wakeAt(Math.min(lock.lossAt, round.decidedAt + Math.max(settings.nodeTimeoutMs, 10)))
  }

  /** The lock was lost (by the keeper or by a caller's `extend`): react once. */
  private lost(): void {
    this.halt()
    if (this.stopped) return
    this.reaction = this.fork(this.onLost)
  }

  private halt(): void {
    this.cancelTimer?.()
    this.cancelTimer = undefined
    const { alarm } = this
    if (alarm !== undefined) {
      this.alarm = undefined
      alarm.keepers.delete(this)
      if (alarm.keepers.isEmpty) {
        if (alarm.at - liveClock.unsafeCurrentTimeMillis() > idleAlarmMs) {
          clearTimeout(alarm.handle)
          alarms.delete(alarm.at)
        } else {
          alarm.handle.unref()
        }
      }
    }
    this.round?.cancel()
    this.round = undefined
    this.cancelLossWatch?.()
    this.cancelLossWatch = undefined
  }

  /**
   * `expiresAt` moved earlier (a caller's shorter `extend`): the next step is due sooner. While
   * the keeper's own round runs, whose wait was set by the old expiry, the loss is watched for at
   * the new loss instant.
   */
  private replan(): void {
    if (this.stopped || this.settling || this.lock.status !== "held") return
    if (this.round === undefined) {
      this.halt()
      return this.step()
    }
    const { lock } = this
    this.cancelLossWatch?.()
    this.cancelLossWatch = startTimer(this.clock, Math.max(0, lock.lossAt - this.clock.unsafeCurrentTimeMillis()), () => {
      this.cancelLossWatch = undefined
      if (lock.status === "held" && lock.isLossDue(this.clock.unsafeCurrentTimeMillis())) {
        lock.markLost(this.lastFailure ?? lossOf(lock, "unavailable"))
      }
    })
  }

  readonly stop: Effect.Effect<void> = Effect.suspend(() => {
    this.stopped = true
    this.halt()
    this.lock.onLoss = undefined
    this.lock.onExpiryLowered = undefined
    return this.reaction === undefined ? Effect.void : Fiber.interrupt(this.reaction)
  })
}

/**
 * Looks after a held lock in the background, from now on: extends it when automatic extension is
 * on, else watches its expiry; runs `onLost` once the lock is lost. `fiber` is the caller's, whose
 * services the reaction and the logs use.
 */
export const startKeeper = (
  lock: LockState,
  onLost: Effect.Effect<void>,
  clock: Clock.Clock,
  fiber: Fiber.RuntimeFiber<unknown, unknown>
): Keeper => {
  const keeper = new LockKeeper(lock, clock, fiber, onLost)
  keeper.start()
  return keeper
}
