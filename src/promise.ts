/**
 * A Promise façade for node-redlock users: the v5 API (`acquire` / `release` / `extend` /
 * `using`), the v2–v4 names (`lock` / `unlock`, Node-style callbacks, bluebird's `disposer`) and
 * node-redlock's settings, running on effect-redlock underneath. No Effect knowledge needed.
 *
 * @example
 * ```ts
 * import Redlock from "effect-redlock/promise"
 *
 * const redlock = new Redlock([redisA, redisB, redisC], { retryCount: 10, retryDelay: 200 })
 * const lock = await redlock.acquire(["account:42"], 5000)
 * try { await transfer() } finally { await lock.release() }
 * ```
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import { constVoid } from "effect/Function"
import * as Option from "effect/Option"
import { EventEmitter, setMaxListeners } from "node:events"
import { createRequire } from "node:module"
import { type Engine, firstAttempt, lossAtRelease, retryAfter, startRelease, type Target } from "./internal/engine.js"
import { liveClock } from "./internal/fanout.js"
import { makeInstance } from "./internal/instance.js"
import { LockState } from "./internal/lock.js"
import type { Client } from "./internal/node.js"
import { minThresholdMs } from "./internal/quorum.js"
import type { Settings as InternalSettings } from "./internal/options.js"
import { engineOf, targetOf } from "./internal/service.js"
import * as EffectLock from "./Lock.js"
import * as Redlock_ from "./Redlock.js"
import { type InvalidArgument, isRedlockError, type RedlockError } from "./RedlockError.js"

/**
 * node-redlock's settings.
 *
 * @since 0.1.0
 * @category models
 */
export interface Settings {
  /** Clock drift allowance as a fraction of the duration. */
  readonly driftFactor: number
  /** Retries after the first attempt; -1 retries until the lock is free. */
  readonly retryCount: number
  /** Milliseconds between attempts. */
  readonly retryDelay: number
  /** Up to this many milliseconds are added to or taken from each delay at random. */
  readonly retryJitter: number
  /**
   * `using` extends the lock when this many milliseconds of it are left (under 7 ms, which could
   * never extend in time: when a third of the duration is left).
   */
  readonly automaticExtensionThreshold: number
  /**
   * effect-redlock's own: take a fencing token with every lock (`Lock.fencingToken`), a number
   * that grows with each lock of the same resources. See the README's "Fencing tokens". Off by
   * default; `using` never takes one (its routine could not read it).
   */
  readonly fencing?: boolean | undefined
}

/**
 * node-redlock v5's defaults.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultSettings: Required<Settings> = {
  driftFactor: 0.01,
  retryCount: 10,
  retryDelay: 200,
  retryJitter: 100,
  automaticExtensionThreshold: 500,
  fencing: false
}

/**
 * An operation failed: the cause is the typed effect-redlock error (`LockContended`,
 * `QuorumUnavailable`, `LockLost` or `InvalidArgument`).
 *
 * @since 0.1.0
 * @category errors
 */
export class ExecutionError extends Error {
  /** How many attempts were made (0 when none was). */
  readonly attempts: number
  /** The typed effect-redlock error. */
  override readonly cause: RedlockError

  constructor(cause: RedlockError) {
    super(cause.message)
    this.name = "ExecutionError"
    this.cause = cause
    this.attempts = "attempts" in cause ? cause.attempts : 0
  }
}

/**
 * The resources are held by another owner (the `LockContended` case of `ExecutionError`).
 *
 * @since 0.1.0
 * @category errors
 */
export class ResourceLockedError extends ExecutionError {
  constructor(cause: RedlockError) {
    super(cause)
    this.name = "ResourceLockedError"
  }
}

/**
 * node-redlock v2–v4's name for a failed lock operation.
 *
 * @since 0.1.0
 * @category errors
 */
export const LockError = ExecutionError

/**
 * The signal `using` hands its routine: aborted, with `error` set, when the lock is lost.
 *
 * @since 0.1.0
 * @category models
 */
export type RedlockAbortSignal = AbortSignal & { error?: Error }

