/** Running a program as the process: exit codes, and finalizers that run on Ctrl-C. */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import type * as Runtime from "@effect/platform/Runtime"
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"

/** Ends the program with this exit code; the reason was already printed. */
export class ExitCode extends Data.TaggedError("ExitCode")<{ readonly code: number }> {}

const exitCodeOf = (cause: Cause.Cause<unknown>): Option.Option<number> =>
  Option.flatMap(
    Cause.failureOption(cause),
    (error) => error instanceof ExitCode ? Option.some(error.code) : Option.none()
  )

/** 0 on success, 130 when interrupted (Ctrl-C, SIGTERM), the `ExitCode` failure's code, else 1. */
const teardown: Runtime.Teardown = (exit, onExit) => {
  if (Exit.isSuccess(exit)) return onExit(0)
  if (Cause.isInterruptedOnly(exit.cause)) return onExit(130)
  onExit(Option.getOrElse(exitCodeOf(exit.cause), () => 1))
}

/**
 * Runs the program with `NodeRuntime.runMain`: SIGINT/SIGTERM interrupt it, so every finalizer runs
 * (workers stopped, redis-server nodes killed) before the process exits. A second Ctrl-C exits at
 * once: the harness's exit hook still kills the redis-server nodes, and the workers stop by
 * themselves when their stdin closes.
 */
export const run = <E>(program: Effect.Effect<void, E>): void => {
  let signals = 0
  const onSignal = () => {
    if (++signals > 1) process.exit(130)
  }
  process.on("SIGINT", onSignal).on("SIGTERM", onSignal)
  NodeRuntime.runMain(
    program.pipe(
      Effect.tapErrorCause((cause) =>
        Cause.isInterruptedOnly(cause) || Option.isSome(exitCodeOf(cause)) ? Effect.void : Effect.logError(cause)
      )
    ),
    { disableErrorReporting: true, teardown }
  )
}
