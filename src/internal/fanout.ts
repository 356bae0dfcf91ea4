/**
 * One round of calls to every node: every node's promise starts at once, replies are counted as
 * they come, and the round is decided as soon as the outcome is certain or the node timeout
 * fires. Rounds are plain callbacks, so that one `Effect.async` can chain several (an attempt and
 * its clean-up): no fiber per node, one timer per round. On the hot path each Effect step costs
 * a visible share of a Redis round trip.
 */
import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import type { NodeOutcome } from "../RedlockError.js"
import * as metrics from "./metrics.js"
import type { LockNode } from "./node.js"
import { canStillWin, type Tally } from "./quorum.js"
import { type Waiting, WaitingList } from "./waitingList.js"

/** What a round saw when it was decided. */
export interface Round {
  readonly startedAt: number
  readonly decidedAt: number
  readonly tally: Tally
  readonly outcomes: ReadonlyArray<NodeOutcome>
  readonly replies: ReadonlyArray<number | undefined>
  /** Per node, the error message; only nodes that failed have one. */
  readonly errors: ReadonlyArray<string | undefined>
}

/** How a round is run. */
export interface RoundSpec {
  readonly nodes: ReadonlyArray<LockNode>
  readonly call: (node: LockNode, index: number) => Promise<number>
  /** Whether a reply counts for the quorum. */
  readonly isGranted: (reply: number) => boolean
  readonly quorum: number
  readonly timeoutMs: number
  /** Give up waiting at this time (epoch ms) if it comes before the node timeout. */
  readonly deadline?: number | undefined
  /**
   * Decide after this many answers instead of as soon as the quorum question is settled (a
   * clean-up, a release). Nodes beyond it still get the call; the round just does not wait for
   * them.
   */
  readonly settleAfter?: number | undefined
  /**
   * A lock's release: with `settleAfter`, also decided as soon as a quorum granted (the lock is
   * free; one that no quorum confirms waits to say what each node did), and still watching the
   * nodes it did not wait for until each answers or times out.
   */
  readonly isRelease?: boolean | undefined
  /** Told of each reply that arrives after the round was decided (or cancelled). */
  readonly onLateReply?: ((round: Round, index: number, reply: number) => void) | undefined
}

/** The default clock: its timers are `setTimeout`s. */
export const liveClock = Effect.runSync(Effect.clock)

/**
 * Starts the round's one timer: `setTimeout` under the live clock; a sleeping fiber under any
 * other clock, so TestClock drives node timeouts in unit tests.
 */
export const startTimer = (clock: Clock.Clock, ms: number, onFire: () => void): () => void => {
  if (clock === liveClock) {
    const handle = setTimeout(onFire, ms)
    return () => clearTimeout(handle)
  }
  const fiber = Effect.runFork(Effect.andThen(clock.sleep(Duration.millis(ms)), Effect.sync(onFire)))
  return () => Effect.runFork(Fiber.interruptAs(fiber, FiberId.none))
}

/**
 * The live clock's node timeouts for rounds of one `timeoutMs`: one unreferenced timer for the
 * earliest due round instead of a `setTimeout` and `clearTimeout` per round, which cost a visible
 * share of a lock cycle. A round in flight has an ioredis call in flight, whose socket or
 * reconnection timer keeps the process alive meanwhile.
 */
class Timeouts {
  private readonly rounds = new WaitingList<RunningRound>()
  private armedFor = Infinity

  constructor(readonly timeoutMs: number) {}

  add(round: RunningRound): void {
    this.rounds.add(round)
    const due = round.startedAt + this.timeoutMs
    if (due < this.armedFor) this.arm(due)
  }

  delete(round: RunningRound): void {
    this.rounds.delete(round)
  }

  /** Whether no round waits on it. */
  get isIdle(): boolean {
    return this.rounds.isEmpty
  }

  private arm(due: number): void {
    this.armedFor = due
    setTimeout(this.fire, Math.max(0, due - liveClock.unsafeCurrentTimeMillis()), due).unref()
  }

  private readonly fire = (due: number): void => {
    if (due !== this.armedFor) return
    this.armedFor = Infinity
    const now = liveClock.unsafeCurrentTimeMillis()
    // The rounds share one timeout, so the oldest are due first: take them from the list's end,
    // and stop at the first that is not due (a clock stepping back delays the others by the step).
    const expired: Array<RunningRound> = []
    for (let round = this.rounds.last; round !== undefined; round = this.rounds.last) {
      const roundDue = round.startedAt + this.timeoutMs
      if (roundDue > now) {
        this.arm(roundDue)
        break
      }
      this.rounds.delete(round)
      expired.push(round)
    }
    for (const round of expired) round.onTimeout()
  }
}