/**
 * A Node-style callback, as node-redlock v2–v4 accept.
 *
 * @since 0.1.0
 * @category models
 */
export type Callback<A> = (error: Error | null, result?: A) => void

/**
 * A bluebird `Disposer`, as node-redlock v2–v4's `disposer` returns: bluebird's `Promise.using`
 * takes it, runs the routine with the lock, and releases the lock when the routine settles.
 *
 * @since 0.1.0
 * @category models
 */
export interface Disposer<R> {
  /** bluebird's: the promise of the resource (the lock). */
  promise(): PromiseLike<R>
  /** bluebird's: the resource, once its promise resolved. */
  resource(): unknown
  /** bluebird's: runs the disposal (the release). */
  tryDispose(inspection: unknown): unknown
}

/** As much of bluebird's `Promise` class as `disposer` uses. */
interface Bluebird {
  resolve<A>(value: PromiseLike<A>): { disposer(dispose: (value: A) => unknown): Disposer<A> }
}

let bluebird: Bluebird | undefined

/** bluebird, loaded on the first `disposer` call: an optional peer dependency. */
const loadBluebird = (): Bluebird => {
  if (bluebird === undefined) {
    try {
      bluebird = createRequire(import.meta.url)("bluebird") as Bluebird
    } catch (error) {
      if ((error as { code?: unknown } | null)?.code !== "MODULE_NOT_FOUND") throw error
      throw new TypeError(
        "effect-redlock/promise: disposer returns a bluebird Disposer and needs the bluebird package " +
          "(npm install bluebird); without it, use using or await using",
        { cause: error }
      )
    }
  }
  return bluebird
}

const toError = (error: RedlockError): ExecutionError =>
  error._tag === "LockContended" ? new ResourceLockedError(error) : new ExecutionError(error)

/**
 * Runs an operation; effect-redlock errors become `ExecutionError`s, other failures stay as they
 * are, and a defect that is no `Error` becomes one.
 */
const runOn = <A>(
  runtime: ManagedRuntime.ManagedRuntime<Redlock_.Redlock, InvalidArgument>,
  effect: Effect.Effect<A, unknown, Redlock_.Redlock>,
  signal: AbortSignal
): Promise<A> =>
  runtime.runPromiseExit(effect, { signal }).then((exit) => {
    if (Exit.isSuccess(exit)) return exit.value
    if (signal.aborted && Cause.isInterruptedOnly(exit.cause)) throw quitError()
    const failure = Cause.failureOption(exit.cause)
    if (Option.isSome(failure)) {
      throw isRedlockError(failure.value) ? toError(failure.value) : failure.value
    }
    const defect = Cause.squash(exit.cause)
    throw defect instanceof Error ? defect : new Error(String(defect))
  })

/** An abort controller whose signal any number of running operations may listen to at once. */
const stopper = (): AbortController => {
  const controller = new AbortController()
  setMaxListeners(0, controller.signal)
  return controller
}

/** What an operation rejects with once `quit()` was called. */
const quitError = () => new Error("effect-redlock/promise: quit() was called; this Redlock takes no more operations")

/** Calls `callback` when given, keeping the returned promise handled. */
const withCallback = <A>(promise: Promise<A>, callback: Callback<A> | undefined): Promise<A> => {
  if (callback !== undefined) promise.then((result) => callback(null, result), (error: Error) => callback(error))
  return promise
}

const lockOptions = (settings: Settings, duration: number): Redlock_.LockOptions => {
  const jitter = settings.retryDelay > 0 ? Math.min(settings.retryJitter / settings.retryDelay, 0.99) : 0
  return {
    ttl: duration,
    retry: {
      times: settings.retryCount < 0 ? Infinity : settings.retryCount,
      delay: Math.max(settings.retryDelay, 1),
      jitter: Math.max(jitter, 0)
    },
    fencing: settings.fencing ?? false
  }
}

/**
 * A held lock, as node-redlock returns it. `await using lock = await redlock.acquire(...)` releases
 * it when the block ends, whatever happens.
 *
 * @since 0.1.0
 * @category models
 */
