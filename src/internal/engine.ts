/**
 * The Redlock algorithm over a set of nodes: attempts, retries, extend and release. Every public
 * operation of the `Redlock` service is built from these.
 */
import { randomUUID } from "node:crypto"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { constVoid, identity } from "effect/Function"
import * as Option from "effect/Option"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as ScheduleIntervals from "effect/ScheduleIntervals"
import type { NodeReport, ReleaseReport } from "../Redlock.js"
import { InvalidArgument, LockContended, LockLost, NodeVote, QuorumUnavailable } from "../RedlockError.js"
import { type Round, type RoundSpec, type Running, runRound, startRound } from "./fanout.js"
import { LockState } from "./lock.js"
import * as metrics from "./metrics.js"
import type { LockNode } from "./node.js"
import type { Settings } from "./options.js"
import type { Listener, Waker } from "./waker.js"
import { isUnavailable, isUsable, validityOf } from "./quorum.js"

/** A Redlock instance's nodes and defaults. */
export interface Engine {
  readonly nodes: ReadonlyArray<LockNode>
  readonly quorum: number
  readonly keyPrefix: string
  readonly settings: Settings
  /** Release announcements for waiters; without it, waiters only follow the retry schedule. */
  readonly waker: Waker | undefined
}

/** What to lock: the caller's names, the keys they map to and, with fencing, their counters' keys. */
export interface Target {
  readonly resources: ReadonlyArray<string>
  readonly keys: ReadonlyArray<string>
  readonly fenceKeys?: ReadonlyArray<string> | undefined
}

/** A failed attempt, before it becomes an error. */
export interface Failure {
  readonly _tag: "Failure"
  readonly unavailable: boolean
  readonly round: Round
}

const isGranted = (reply: number): boolean => reply > 0

const votesOf = (engine: Engine, round: Round): ReadonlyArray<NodeVote> =>
  round.outcomes.map((outcome, index) => {
    const error = round.errors[index]
    const node = engine.nodes[index]!.label
    return new NodeVote(error === undefined ? { node, outcome } : { node, outcome, error })
  })

/**
 * A compare-and-delete on every node, or on those that `skip` spares: a lock's release
 * (`isRelease`), or the clean-up of an attempt's value.
 */
const releaseSpec = (
  engine: Engine,
  keys: ReadonlyArray<string>,
  value: string,
  timeoutMs: number,
  settleAfter: number,
  isRelease: boolean,
  skip?: (index: number) => boolean
): RoundSpec => ({
  nodes: engine.nodes,
  call: skip === undefined
    ? (node) => node.release(keys, value)
    : (node, index) => skip(index) ? Promise.resolve(0) : node.release(keys, value),
  isGranted,
  quorum: engine.quorum,
  timeoutMs,
  settleAfter,
  isRelease
})

/**
 * Deletes a failed attempt's value. Nodes that refused it never stored it and are skipped; the
 * round waits only for the nodes that answered the attempt.
 */
const cleanUpSpec = (engine: Engine, keys: ReadonlyArray<string>, value: string, timeoutMs: number, round: Round) => {
  let answered = 0
  for (const outcome of round.outcomes) if (outcome !== "pending" && outcome !== "timeout") answered++
  return releaseSpec(engine, keys, value, timeoutMs, answered, false, (index) => round.outcomes[index] === "denied")
}

/**
 * One attempt with a fresh owner value, as one `Effect.async` that resumes with `onWon(lock)` or
 * `onFailed(failure)`. When it fails, or the caller is interrupted while it runs, the value is
 * deleted from every node, including those that did not answer: a SET that timed out can still
 * land later, and the delete travels behind it on the same connection, so it cannot overtake it.
 * A failed attempt waits only for the deletes of the nodes that answered.
 */