const timeoutsByMs = new Map<number, Timeouts>()

/** Past this many timeout lengths, those no round waits on are dropped when another one comes. */
const keptTimeoutLengths = 16

const timeoutsOf = (timeoutMs: number): Timeouts => {
  let timeouts = timeoutsByMs.get(timeoutMs)
  if (timeouts === undefined) {
    // Node timeouts follow each lock's ttl (5 % of it by default): many ttls must not pile up.
    if (timeoutsByMs.size >= keptTimeoutLengths) {
      for (const [ms, kept] of timeoutsByMs) if (kept.isIdle) timeoutsByMs.delete(ms)
    }
    timeouts = new Timeouts(timeoutMs)
    timeoutsByMs.set(timeoutMs, timeouts)
  }
  return timeouts
}

/** How many timeout lengths are kept (for tests). */
export const timeoutLengthsKept = (): number => timeoutsByMs.size

const messageOf = (error: unknown): string => error instanceof Error ? error.message : String(error)

const noErrors: ReadonlyArray<string | undefined> = []

/**
 * One running round. A class rather than closures: a lock cycle runs two rounds or more, and their
 * allocations are a visible share of its cost under load.
 */
class RunningRound implements Round, Tally, Waiting<RunningRound> {
  granted = 0
  denied = 0
  failed = 0
  answered = 0
  done = false
  decidedAt = 0
  readonly outcomes: Array<NodeOutcome>
  readonly replies: Array<number | undefined>
  errors: Array<string | undefined> = noErrors as Array<string | undefined>
  stopTimer: (() => void) | undefined = undefined
  timeouts: Timeouts | undefined = undefined
  nextWaiting: RunningRound | undefined = undefined
  previousWaiting: RunningRound | undefined = undefined
  /**
   * A release decided before every node answered watches the others until each answers or times
   * out, so that a slow or dead node is still counted (metrics, the façade's events) although
   * nobody waits for it: how many are left, and a bit per node that answered since.
   */
  private watchedLeft = 0
  private answeredLateMask = 0

  constructor(
    readonly spec: RoundSpec,
    readonly clock: Clock.Clock,
    readonly startedAt: number,
    private onDecided: ((round: Round) => void) | undefined
  ) {
    const count = spec.nodes.length
    this.outcomes = new Array<NodeOutcome>(count)
    this.replies = new Array<number | undefined>(count)
    for (let index = 0; index < count; index++) this.outcomes[index] = "pending"
  }

  get tally(): Tally {
    return this
  }

  isDecided(): boolean {
    const { quorum, settleAfter } = this.spec
    if (settleAfter !== undefined) return this.answered >= settleAfter || (this.spec.isRelease === true && this.granted >= quorum)
    const count = this.outcomes.length
    return this.answered === count || this.granted >= quorum || !canStillWin(this, count, quorum)
  }

  // Nothing is recorded after the decision, so the round can hand itself out as the result. It
  // lets go of its callback first: a round in flight when V8 collects the young generation moves
  // to the old one, and the caller's state it pointed to would be kept and promoted with it.
  finish(): void {
    this.done = true
    if (this.spec.isRelease !== true || !this.watchStragglers()) this.stopTimers()
    this.decidedAt = this.clock.unsafeCurrentTimeMillis()
    const onDecided = this.onDecided!
    this.onDecided = undefined
    onDecided(this)
  }

  /**
   * For a release: watches the nodes that have not answered (its timer runs on); false if none,
   * or too many for the mask (a deployment of over 30 nodes).
   */
  private watchStragglers(): boolean {
    const { outcomes } = this
    if (outcomes.length > 30) return false
    let left = 0
    for (let index = 0; index < outcomes.length; index++) if (outcomes[index] === "pending") left++
    this.watchedLeft = left
    return left > 0
  }

  private isWatched(index: number): boolean {
    return this.watchedLeft > 0 && this.outcomes[index] === "pending" && (this.answeredLateMask & (1 << index)) === 0
  }

