/** The service's operations over an engine: validation, scoping, extension, spans. */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import { dual } from "effect/Function"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Lock from "../Lock.js"
import { InvalidArgument, type LockLost } from "../RedlockError.js"
import type {
  AcquireOptions,
  Body,
  LockOptions,
  Redlock,
  ReleaseReport,
  Resources,
  TryWithLock,
  WithLock
} from "../Redlock.js"
import * as engine from "./engine.js"
import { keepAlive } from "./keepAlive.js"
import { LockState } from "./lock.js"
import * as options_ from "./options.js"

/**
 * Runs the body in a child fiber while the lock holds. When the lock is lost, the body is
 * interrupted and the result is the `LockLost`. When the caller is interrupted, the body is
 * interrupted and awaited, so its finalizers still run under the lock, before the release.
 */
const guard = <A, E, R>(body: Body<A, E, R>, lock: Lock.Lock): Effect.Effect<A, E | LockLost, R> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.gen(function*() {
      const work = yield* Effect.fork(restore(typeof body === "function" ? Effect.suspend(() => body(lock)) : body))
      const watcher = yield* Effect.fork(Effect.interruptible(
        Effect.flatMap(Effect.flip(Lock.awaitLost(lock)), () => Fiber.interrupt(work))
      ))
      const exit = yield* restore(Fiber.await(work)).pipe(
        Effect.onInterrupt(() => Fiber.interrupt(work)),
        Effect.ensuring(Fiber.interrupt(watcher))
      )
      const lost = (lock as LockState).lostWith
      return yield* lost !== undefined && Exit.isInterrupted(exit) ? Effect.fail(lost) : exit
    })
  )

/** Whether `withLock`'s first argument is the body (data-first) rather than the resources. */
export const isBody = (args: IArguments): boolean => Effect.isEffect(args[0]) || typeof args[0] === "function"

const notALock = () => new InvalidArgument({ argument: "lock", reason: "is not a lock handle from effect-redlock" })

const logReleaseProblems = (lock: Lock.Lock, report: ReleaseReport): Effect.Effect<void> => {
  const failed = report.nodes.filter((node) => node.outcome === "error" || node.outcome === "timeout")
  return failed.length === 0 ? Effect.void : Effect.logDebug("effect-redlock: release did not reach every node").pipe(
    Effect.annotateLogs({
      resources: lock.resources.join(", "),
      nodes: failed.map((node) => `${node.node} ${node.outcome}`).join(", ")
    })
  )
}

/** Builds the service over an engine whose nodes and settings are already validated. */
export const makeService = (instance: engine.Engine): Redlock.Service => {
  const prepare = (resources: Resources, options: AcquireOptions | undefined, autoExtend: boolean | undefined) =>
    options_.validate(() => ({
      target: options_.keysOf(resources, instance.keyPrefix, instance.nodes),
      settings: options_.resolve(instance.settings, options, autoExtend)
    }))

  /** The scope's release: done once a quorum answered; slower nodes get the delete all the same. */
  const releaseQuietly = (lock: LockState) =>
    Effect.flatMap(engine.release(lock, instance.quorum), (report) => logReleaseProblems(lock, report))

  /** Puts a fresh lock under the scope: release as its finalizer, and the extension fiber. */
  const manage = (lock: LockState): Effect.Effect<Lock.Lock, never, Scope.Scope> => {
    const policy = lock.settings.autoExtend
    const guarded = Effect.as(Effect.addFinalizer(() => releaseQuietly(lock)), lock)
    if (policy === undefined) return guarded
    lock.autoExtending = true
    return Effect.zipLeft(guarded, Effect.forkScoped(Effect.interruptible(keepAlive(lock, policy))))
  }

  const acquireIn = (resources: Resources, options: AcquireOptions | undefined, autoExtend: boolean | undefined) =>
    Effect.flatMap(prepare(resources, options, autoExtend), ({ settings, target }) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(restore(engine.lock(instance, target, settings)), manage)
      ))

  const tryAcquireIn = (resources: Resources, options: AcquireOptions | undefined, autoExtend: boolean | undefined) =>
    Effect.flatMap(prepare(resources, options, autoExtend), ({ settings, target }) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(
          restore(engine.tryLock(instance, target, settings)),
          Option.match({ onNone: () => Effect.succeedNone, onSome: (lock) => Effect.asSome(manage(lock)) })
        )
      ))


  const withLock: WithLock = dual(
    isBody,
    <A, E, R>(body: Body<A, E, R>, resources: Resources, options?: AcquireOptions) =>
      Effect.scoped(Effect.flatMap(acquireIn(resources, options, true), (lock) => guard(body, lock))).pipe(
        Effect.withSpan("Redlock.withLock")
      )
  )

  const tryWithLock: TryWithLock = dual(
    isBody,
    <A, E, R>(body: Body<A, E, R>, resources: Resources, options?: AcquireOptions) =>
      Effect.scoped(Effect.flatMap(
        tryAcquireIn(resources, options, true),
        Option.match({
          onNone: () => Effect.succeedNone,
          onSome: (lock) => Effect.asSome(guard(body, lock))
        })
      )).pipe(Effect.withSpan("Redlock.tryWithLock"))
  )

  return {
    nodes: instance.nodes.length,
    quorum: instance.quorum,
    acquire: Effect.fn("Redlock.acquire")(function*(resources: Resources, options?: AcquireOptions) {
      return yield* acquireIn(resources, options, undefined)
    }),
    tryAcquire: Effect.fn("Redlock.tryAcquire")(function*(resources: Resources, options?: AcquireOptions) {
      return yield* tryAcquireIn(resources, options, undefined)
    }),
    withLock,
    tryWithLock,
    lock: Effect.fn("Redlock.lock")(function*(resources: Resources, options?: LockOptions) {
      const { settings, target } = yield* prepare(resources, options, undefined)
      return yield* engine.lock(instance, target, settings)
    }),
    extend: Effect.fn("Redlock.extend")(function*(lock: Lock.Lock, ttl?: Duration.DurationInput) {
      if (!(lock instanceof LockState)) return yield* notALock()
      const settings = ttl === undefined
        ? lock.settings
        : yield* options_.validate(() => options_.resolve(lock.settings, { ttl }, undefined))
      return yield* engine.extend(lock, settings)
    }),
    release: Effect.fn("Redlock.release")(function*(lock: Lock.Lock) {
      // Release cannot fail: a value that is not a lock handle got past the types, a defect.
      if (!(lock instanceof LockState)) return yield* Effect.die(notALock())
      return yield* engine.release(lock)
    })
  }
}