const attempt = <A, E>(
  engine: Engine,
  target: Target,
  settings: Settings,
  attempts: number,
  requestedAt: number | undefined,
  clock: Clock.Clock,
  onWon: (lock: LockState) => Effect.Effect<A, E>,
  onFailed: (failure: Failure) => Effect.Effect<A, E>
): Effect.Effect<A, E> => {
  const running = new Attempt(engine, target, settings, attempts, requestedAt, clock, onWon, onFailed)
  // Not `Effect.async` with a canceler: Effect wraps that in `onInterrupt`, whose masks, exits and
  // extra steps cost several times the attempt's own work. One failure handler outside the
  // interruptible region does the same job.
  return Effect.uninterruptibleMask((restore) =>
    Effect.catchAllCause(
      restore(Effect.async<A, E>((resume) => running.start(resume))),
      (cause) => stopAttempt(running, cause)
    )
  )
}

/**
 * After an interruption: stops waiting and, unless a clean-up already runs (or the attempt had
 * failed and moved on), deletes the value everywhere, since a lock won meanwhile never reached
 * the caller.
 */
const stopAttempt = <R, E>(running: Attempt<R>, cause: Cause.Cause<E>): Effect.Effect<never, E> => {
  if (!Cause.isInterrupted(cause) || !running.stop()) return Effect.failCause(cause)
  running.won?.abandon()
  const { engine, target, value } = running
  const cleanUp = runRound(releaseSpec(engine, target.keys, value, running.settings.nodeTimeoutMs, engine.nodes.length, false))
  return Effect.zipRight(cleanUp, Effect.failCause(cause))
}

/**
 * The state of one attempt, shared by its rounds and whoever waits for it: `start` hands the
 * result (`onWon(lock)` or `onFailed(failure)`) to one callback, an `Effect.async` resume or a
 * promise's.
 */
class Attempt<R> {
  readonly value = randomUUID()
  /** The lock, once won: abandoned if the caller was interrupted before it resumed. */
  won: LockState | undefined = undefined
  private round: Running | undefined = undefined
  private cleaningUp = false
  private resume: ((result: R) => void) | undefined = undefined

  constructor(
    readonly engine: Engine,
    readonly target: Target,
    readonly settings: Settings,
    readonly attempts: number,
    /** When the acquisition's first attempt started (this one's start when undefined). */
    readonly requestedAt: number | undefined,
    readonly clock: Clock.Clock,
    readonly onWon: (lock: LockState) => R,
    readonly onFailed: (failure: Failure) => R
  ) {}

  start(resume: (result: R) => void): void {
    const { engine, settings, target, value } = this
    const { keys } = target
    const { ttlMs } = settings
    this.resume = resume
    metrics.attemptStarted()
    const { fenceKeys } = target
    this.round = startRound({
      nodes: engine.nodes,
      call: fenceKeys === undefined
        ? (node) => node.acquire(keys, value, ttlMs)
        : (node) => node.acquireFenced(keys, fenceKeys, value, ttlMs),
      isGranted,
      quorum: engine.quorum,
      timeoutMs: settings.nodeTimeoutMs
    }, this.clock, (round) => this.decided(round))
  }

  private decided(round: Round): void {
    const { engine, settings } = this
    const won = round.tally.granted >= engine.quorum
    if (won && isUsable(validityOf(settings.ttlMs, settings.driftMs, round.startedAt, round.decidedAt))) {
      if (this.target.fenceKeys === undefined) return this.win(round, round.decidedAt, undefined)
      return this.fence(round, this.target.fenceKeys)
    }
    const unavailable = won || isUnavailable(round.tally.failed, engine.nodes.length, engine.quorum)
    this.fail(round, round, unavailable)
  }

