/** Fibers started at once, for the body of `withLock` and the keeper's reactions. */
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as Runtime from "effect/Runtime"
import type * as RuntimeFlags from "effect/RuntimeFlags"

/**
 * Runs `effect` in a new fiber with `parent`'s FiberRefs as they are now, `context` and
 * `runtimeFlags`. Unlike `Effect.fork`, which queues the start on the scheduler, the fiber runs at
 * once until its first asynchronous step: an effect that completes synchronously is done when
 * this returns, and costs no scheduler turn nor `Fiber.await`. The fiber is nobody's child: the
 * caller awaits or interrupts it.
 */
export const startNow = <A, E, R>(
  parent: Fiber.RuntimeFiber<unknown, unknown>,
  runtimeFlags: RuntimeFlags.RuntimeFlags,
  context: Context.Context<R>,
  effect: Effect.Effect<A, E, R>
): Fiber.RuntimeFiber<A, E> =>
  Runtime.runFork(Runtime.make({ context, fiberRefs: parent.getFiberRefs(), runtimeFlags }), effect)

/**
 * The fiber's exit, once it ends. Unlike `Fiber.await`, it sends the fiber no message (one more
 * scheduler turn) and sets no canceler: when the caller is interrupted meanwhile, the observer
 * stays until the fiber ends and then finds nobody waiting.
 */
export const exitOf = <A, E>(fiber: Fiber.RuntimeFiber<A, E>): Effect.Effect<Exit.Exit<A, E>> =>
  Effect.async((resume) => fiber.addObserver((exit) => resume(Effect.succeed(exit))))