export class Lock {
  constructor(
    /** The Redlock that took it. */
    readonly redlock: Redlock,
    /** The effect-redlock handle underneath. */
    readonly handle: EffectLock.Lock
  ) {}

  /** The locked resources. */
  get resources(): Array<string> {
    return [...this.handle.resources]
  }

  /** node-redlock v2–v4: the resource (or the resources, for a multi-resource lock). */
  get resource(): string | Array<string> {
    return this.handle.resources.length === 1 ? this.handle.resources[0]! : this.resources
  }

  /** The owner value stored in the keys. */
  get value(): string {
    return this.handle.value
  }

  /** How many attempts the acquisition took. */
  get attempts(): number {
    return this.handle.attempts
  }

  /** Until when the lock is guaranteed, in epoch milliseconds. */
  get expiration(): number {
    return this.handle.expiresAt
  }

  /** With `fencing`, the lock's fencing token (else undefined). */
  get fencingToken(): number | undefined {
    return this.handle.fencingToken
  }

  /** Releases the lock. */
  release(): Promise<Redlock_.ReleaseReport> {
    return this.redlock.release(this)
  }

  /**
   * Releases the lock at the end of an `await using` block. Never rejects: an expired or taken
   * lock is reported by `release` as usual, and after `quit()` the keys are left to expire.
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.redlock.release(this).then(() => undefined, () => undefined)
  }

  /** node-redlock v2–v4: releases the lock, with an optional callback. */
  unlock(callback?: Callback<Redlock_.ReleaseReport>): Promise<Redlock_.ReleaseReport> {
    return this.redlock.unlock(this, callback)
  }

  /** Extends the lock to `duration` ms from now; resolves to the (same, updated) lock. */
  extend(duration: number, callback?: Callback<Lock>): Promise<Lock> {
    return this.redlock.extend(this, duration, callback)
  }
}

/**
 * node-redlock's `Redlock` class on effect-redlock: the same constructor, methods and settings.
 *
 * Events: each node call that fails or times out while its operation still waits for it is
 * emitted as `clientError` (node-redlock v2–v4) and, when an `error` listener is registered, as
 * `error` (v5), with the error and the node's label (`host:port`, `cluster`, or the Sentinel
 * master's name and addresses). A call that fails after its operation was decided is not
 * emitted (v4 emitted every one), except a release's: done on a quorum, it still watches the
 * other nodes until each answers or times out. Unlike v5, a node that answers "held by another
 * owner" is not an `error` event: that is the operation's result (`ResourceLockedError`).
 *
 * @since 0.1.0
 * @category constructors
 */
export class Redlock extends EventEmitter {
  /** node-redlock v2–v4's `Redlock.LockError`, for `instanceof` checks. */
  static readonly LockError = ExecutionError

  /** The settings in force (node-redlock's defaults, overridden by the constructor's). */
  readonly settings: Settings
  /** The clients, one vote each. */
  readonly clients: ReadonlySet<Client>
  private readonly runtime: ManagedRuntime.ManagedRuntime<Redlock_.Redlock, InvalidArgument>

  /** The instance's engine, once the runtime is built: `acquire` and `release` run on it directly. */
  private engine: Engine | undefined = undefined
  /** Set by `quit()`. */
  private closed = false
  /** Aborted by `quit()`: interrupts the operations still running (retrying, say). */
  private readonly stopping = stopper()

  constructor(clients: Iterable<Client>, settings: Partial<Settings> = {}) {
    super()
    this.settings = { ...defaultSettings, ...settings }
    const list = [...clients]
    this.clients = new Set(list)
    // Bad clients or settings surface on the first operation, as an ExecutionError.
    this.runtime = ManagedRuntime.make(
      Layer.scoped(
        Redlock_.Redlock,
        makeInstance({ clients: list, driftFactor: this.settings.driftFactor }, (node, error) => this.nodeFailed(node, error))
      )
    )
  }