  /**
   * The token is the highest counter a granting node replied. It is the lock's once a quorum of
   * nodes holds a counter at least that high, set while they held the lock's keys: any later lock
   * of these resources increments at least one of them (its quorum meets this one) after the keys
   * are gone, so its token is higher. When fewer granting nodes replied the token itself, a round
   * raises the other nodes' counters before the lock is handed over, inside its validity.
   */
  private fence(round: Round, fenceKeys: ReadonlyArray<string>): void {
    const { engine, settings, target, value } = this
    let token = 0
    for (let index = 0; index < round.replies.length; index++) {
      if (round.outcomes[index] === "granted") token = Math.max(token, round.replies[index]!)
    }
    let agreeing = 0
    for (let index = 0; index < round.replies.length; index++) {
      if (round.outcomes[index] === "granted" && round.replies[index] === token) agreeing++
    }
    if (agreeing >= engine.quorum) return this.win(round, round.decidedAt, token)
    this.round = startRound({
      nodes: engine.nodes,
      // Nodes that had not answered yet get the raise too: it runs after their SET, on the same
      // connection, and finds the keys ours if the SET took them.
      call: (node, index) =>
        round.outcomes[index] === "denied"
          ? Promise.resolve(0)
          : round.outcomes[index] === "granted" && round.replies[index] === token
          ? Promise.resolve(1)
          : node.raiseFence(target.keys, fenceKeys, value, token),
      isGranted: (reply) => reply === 1,
      quorum: engine.quorum,
      timeoutMs: settings.nodeTimeoutMs
    }, this.clock, (raised) => {
      const confirmed = raised.tally.granted >= engine.quorum &&
        isUsable(validityOf(settings.ttlMs, settings.driftMs, round.startedAt, raised.decidedAt))
      // Not confirmed: no token can be promised, and the keys set by the attempt are deleted.
      if (confirmed) this.win(round, raised.decidedAt, token)
      else this.fail(round, raised, true)
    })
  }

  /** Hands over the lock won by `round` (and confirmed at `decidedAt`). */
  private win(round: Round, decidedAt: number, fencingToken: number | undefined): void {
    const { engine, settings, target } = this
    const lock = new LockState(
      engine,
      target.resources,
      target.keys,
      this.value,
      this.attempts,
      settings,
      round.startedAt,
      round.startedAt + settings.ttlMs - settings.driftMs
    )
    lock.fencingToken = fencingToken
    this.won = lock
    metrics.lockAcquired(decidedAt - (this.requestedAt ?? round.startedAt))
    this.finish(this.onWon(lock))
  }

  /**
   * Deletes the attempt's value where `attempted` did not see it refused, then fails with
   * `reported`'s votes.
   */
  private fail(attempted: Round, reported: Round, unavailable: boolean): void {
    const { engine, settings, target } = this
    this.cleaningUp = true
    const cleanUp = startRound(
      cleanUpSpec(engine, target.keys, this.value, settings.nodeTimeoutMs, attempted),
      this.clock,
      () => this.finish(this.onFailed({ _tag: "Failure", unavailable, round: reported }))
    )
    // A clean-up that waits for no node has finished already.
    if (this.resume !== undefined) this.round = cleanUp
  }

  /**
   * Resumes the caller, and lets go of the round and the callback first: an attempt in flight
   * when the young generation is collected moves to the old one, and what it still pointed to
   * would be kept through the next collections too (measured: three times the GC time per cycle).
   */
  private finish(result: R): void {
    const resume = this.resume!
    this.resume = undefined
    this.round = undefined
    resume(result)
  }

  /** Stops waiting; whether the value must still be deleted (no clean-up runs yet). */
  stop(): boolean {
    if (this.cleaningUp) return false
    this.round?.cancel()
    return true
  }
}

/** One attempt whose result is the lock or the failure. */
const attemptOnce = (
  engine: Engine,
  target: Target,
  settings: Settings,
  progress: Progress,
  clock: Clock.Clock
) =>
  attempt<LockState | Failure, never>(
    engine,
    target,
    settings,
    ++progress.attempts,
    progress.requestedAt,
    clock,
    Effect.succeed,
    Effect.succeed
  )