  private answeredLate(index: number): void {
    if (!this.isWatched(index)) return
    this.answeredLateMask |= 1 << index
    if (--this.watchedLeft === 0) this.stopTimers()
  }

  onReply(index: number, reply: number): void {
    if (this.done) {
      this.answeredLate(index)
      return this.spec.onLateReply?.(this, index, reply)
    }
    this.answered++
    this.replies[index] = reply
    if (this.spec.isGranted(reply)) {
      this.granted++
      this.outcomes[index] = "granted"
    } else {
      this.denied++
      this.outcomes[index] = "denied"
    }
    if (this.isDecided()) this.finish()
  }

  onError(index: number, error: unknown): void {
    if (this.done) {
      if (this.isWatched(index)) this.nodeFailed(index, "error", error)
      return this.answeredLate(index)
    }
    this.answered++
    this.failed++
    this.outcomes[index] = "error"
    if (this.errors === noErrors) this.errors = new Array<string | undefined>(this.outcomes.length)
    this.errors[index] = messageOf(error)
    this.nodeFailed(index, "error", error)
    if (this.isDecided()) this.finish()
  }

  onTimeout(): void {
    const { outcomes } = this
    if (this.done) {
      for (let index = 0; index < outcomes.length; index++) {
        if (this.isWatched(index)) this.nodeFailed(index, "timeout", undefined)
      }
      this.watchedLeft = 0
      return
    }
    for (let index = 0; index < outcomes.length; index++) {
      if (outcomes[index] === "pending") {
        outcomes[index] = "timeout"
        this.failed++
        this.nodeFailed(index, "timeout", undefined)
      }
    }
    this.finish()
  }

  private nodeFailed(index: number, outcome: "error" | "timeout", error: unknown): void {
    const node = this.spec.nodes[index]!
    metrics.nodeFailed(node.label, outcome)
    if (node.onFailure === undefined) return
    const reported = outcome === "timeout"
      ? new Error(`effect-redlock: ${node.label} did not answer in time`)
      : error instanceof Error
      ? error
      : new Error(messageOf(error))
    try {
      node.onFailure(node.label, reported)
    } catch {
      // A hook must not throw; one that does cannot be allowed to leave the round undecided.
    }
  }

  start(): void {
    const { spec } = this
    const { nodes } = spec
    for (let index = 0; index < nodes.length; index++) {
      let reply: Promise<number>
      try {
        reply = spec.call(nodes[index]!, index)
      } catch (error) {
        reply = Promise.reject(error)
      }
      reply.then((value) => this.onReply(index, value), (error: unknown) => this.onError(index, error))
    }
    if (spec.settleAfter !== undefined && spec.settleAfter <= 0) return this.finish()
    if (spec.deadline === undefined && this.clock === liveClock) {
      this.timeouts = timeoutsOf(spec.timeoutMs)
      return this.timeouts.add(this)
    }
    const timeoutMs = spec.deadline === undefined
      ? spec.timeoutMs
      : Math.max(0, Math.min(spec.timeoutMs, spec.deadline - this.startedAt))
    this.stopTimer = startTimer(this.clock, timeoutMs, () => this.onTimeout())
  }

  private stopTimers(): void {
    this.stopTimer?.()
    this.timeouts?.delete(this)
  }

  /** Stops waiting: the round is never decided. The calls already sent still arrive. */
  cancel(): void {
    this.done = true
    this.watchedLeft = 0
    this.onDecided = undefined
    this.stopTimers()
  }
}

/** A round in progress: `cancel` stops waiting for it. */
export interface Running {
  readonly cancel: () => void
}

/** Starts a round now; `onDecided` runs once, unless the round is cancelled first. */
export const startRound = (spec: RoundSpec, clock: Clock.Clock, onDecided: (round: Round) => void): Running => {
  const round = new RunningRound(spec, clock, clock.unsafeCurrentTimeMillis(), onDecided)
  round.start()
  return round
}

/**
 * Runs one round as an effect. Never fails: errors and timeouts are outcomes. When the fiber is
 * interrupted, the round's timer is cancelled; the calls already sent still arrive.
 */
export const runRound = (spec: RoundSpec): Effect.Effect<Round> =>
  Effect.clockWith((clock) =>
    Effect.async<Round>((resume) => {
      const running = startRound(spec, clock, (round) => resume(Effect.succeed(round)))
      return Effect.sync(() => running.cancel())
    })
  )
