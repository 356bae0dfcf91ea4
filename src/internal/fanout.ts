/**
 * One round of calls to every node, as a single `Effect.async`: every node's promise starts at
 * once, replies are counted as they come, and the effect resumes as soon as the outcome is certain
 * or the node timeout fires. No fiber per node and one timer per round: on the hot path Effect's
 * general combinators cost several times a Redis round trip.
 */
import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import type { NodeOutcome } from "../RedlockError.js"
import type { LockNode } from "./node.js"
import { canStillWin, type Tally } from "./quorum.js"

/** What a round saw when it was decided. */
export interface Round {
  readonly startedAt: number
  readonly decidedAt: number
  readonly tally: Tally
  readonly outcomes: ReadonlyArray<NodeOutcome>
  readonly replies: ReadonlyArray<number | undefined>
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
   * Decide after this many answers instead of as soon as the quorum question is settled
   * (release). Nodes beyond it still get the call; the round just does not wait for them.
   */
  readonly settleAfter?: number | undefined
  /**
   * Runs when the waiting fiber is interrupted; the round's timer is cancelled first. Without it,
   * an interrupted round's timer simply runs out (at most one node timeout).
   */
  readonly onInterrupt?: Effect.Effect<void> | undefined
}

const liveClock = Effect.runSync(Effect.clock)

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

const messageOf = (error: unknown): string => error instanceof Error ? error.message : String(error)

/** Runs one round against every node. Never fails: errors and timeouts are outcomes. */
export const runRound = (spec: RoundSpec): Effect.Effect<Round> =>
  Effect.clockWith((clock) =>
    Effect.async<Round>((resume) => {
      const { nodes, quorum } = spec
      const count = nodes.length
      const startedAt = clock.unsafeCurrentTimeMillis()
      const tally: Tally = { granted: 0, denied: 0, failed: 0 }
      const outcomes = new Array<NodeOutcome>(count).fill("pending")
      const replies = new Array<number | undefined>(count)
      const errors = new Array<string | undefined>(count)
      let answered = 0
      let done = false
      let stopTimer: () => void = () => {}

      // Nothing is recorded after the decision, so the round can hand out its own arrays.
      const finish = () => {
        done = true
        stopTimer()
        resume(Effect.succeed({ startedAt, decidedAt: clock.unsafeCurrentTimeMillis(), tally, outcomes, replies, errors }))
      }
      const { settleAfter } = spec
      const isDecided = () =>
        settleAfter === undefined
          ? answered === count || tally.granted >= quorum || !canStillWin(tally, count, quorum)
          : answered >= settleAfter

      const onReply = (index: number, reply: number) => {
        if (done) return
        answered++
        replies[index] = reply
        if (spec.isGranted(reply)) {
          tally.granted++
          outcomes[index] = "granted"
        } else {
          tally.denied++
          outcomes[index] = "denied"
        }
        if (isDecided()) finish()
      }
      const onError = (index: number, error: unknown) => {
        if (done) return
        answered++
        tally.failed++
        outcomes[index] = "error"
        errors[index] = messageOf(error)
        if (isDecided()) finish()
      }

      for (let index = 0; index < count; index++) {
        let reply: Promise<number>
        try {
          reply = spec.call(nodes[index]!, index)
        } catch (error) {
          reply = Promise.reject(error)
        }
        reply.then((value) => onReply(index, value), (error: unknown) => onError(index, error))
      }
      if (settleAfter !== undefined && settleAfter <= 0) return finish()
      const timeoutMs = spec.deadline === undefined
        ? spec.timeoutMs
        : Math.max(0, Math.min(spec.timeoutMs, spec.deadline - startedAt))
      stopTimer = startTimer(clock, timeoutMs, () => {
        if (done) return
        for (let index = 0; index < count; index++) {
          if (outcomes[index] === "pending") {
            outcomes[index] = "timeout"
            tally.failed++
          }
        }
        finish()
      })
      // Only rounds with clean-up work pay for a canceler; others let their timer run out.
      const { onInterrupt } = spec
      if (onInterrupt === undefined) return
      return Effect.suspend(() => {
        done = true
        stopTimer()
        return onInterrupt
      })
    })
  )