/** A retrying acquisition's count of attempts, its last failure and when it began. */
interface Progress {
  attempts: number
  failure: Failure
  readonly requestedAt: number
}

const errorOf = (engine: Engine, target: Target, failure: Failure, attempts: number) =>
  failure.unavailable
    ? new QuorumUnavailable({
      resources: target.resources,
      attempts,
      quorum: engine.quorum,
      votes: votesOf(engine, failure.round)
    })
    : new LockContended({ resources: target.resources, attempts, votes: votesOf(engine, failure.round) })

/**
 * Waits until `startAt` (epoch ms), trying early each time a release is announced. Early tries
 * do not consume the schedule: it only says how long to wait at most.
 */
const waitForTurn = (
  engine: Engine,
  target: Target,
  settings: Settings,
  clock: Clock.Clock,
  listener: Listener | undefined,
  startAt: number,
  progress: Progress
): Effect.Effect<LockState | undefined> =>
  Effect.gen(function*() {
    let now = yield* Clock.currentTimeMillis
    while (startAt > now) {
      if (listener === undefined) {
        yield* Effect.sleep(Duration.millis(startAt - now))
        return undefined
      }
      if (!(yield* listener.wait(startAt - now))) return undefined
      const result = yield* attemptOnce(engine, target, settings, progress, clock)
      if (result instanceof LockState) return result
      progress.failure = result
      now = yield* Clock.currentTimeMillis
    }
    return undefined
  })

/**
 * Retries after a failed first attempt, following the schedule, until success, the end or the
 * deadline. With a waker, the waiter subscribes to release announcements first and, unless other
 * waiters of this instance were already listening, tries once more right after, so a release
 * between the first attempt and the subscription is not missed.
 */
const retry = (
  engine: Engine,
  target: Target,
  settings: Settings,
  clock: Clock.Clock,
  first: Failure,
  attempts: number
): Effect.Effect<LockState, LockContended | QuorumUnavailable> =>
  Effect.scoped(Effect.gen(function*() {
    const schedule = settings.retry
    const deadlineAt = settings.deadlineMs === undefined ? Infinity : first.round.startedAt + settings.deadlineMs
    const progress: Progress = { attempts, failure: first, requestedAt: first.round.startedAt }
    let state = schedule.initial
    let listener: Listener | undefined
    while (true) {
      const now = yield* Clock.currentTimeMillis
      const error = errorOf(engine, target, progress.failure, progress.attempts)
      const [next, , decision] = yield* schedule.step(now, error, state)
      const startAt = ScheduleDecision.isDone(decision)
        ? Infinity
        : Math.max(now, ScheduleIntervals.start(decision.intervals))
      if (startAt >= deadlineAt) {
        // Queued behind this instance's waiters, it has not tried yet: one attempt before giving up.
        if (progress.attempts === 0) {
          const result = yield* attemptOnce(engine, target, settings, progress, clock)
          if (result instanceof LockState) return result
          progress.failure = result
        }
        metrics.acquisitionFailed(progress.failure.unavailable)
        return yield* errorOf(engine, target, progress.failure, progress.attempts)
      }
      state = next
      if (listener === undefined && engine.waker !== undefined && !progress.failure.unavailable) {
        listener = yield* engine.waker.listen(target.keys, settings.nodeTimeoutMs)
        // Waiters already queued here were listening: a release in between went to one of them.
        if (!listener.queued) {
          const result = yield* attemptOnce(engine, target, settings, progress, clock)
          if (result instanceof LockState) return result
          progress.failure = result
        }
      }
      const early = yield* waitForTurn(engine, target, settings, clock, listener, startAt, progress)
      if (early !== undefined) return early
      const result = yield* attemptOnce(engine, target, settings, progress, clock)
      if (result instanceof LockState) return result
      progress.failure = result
    }
  }))