  /**
   * Runs an operation on the instance. After `quit()` it rejects with an `Error` that says so, and
   * so does one still running when `quit()` is called: it is interrupted.
   */
  private run<A>(effect: Effect.Effect<A, unknown, Redlock_.Redlock>): Promise<A> {
    return this.closed ? Promise.reject(quitError()) : runOn(this.runtime, effect, this.stopping.signal)
  }

  /**
   * Emits a node's failure after the round's callback has returned, so that a listener cannot
   * disturb it; each event on its own, so that a throwing `clientError` listener does not cost the
   * `error` event. Nothing after `quit()`.
   */
  private nodeFailed(node: string, error: Error): void {
    if (this.closed) return
    queueMicrotask(() => this.emit("clientError", error, node))
    // Checked when emitting: an `error` event without a listener would throw.
    queueMicrotask(() => this.listenerCount("error") > 0 && this.emit("error", error, node))
  }

  /**
   * Acquires a lock on the resources for `duration` ms (node-redlock v5). The first attempt runs
   * on the engine itself, without a fiber; retries, and everything before the instance is built,
   * run as effects.
   */
  acquire(resources: string | ReadonlyArray<string>, duration: number, settings?: Partial<Settings>): Promise<Lock> {
    const options = lockOptions({ ...this.settings, ...settings }, duration)
    const held = (handle: EffectLock.Lock) => new Lock(this, handle)
    const { engine } = this
    if (engine === undefined) {
      // The first call builds the instance, and keeps its engine for the next ones.
      const locked = Effect.flatMap(Redlock_.Redlock, (service) => {
        this.engine = engineOf(service)
        return service.lock(resources, options)
      })
      return this.run(locked).then(held)
    }
    let target: Target
    let resolved: InternalSettings
    try {
      ;({ settings: resolved, target } = targetOf(engine, resources, options, undefined))
    } catch (error) {
      return Promise.reject(isRedlockError(error) ? toError(error) : error)
    }
    // Waiters of this instance are queued on these keys: take a place behind them, as `lock` does.
    if (engine.waker?.isQueued(target.keys)) return this.run(Redlock_.lock(resources, options)).then(held)
    return firstAttempt(engine, target, resolved, liveClock).then((result) =>
      result instanceof LockState
        ? held(result)
        : this.run(retryAfter(engine, target, resolved, liveClock, result)).then(held)
    )
  }

  /** node-redlock v2–v4: acquires a lock, with an optional callback. */
  lock(resources: string | ReadonlyArray<string>, ttl: number, callback?: Callback<Lock>): Promise<Lock> {
    return withCallback(this.acquire(resources, ttl), callback)
  }

  /**
   * Releases a lock: resolves as soon as a quorum of nodes deleted its keys (the other deletes
   * still land), else once every node answered. Never rejects for an expired or taken lock (the
   * report says per node).
   */
  release(lock: Lock, _settings?: Partial<Settings>): Promise<Redlock_.ReleaseReport> {
    const { handle } = lock
    if (!(handle instanceof LockState) || this.engine === undefined) return this.run(Redlock_.release(handle))
    return new Promise((resolve) => startRelease(handle, liveClock, handle.engine.nodes.length, resolve))
  }

  /** node-redlock v2–v4: releases a lock, with an optional callback. */
  unlock(lock: Lock, callback?: Callback<Redlock_.ReleaseReport>): Promise<Redlock_.ReleaseReport> {
    return withCallback(this.release(lock), callback)
  }

