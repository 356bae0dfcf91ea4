/** The service's operations over an engine: validation, scoping, extension, spans. */
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
  Redlock,
  ReleaseReport,
  Resources,
  TryWithLock,
  WithLock
} from "../Redlock.js"
import * as engine from "./engine.js"
import { startKeeper } from "./keepAlive.js"
import { LockState } from "./lock.js"
import * as options_ from "./options.js"
import { traced } from "./tracing.js"

/**
 * Runs the body in a child fiber while a keeper fiber looks after the lock: it extends the lock
 * (or, without automatic extension, waits for its expiry) and interrupts the body when the lock is
 * lost, which makes the result the `LockLost`. When the caller is interrupted, the body is
 * interrupted and awaited, so its finalizers still run under the lock, before the release.
 */
const guard = <A, E, R>(
  body: Body<A, E, R>,
  lock: LockState,
  restore: <X, Y, Z>(effect: Effect.Effect<X, Y, Z>) => Effect.Effect<X, Y, Z>
): Effect.Effect<A, E | LockLost, R> =>
  Effect.gen(function*() {
    const work = yield* Effect.fork(restore(typeof body === "function" ? Effect.suspend(() => body(lock)) : body))
    const keeper = yield* startKeeper(lock, Fiber.interrupt(work))
    const exit = yield* restore(Fiber.await(work)).pipe(
      Effect.onInterrupt(() => Fiber.interrupt(work)),
      Effect.ensuring(keeper.stop)
    )
    const lost = lock.lostWith
    return yield* lost !== undefined && Exit.isInterrupted(exit) ? Effect.fail(lost) : exit
  })

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

  /** Puts a fresh lock under the scope: its release, and its extension, end with the scope. */
  const manage = (lock: LockState): Effect.Effect<Lock.Lock, never, Scope.Scope> => {
    if (lock.settings.autoExtend === undefined) return Effect.as(Effect.addFinalizer(() => releaseQuietly(lock)), lock)
    return Effect.flatMap(startKeeper(lock, Effect.void), (keeper) =>
      Effect.as(Effect.addFinalizer(() => Effect.zipRight(keeper.stop, releaseQuietly(lock))), lock))
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


  /** Acquires, runs the body guarded, releases: no Scope, one keeper fiber per lock. */
  const withLockIn = <A, E, R, E2>(
    body: Body<A, E, R>,
    resources: Resources,
    options: AcquireOptions | undefined,
    take: (target: engine.Target, settings: options_.Settings) => Effect.Effect<Option.Option<LockState>, E2>
  ): Effect.Effect<Option.Option<A>, E | E2 | InvalidArgument | LockLost, R> =>
    Effect.flatMap(prepare(resources, options, true), ({ settings, target }) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(restore(take(target, settings)), (taken) => {
          if (Option.isNone(taken)) return Effect.succeedNone
          const lock = taken.value
          return Effect.asSome(guard(body, lock, restore)).pipe(Effect.ensuring(releaseQuietly(lock)))
        })
      ))

  const withLock: WithLock = dual(
    isBody,
    <A, E, R>(body: Body<A, E, R>, resources: Resources, options?: AcquireOptions) =>
      traced(
        "Redlock.withLock",
        Effect.map(
          withLockIn(body, resources, options, (target, settings) =>
            Effect.asSome(engine.lock(instance, target, settings))),
          Option.getOrThrow
        )
      )
  )

  const tryWithLock: TryWithLock = dual(
    isBody,
    <A, E, R>(body: Body<A, E, R>, resources: Resources, options?: AcquireOptions) =>
      traced(
        "Redlock.tryWithLock",
        withLockIn(body, resources, options, (target, settings) => engine.tryLock(instance, target, settings))
      )
  )

  return {
    nodes: instance.nodes.length,
    quorum: instance.quorum,
    acquire: (resources, options) => traced("Redlock.acquire", acquireIn(resources, options, undefined)),
    tryAcquire: (resources, options) => traced("Redlock.tryAcquire", tryAcquireIn(resources, options, undefined)),
    withLock,
    tryWithLock,
    lock: (resources, options) =>
      traced(
        "Redlock.lock",
        Effect.flatMap(prepare(resources, options, undefined), ({ settings, target }) =>
          engine.lock(instance, target, settings))
      ),
    extend: (lock, ttl) =>
      traced(
        "Redlock.extend",
        Effect.suspend(() => {
          if (!(lock instanceof LockState)) return Effect.fail(notALock())
          const settings = ttl === undefined
            ? Effect.succeed(lock.settings)
            : options_.validate(() => options_.resolve(lock.settings, { ttl }, undefined))
          return Effect.flatMap(settings, (settings) => engine.extend(lock, settings))
        })
      ),
    // Release cannot fail: a value that is not a lock handle got past the types, a defect.
    release: (lock) =>
      traced("Redlock.release", lock instanceof LockState ? engine.release(lock) : Effect.die(notALock()))
  }
}