/**
 * A first attempt outside any fiber, for the Promise façade: resolves with the lock or the failure
 * (whose value was already deleted), to be retried by `retryAfter`. Not interruptible.
 */
export const firstAttempt = (
  engine: Engine,
  target: Target,
  settings: Settings,
  clock: Clock.Clock
): Promise<LockState | Failure> =>
  new Promise((resolve) =>
    new Attempt<LockState | Failure>(engine, target, settings, 1, undefined, clock, identity, identity).start(resolve)
  )

/** Retries after a failed first attempt (see `firstAttempt`), as `lock` would have. */
export const retryAfter = (
  engine: Engine,
  target: Target,
  settings: Settings,
  clock: Clock.Clock,
  failure: Failure
): Effect.Effect<LockState, LockContended | QuorumUnavailable> => retry(engine, target, settings, clock, failure, 1)

/** Acquires with retries: the first attempt runs without any schedule machinery. */
export const lock = (
  engine: Engine,
  target: Target,
  settings: Settings,
  clock: Clock.Clock
): Effect.Effect<LockState, LockContended | QuorumUnavailable> => {
  // Waiters of this instance are queued on these keys: take a place behind them, in turn order,
  // instead of racing them (and sending one more SET per node) for the next release.
  if (engine.waker?.isQueued(target.keys)) {
    return Effect.suspend(() =>
      retry(engine, target, settings, clock, queuedBehind(engine, clock.unsafeCurrentTimeMillis()), 0)
    )
  }
  return attempt(
    engine,
    target,
    settings,
    1,
    undefined,
    clock,
    Effect.succeed,
    (failure) => retryAfter(engine, target, settings, clock, failure)
  )
}

/** The stand-in for a first attempt that was not made because the lock is known to be contended here. */
const queuedBehind = (engine: Engine, now: number): Failure => ({
  _tag: "Failure",
  unavailable: false,
  round: {
    startedAt: now,
    decidedAt: now,
    tally: { granted: 0, denied: 0, failed: 0 },
    outcomes: engine.nodes.map(() => "pending"),
    replies: engine.nodes.map(() => undefined),
    errors: engine.nodes.map(() => undefined)
  }
})

/** One attempt: `None` when the resources are held elsewhere. */
export const tryLock = (
  engine: Engine,
  target: Target,
  settings: Settings,
  clock: Clock.Clock
): Effect.Effect<Option.Option<LockState>, QuorumUnavailable> =>
  attempt(
    engine,
    target,
    settings,
    1,
    undefined,
    clock,
    (lock) => Effect.succeed(Option.some(lock)),
    (failure) => {
      metrics.acquisitionFailed(failure.unavailable)
      return failure.unavailable
        ? Effect.fail(errorOf(engine, target, failure, 1) as QuorumUnavailable)
        : Effect.succeedNone
    }
  )

/**
 * An extension round: resets the ttl where every key still holds the lock's value. The keeper's
 * rounds (`byKeeper`) join each node's batch of extensions, and stop waiting at the lock's expiry:
 * past it, a late confirmation is of no use to work that must stop.
 */
export const extensionSpec = (lock: LockState, settings: Settings, byKeeper: boolean): RoundSpec => {
  const { engine, keys, value } = lock
  const { ttlMs } = settings
  return {
    nodes: engine.nodes,
    call: byKeeper
      ? (node) => node.extendInBatch(keys, value, ttlMs)
      : (node) => node.extend(keys, value, ttlMs),
    isGranted: (reply) => reply === 1,
    quorum: engine.quorum,
    timeoutMs: settings.nodeTimeoutMs,
    deadline: byKeeper ? lock.lossAt : undefined,
    // A node that answers "gone" after the quorum confirmed the lock is set again too.
    onLateReply: (round, index, reply) => {
      if (reply === 0 && confirms(lock, settings, round)) retake(lock, settings, index)
    }
  }
}