  /**
   * node-redlock v2–v4: a bluebird `Disposer` for bluebird's `Promise.using`, which takes the lock,
   * runs the routine with it, and releases it when the routine settles (`using` settles after the
   * release). `errorHandler` is told when the release deletes the keys on fewer than a majority of
   * the nodes — an `ExecutionError` whose cause is a `LockLost` (`expired`, or `unavailable` when
   * the nodes could not say): the routine may have run unprotected — and when it cannot run at all
   * (after `quit()`). Like v4, an `errorHandler` that throws is thrown by bluebird outside any
   * promise. Needs the `bluebird` package (an optional peer dependency); throws a `TypeError`
   * without it, or for an `errorHandler` that is not a function, before any call. With `@types/bluebird`, annotate the routine's parameter (`lock: Lock`): bluebird's
   * `Disposer` type is an empty class that carries no type to infer from.
   *
   * @example
   * ```ts
   * import Bluebird from "bluebird"
   *
   * await Bluebird.using(redlock.disposer("account:42", 5000, console.error), (lock: Lock) => transfer())
   * ```
   */
  disposer(
    resources: string | ReadonlyArray<string>,
    ttl: number,
    errorHandler?: ((error: Error) => void) | null
  ): Disposer<Lock> {
    if (errorHandler !== undefined && errorHandler !== null && typeof errorHandler !== "function") {
      throw new TypeError("effect-redlock/promise: disposer's errorHandler must be a function")
    }
    const handle = errorHandler ?? constVoid
    return loadBluebird().resolve(this.acquire(resources, ttl)).disposer((lock) =>
      this.release(lock).then((report) => {
        const lost = lock.handle instanceof LockState ? lossAtRelease(lock.handle, report) : undefined
        if (lost !== undefined) handle(new ExecutionError(lost))
      }, handle)
    )
  }

  /** Extends a lock to `duration` ms from now; rejects with an `ExecutionError` (cause `LockLost`). */
  extend(lock: Lock, duration: number, settingsOrCallback?: Partial<Settings> | Callback<Lock>): Promise<Lock> {
    const callback = typeof settingsOrCallback === "function" ? settingsOrCallback : undefined
    return withCallback(this.run(Redlock_.extend(lock.handle, duration)).then(() => lock), callback)
  }

  /**
   * Runs `routine` while holding the lock, extending it automatically; the routine's signal is
   * aborted (with `signal.error`) if the lock is lost. Releases the lock when the routine ends.
   */
  using<T>(
    resources: string | ReadonlyArray<string>,
    duration: number,
    settingsOrRoutine: Partial<Settings> | ((signal: RedlockAbortSignal) => Promise<T>),
    maybeRoutine?: (signal: RedlockAbortSignal) => Promise<T>
  ): Promise<T> {
    const routine = typeof settingsOrRoutine === "function" ? settingsOrRoutine : maybeRoutine
    const settings = { ...this.settings, ...(typeof settingsOrRoutine === "function" ? {} : settingsOrRoutine) }
    if (routine === undefined) return Promise.reject(new TypeError("using needs a routine"))
    const controller = new AbortController()
    const signal: RedlockAbortSignal = controller.signal
    // node-redlock takes any threshold; one under the least the Effect API takes could never
    // extend in time, so the lock extends at the default instead (a third of the duration).
    const threshold = Math.min(settings.automaticExtensionThreshold, duration - 1)
    const program = Effect.scoped(Effect.gen(function*() {
      const lock = yield* Redlock_.acquire(resources, {
        ...lockOptions(settings, duration),
        fencing: false,
        autoExtend: threshold >= minThresholdMs ? { threshold } : true
      })
      yield* Effect.forkScoped(
        Effect.flatMap(Effect.flip(EffectLock.awaitLost(lock)), (lost) =>
          Effect.sync(() => {
            signal.error = toError(lost)
            controller.abort(signal.error)
          }))
      )
      return yield* Effect.tryPromise({ try: () => routine(signal), catch: (error) => error })
    }))
    return this.run(program)
  }

  /**
   * Stops the façade and closes the clients, as node-redlock's `quit` does. Operations still
   * running (an acquisition retrying, say) are stopped and reject, as every later one does, with
   * an `Error` that says `quit()` was called.
   */
  async quit(callback?: Callback<void>): Promise<void> {
    // From now on every operation rejects with an Error that says quit() was called, and those
    // still running are interrupted.
    this.engine = undefined
    this.closed = true
    this.stopping.abort()
    const done = this.runtime.dispose().then(() =>
      Promise.all([...this.clients].map((client) => client.quit().catch(() => client.disconnect())))
    ).then(() => undefined)
    return withCallback(done, callback)
  }
}

/**
 * The `Redlock` class as the default export, as node-redlock has it.
 *
 * @since 0.1.0
 * @category constructors
 */
export default Redlock
