/** The service's operations over an engine: validation, scoping, extension, spans. */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import { dual } from "effect/Function"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
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
import { exitOf, startNow } from "./fiber.js"
import { startKeeper } from "./keepAlive.js"
import { LockState } from "./lock.js"
import * as options_ from "./options.js"
import { isTraced } from "./tracing.js"

/**
 * A guarded body's result, once it and its scope are done: the `LockLost` when the lock was lost
 * meanwhile — whether the loss interrupted the body or found it uninterruptible, the work did not
 * run under the lock to its end. A failure of the body's own stays in the cause, after the loss.
 */
const resultOf = <A, E>(lock: LockState, exit: Exit.Exit<A, E>): Exit.Exit<A, E | LockLost> => {
  const lost = lock.lostWith
  if (lost === undefined) return exit
  return Exit.isSuccess(exit) || Cause.isInterruptedOnly(exit.cause)
    ? Exit.fail(lost)
    : Exit.failCause(Cause.sequential(Cause.fail(lost), exit.cause))
}

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

/**
 * Starts a public operation in one step: reads the fiber's clock, and wraps the operation in a
 * span only when the application installed a tracer (under Effect's built-in tracer nobody reads
 * spans, and one costs a visible share of a lock cycle).
 */
const operation = <A, E, R>(
  name: string,
  f: (clock: Clock.Clock, fiber: Fiber.RuntimeFiber<unknown, unknown>) => Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  Effect.withFiberRuntime<A, E, R>((fiber) => {
    const effect = f(Context.get(fiber.currentDefaultServices, Clock.Clock), fiber)
    return isTraced(fiber.currentTracer) ? Effect.withSpan(effect, name) : effect
  })

/** The engine behind each service `makeService` built (for the Promise façade). */
const engines = new WeakMap<Redlock.Service, engine.Engine>()

/** The engine behind a service built by `makeService`. */
export const engineOf = (service: Redlock.Service): engine.Engine | undefined => engines.get(service)

/**
 * Validates a lock's arguments into its keys and settings; throws an `InvalidArgument`.
 * `withLockDefaults`, the instance's settings already resolved for `withLock`, spares resolving
 * them again on every call that gives no options.
 */
export const targetOf = (
  instance: engine.Engine,
  resources: Resources,
  options: AcquireOptions | undefined,
  autoExtend: boolean | undefined,
  withLockDefaults?: options_.Settings
): { readonly target: engine.Target; readonly settings: options_.Settings } => {
  const target = options_.keysOf(resources, instance.keyPrefix, instance.nodes)
  const settings = options === undefined && autoExtend === true && withLockDefaults !== undefined
    ? withLockDefaults
    : options_.resolve(instance.settings, options, autoExtend)
  if (!settings.fencing) return { target, settings }
  return { target: { ...target, fenceKeys: options_.fenceKeysOf(target.keys, instance.nodes) }, settings }
}

/** Builds the service over an engine whose nodes and settings are already validated. */
export const makeService = (instance: engine.Engine): Redlock.Service => {
  const withLockDefaults = options_.resolve(instance.settings, undefined, true)

  /** Validates the arguments, then runs `use` on the keys and settings; an `InvalidArgument` before any call. */
  const prepared = <A, E, R>(
    resources: Resources,
    options: AcquireOptions | undefined,
    autoExtend: boolean | undefined,
    use: (target: engine.Target, settings: options_.Settings) => Effect.Effect<A, E, R>
  ): Effect.Effect<A, E | InvalidArgument, R> => {
    let checked: ReturnType<typeof targetOf>
    try {
      checked = targetOf(instance, resources, options, autoExtend, withLockDefaults)
    } catch (error) {
      return error instanceof InvalidArgument ? Effect.fail(error) : Effect.die(error)
    }
    return use(checked.target, checked.settings)
  }

  /** The scope's release: done once a quorum answered; slower nodes get the delete all the same. */
  const releaseQuietly = (lock: LockState, clock: Clock.Clock) =>
    Effect.flatMap(engine.release(lock, clock, instance.quorum), (report) => logReleaseProblems(lock, report))

  /** Puts a fresh lock under the acquiring fiber's scope: its release, and its extension, end with the scope. */
  const manage = (lock: LockState, clock: Clock.Clock, fiber: Fiber.RuntimeFiber<unknown, unknown>): Effect.Effect<Lock.Lock> => {
    // Called in the acquiring fiber's continuation. The Scope is read from its context in place
    // (`Effect.scope` costs a step), and the finalizer goes on it directly: the release needs none
    // of the acquiring fiber's FiberRefs.
    const scope = Context.unsafeGet(fiber.currentContext as Context.Context<Scope.Scope>, Scope.Scope)
    const release = lock.settings.autoExtend === undefined
      ? releaseQuietly(lock, clock)
      : Effect.zipRight(startKeeper(lock, Effect.void, clock, fiber).stop, releaseQuietly(lock, clock))
    return Effect.as(Scope.addFinalizerExit(scope, () => release), lock)
  }

  const acquireIn = (resources: Resources, options: AcquireOptions | undefined) =>
  (clock: Clock.Clock, fiber: Fiber.RuntimeFiber<unknown, unknown>) =>
    prepared(resources, options, undefined, (target, settings) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(restore(engine.lock(instance, target, settings, clock)), (lock) => manage(lock, clock, fiber))
      ))

  const tryAcquireIn = (resources: Resources, options: AcquireOptions | undefined) =>
  (clock: Clock.Clock, fiber: Fiber.RuntimeFiber<unknown, unknown>) =>
    prepared(resources, options, undefined, (target, settings) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(
          restore(engine.tryLock(instance, target, settings, clock)),
          Option.match({
            onNone: () => Effect.succeedNone,
            onSome: (lock) => Effect.asSome(manage(lock, clock, fiber))
          })
        )
      ))

  /**
   * Runs the body in a fiber of its own, with a scope of its own, while a keeper looks after the
   * lock: it extends the lock (or, without automatic extension, watches its expiry) and
   * interrupts the body when the lock is lost, which makes the result the `LockLost`. When the
   * caller is interrupted, the body is interrupted and awaited. The body's scope closes (its
   * finalizers run) in the body's fiber, under the keeper; then the keeper stops and the lock is
   * released, whatever happened. The body starts at once: one that completes synchronously, its
   * finalizers included, needs no keeper. Runs inside the caller's uninterruptible mask: plain
   * steps instead of `onInterrupt` / `ensuring`, which cost more than the lock itself.
   */
  const guard = <A, E, R>(
    body: Body<A, E, R>,
    lock: LockState,
    restore: <X, Y, Z>(effect: Effect.Effect<X, Y, Z>) => Effect.Effect<X, Y, Z>,
    clock: Clock.Clock
  ): Effect.Effect<A, E | LockLost, Exclude<R, Scope.Scope>> =>
    Effect.flatMap(Scope.make(), (scope) =>
      Effect.withFiberRuntime((parent, status) => {
        // The keeper starts after the body's first step: a `Lock.awaitLost` in that step must
        // already leave the loss to it.
        lock.autoExtending = lock.settings.autoExtend !== undefined
        // As `Effect.scoped`: a finalizer's failure is added to the body's result.
        const work = startNow(
          parent,
          status.runtimeFlags,
          Context.add(parent.currentContext as Context.Context<Exclude<R, Scope.Scope>>, Scope.Scope, scope) as Context.Context<R>,
          Effect.flatMap(
            Effect.exit(restore(typeof body === "function" ? Effect.suspend(() => body(lock)) : body)),
            (exit) => Effect.map(Effect.exit(Scope.close(scope, exit)), (closed) => resultOf(lock, Exit.zipLeft(exit, closed)))
          )
        )
        const done = work.unsafePoll()
        if (done !== null) return Effect.zipRight(releaseQuietly(lock, clock), Exit.flatten(done))
        const keeper = startKeeper(lock, Fiber.interrupt(work), clock, parent)
        const released = Effect.zipRight(keeper.stop, releaseQuietly(lock, clock))
        return Effect.flatMap(Effect.exit(restore(exitOf(work))), (awaited) =>
          // Awaiting fails only when the caller is interrupted: that interruption is the result.
          Exit.isFailure(awaited)
            ? Effect.zipRight(Fiber.interrupt(work), Effect.zipRight(released, Exit.failCause(awaited.cause)))
            : Effect.zipRight(released, Exit.flatten(awaited.value)))
      }))

  /** Acquires, runs the body guarded, releases: one fiber and one scope for the body. */
  const withLockIn = <A, E, R, E2>(
    body: Body<A, E, R>,
    resources: Resources,
    options: AcquireOptions | undefined,
    clock: Clock.Clock,
    take: (target: engine.Target, settings: options_.Settings) => Effect.Effect<Option.Option<LockState>, E2>
  ): Effect.Effect<Option.Option<A>, E | E2 | InvalidArgument | LockLost, Exclude<R, Scope.Scope>> =>
    prepared(resources, options, true, (target, settings) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(restore(take(target, settings)), (taken) =>
          Option.isNone(taken)
            ? Effect.succeedNone
            : Effect.asSome(guard(body, taken.value, restore, clock)))
      ))

  const withLock: WithLock = dual(
    isBody,
    <A, E, R>(body: Body<A, E, R>, resources: Resources, options?: AcquireOptions) =>
      operation("Redlock.withLock", (clock) =>
        Effect.map(
          withLockIn(body, resources, options, clock, (target, settings) =>
            Effect.asSome(engine.lock(instance, target, settings, clock))),
          Option.getOrThrow
        ))
  )

  const tryWithLock: TryWithLock = dual(
    isBody,
    <A, E, R>(body: Body<A, E, R>, resources: Resources, options?: AcquireOptions) =>
      operation("Redlock.tryWithLock", (clock) =>
        withLockIn(body, resources, options, clock, (target, settings) =>
          engine.tryLock(instance, target, settings, clock)))
  )

  const service: Redlock.Service = {
    nodes: instance.nodes.length,
    quorum: instance.quorum,
    acquire: (resources, options) => operation("Redlock.acquire", acquireIn(resources, options)),
    tryAcquire: (resources, options) => operation("Redlock.tryAcquire", tryAcquireIn(resources, options)),
    withLock,
    tryWithLock,
    lock: (resources, options) =>
      operation("Redlock.lock", (clock) =>
        prepared(resources, options, undefined, (target, settings) => engine.lock(instance, target, settings, clock))),
    extend: (lock, ttl) =>
      operation("Redlock.extend", () => {
        if (!(lock instanceof LockState)) return Effect.fail(notALock())
        const settings = ttl === undefined
          ? Effect.succeed(lock.settings)
          : options_.validate(() => options_.resolve(lock.settings, { ttl }, undefined))
        return Effect.flatMap(settings, (settings) => engine.extend(lock, settings))
      }),
    // Release cannot fail: a value that is not a lock handle got past the types, a defect.
    release: (lock) =>
      operation(
        "Redlock.release",
        (clock) => lock instanceof LockState ? engine.release(lock, clock) : Effect.die(notALock())
      )
  }
  engines.set(service, instance)
  return service
}