/** Whether a decided extension round confirmed the lock, which is still held. */
const confirms = (lock: LockState, settings: Settings, round: Round): boolean =>
  round.tally.granted >= lock.engine.quorum &&
  isUsable(validityOf(settings.ttlMs, settings.driftMs, round.startedAt, round.decidedAt)) &&
  lock.status === "held"

/**
 * Applies a decided extension round: a win sets the expiry from the round's start and ttl;
 * otherwise the error. A lock that is gone or taken on too many nodes is lost for good; one that
 * only could not be confirmed stays held until its current expiry, so the caller may retry.
 * A node's key expires by the ttl of the last extension that landed on it. Extensions reach every
 * node in the order they were sent, and a round decides only after the replies to the earlier
 * ones from the same nodes: the last round decided is the last that landed, and sets the expiry,
 * later or earlier. One that failed may still have landed: with a shorter ttl it shortens the lock
 * all the same.
 */
export const settleExtension = (lock: LockState, settings: Settings, round: Round): LockLost | undefined => {
  const { engine } = lock
  const { driftMs, ttlMs } = settings
  const won = round.tally.granted >= engine.quorum
  if (confirms(lock, settings, round)) {
    lock.setExpiry(round.startedAt + ttlMs - driftMs)
    lock.extensions++
    metrics.lockExtended()
    if (round.tally.denied > 0) {
      for (let index = 0; index < round.replies.length; index++) {
        if (round.replies[index] === 0) retake(lock, settings, index)
      }
    }
    return undefined
  }
  shortenTo(lock, round.startedAt + ttlMs - driftMs)
  const unavailable = won || isUnavailable(round.tally.failed, engine.nodes.length, engine.quorum)
  const reason = unavailable ? "unavailable" : round.replies.includes(-1) ? "taken" : "expired"
  const error = new LockLost({ resources: lock.resources, reason, votes: votesOf(engine, round) })
  if (!unavailable || lock.isLossDue(round.decidedAt)) lock.markLost(error)
  return lock.lostWith ?? error
}

/** Moves the lock's expiry earlier, to `at`, if that is earlier. */
const shortenTo = (lock: LockState, at: number): void => {
  if (at < lock.expiresAt) lock.setExpiry(at)
}

/**
 * Sets the lock again on node `index`, which answered an extension confirmed on a quorum that its
 * keys were gone (it restarted empty, or dropped them): nodes restarting one after another would
 * otherwise wear a held lock down below a quorum. Safe because a quorum holds the lock: no other
 * owner can hold a majority meanwhile, and a node that holds another owner's value refuses the
 * SET NX. Nobody waits for it: the next extension counts the node again if it landed, and a
 * release, sent behind it on the same connection, deletes it. One that landed is counted in
 * `redlock_retaken_total`.
 */
const retake = (lock: LockState, settings: Settings, index: number): void => {
  const node = lock.engine.nodes[index]!
  node.acquire(lock.keys, lock.value, settings.ttlMs).then((reply) => {
    if (reply === 1) metrics.lockRetaken(node.label)
  }, constVoid)
}

/** Resets the ttl on a quorum (see `settleExtension`). */
export const extend = (lock: LockState, settings: Settings): Effect.Effect<LockState, LockLost | InvalidArgument> =>
  Effect.clockWith((clock): Effect.Effect<LockState, LockLost | InvalidArgument> => {
    if (lock.status === "released") {
      return Effect.fail(new InvalidArgument({ argument: "lock", reason: "was released" }))
    }
    if (lock.lostWith !== undefined) return Effect.fail(lock.lostWith)
    const startedAt = clock.unsafeCurrentTimeMillis()
    // Settled in the same uninterruptible region as the round: interrupted, its extensions were
    // sent all the same and may still land.
    return Effect.uninterruptibleMask((restore) =>
      Effect.matchCauseEffect(restore(runRound(extensionSpec(lock, settings, false))), {
        onFailure: (cause) => {
          shortenTo(lock, startedAt + settings.ttlMs - settings.driftMs)
          return Effect.failCause(cause)
        },
        onSuccess: (round) => {
          const error = settleExtension(lock, settings, round)
          return error === undefined ? Effect.succeed(lock) : Effect.fail(error)
        }
      }))
  })

const releaseOutcome = (round: Round, index: number): NodeReport["outcome"] => {
  switch (round.outcomes[index]) {
    case "granted":
      return "released"
    case "denied":
      return "not-held"
    case "error":
      return "error"
    case "timeout":
      return "timeout"
    default:
      return "pending"
  }
}

/** A release report's node outcome as the vote it was in the release round. */
const voteOf = (node: NodeReport): NodeVote => {
  const outcome = node.outcome === "released" ? "granted" : node.outcome === "not-held" ? "denied" : node.outcome
  return new NodeVote(node.error === undefined ? { node: node.node, outcome } : { node: node.node, outcome, error: node.error })
}

/**
 * What a release that deleted the keys on fewer than a quorum of nodes reveals: the lock was not
 * held by a quorum any more — `expired` when so many nodes said its keys were gone that the
 * others could not make up a quorum, else `unavailable` (the nodes that did not answer could
 * have made one with those that released). Undefined for a release confirmed on a quorum. For the Promise façade's
 * `disposer`, as node-redlock v2–v4's `unlock` failed without a quorum. (A release that no quorum
 * confirms has waited for every node.)
 */
export const lossAtRelease = (lock: LockState, report: ReleaseReport): LockLost | undefined => {
  const { quorum } = lock.engine
  if (report.released >= quorum) return undefined
  const failed = report.nodes.filter((node) => node.outcome !== "released" && node.outcome !== "not-held").length
  return new LockLost({
    resources: lock.resources,
    reason: report.released + failed >= quorum ? "unavailable" : "expired",
    votes: report.nodes.map(voteOf)
  })
}

/**
 * Deletes the lock's keys wherever they still hold its value. Done as soon as a quorum deleted
 * them (the lock is free), else after `settleAfter` answers (by default every node's, so that the
 * report says what each did); the deletes not waited for still land. Never fails: an expired or
 * taken lock is reported per node. A second release, even while the first runs, reports the
 * first one's result without a call.
 */
export const release = (
  lock: LockState,
  clock: Clock.Clock,
  settleAfter = lock.engine.nodes.length
): Effect.Effect<ReleaseReport> =>
  Effect.async<ReleaseReport>((resume) => startRelease(lock, clock, settleAfter, (report) => resume(Effect.succeed(report))))

/** `release` with a callback, outside any fiber (the Promise façade's). */
export const startRelease = (
  lock: LockState,
  clock: Clock.Clock,
  settleAfter: number,
  onReleased: (report: ReleaseReport) => void
): void => {
  const { engine } = lock
  if (lock.releaseReport !== undefined) return onReleased(lock.releaseReport)
  // A release in flight: this one gets its report, without a second delete.
  if (lock.releasing) return void (lock.laterReleases ??= []).push(onReleased)
  lock.releasing = true
  lock.markReleased(clock.unsafeCurrentTimeMillis())
  startRound(releaseSpec(engine, lock.keys, lock.value, lock.settings.nodeTimeoutMs, settleAfter, true), clock, (round) => {
    const nodes = engine.nodes.map((node, index): NodeReport => {
      const error = round.errors[index]
      const outcome = releaseOutcome(round, index)
      return error === undefined ? { node: node.label, outcome } : { node: node.label, outcome, error }
    })
    const report: ReleaseReport = { released: round.tally.granted, nodes }
    lock.releaseReport = report
    const later = lock.laterReleases
    lock.releasing = false
    lock.laterReleases = undefined
    onReleased(report)
    if (later !== undefined) for (const waiter of later) waiter(report)
  })
}
