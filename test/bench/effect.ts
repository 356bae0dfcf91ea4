/**
 * effect-redlock measured the way an Effect user runs it: every worker loop inside ONE Effect
 * program (`Effect.runPromise` once per run), the Redlock instance made in that program's scope.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Scope from "effect/Scope"
import type { Redis } from "ioredis"
import type * as Lock from "../../src/Lock.js"
import type * as RedlockTypes from "../../src/Redlock.js"
import { Redlock } from "./library.js"
import { type PromiseLocker, Recorder, type RunSample, type Scenario } from "./workload.js"

/**
 * - lock: `redlock.lock` then `redlock.release` in the loop;
 * - acquire: `Effect.scoped(redlock.acquire(...) *> hold)`, release as the scope's finalizer;
 * - withLock: `redlock.withLock(hold, resource)` (automatic extension on, as by default).
 */
export type EffectVariant = "lock" | "acquire" | "withLock"

/** An acquire and a release as effects: what the `lock` variant's loop drives. */
export interface EffectLocker<H> {
  readonly lock: (resource: string) => Effect.Effect<H, unknown>
  readonly release: (handle: H) => Effect.Effect<unknown, unknown>
}

/**
 * How a worker runs one cycle: `lock` then the critical section then `release` (a locker), or one
 * effect that brackets the critical section itself (`acquire`, `withLock`).
 */
type Driver<H> =
  | { readonly _tag: "locker"; readonly locker: EffectLocker<H> }
  | { readonly _tag: "bracket"; readonly cycle: (resource: string, held: Effect.Effect<number>) => Effect.Effect<number, unknown> }

export const runEffectWorkload = (
  clients: ReadonlyArray<Redis>,
  options: RedlockTypes.InstanceOptions,
  variant: EffectVariant,
  scenario: Scenario,
  prefix: string
): Promise<RunSample> =>
  runEffectDriver(
    Effect.map(Redlock.make({ ...options, clients }), (redlock): Driver<Lock.Lock> => {
      switch (variant) {
        case "lock":
          return { _tag: "locker", locker: { lock: (resource) => redlock.lock(resource), release: redlock.release } }
        case "acquire":
          return { _tag: "bracket", cycle: (resource, held) => Effect.scoped(Effect.zipRight(redlock.acquire(resource), held)) }
        case "withLock":
          return { _tag: "bracket", cycle: (resource, held) => redlock.withLock(held, resource) }
      }
    }),
    scenario,
    prefix
  )

/**
 * How a yardstick drives a Promise locker from Effect: `locker`, an acquire and a release in the
 * loop; `scoped`, the idiomatic scoped resource, `Effect.scoped(Effect.acquireRelease(acquire,
 * release) *> hold)`.
 */
export type LockerForm = "locker" | "scoped"

/**
 * Drives a Promise locker from an Effect program with one `Effect.async` per operation: the least
 * any Effect library can pay on top of the same commands (the floor's, for the `effect floor`).
 */
export const runEffectLockerWorkload = <H>(
  locker: PromiseLocker<H>,
  form: LockerForm,
  scenario: Scenario,
  prefix: string
): Promise<RunSample> => {
  const effectLocker: EffectLocker<H> = {
    lock: (resource) => fromPromise(() => locker.acquire(resource)),
    release: (handle) => fromPromise(() => locker.release(handle))
  }
  const driver: Driver<H> = form === "locker" ? { _tag: "locker", locker: effectLocker } : {
    _tag: "bracket",
    cycle: (resource, held) =>
      Effect.scoped(Effect.zipRight(Effect.acquireRelease(effectLocker.lock(resource), (handle) => Effect.orDie(effectLocker.release(handle))), held))
  }
  return runEffectDriver(Effect.succeed(driver), scenario, prefix)
}

/** A promise as one `Effect.async`, its rejection as the failure. */
export const fromPromise = <A>(run: () => PromiseLike<A>): Effect.Effect<A, unknown> =>
  Effect.async<A, unknown>((resume) => {
    run().then((value) => resume(Effect.succeed(value)), (error: unknown) => resume(Effect.fail(error)))
  })

const runEffectDriver = <H>(
  setup: Effect.Effect<Driver<H>, unknown, Scope.Scope>,
  scenario: Scenario,
  prefix: string
): Promise<RunSample> =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const driver = yield* Effect.orDie(setup)
    const recorder = new Recorder(scenario, prefix)
    const hold = Duration.millis(scenario.holdMs)
    const exit = Effect.sync(() => recorder.exit())
    /** The critical section; succeeds with the time the lock was acquired. */
    const held: Effect.Effect<number> = scenario.holdMs > 0
      ? Effect.suspend(() => {
        const t1 = performance.now()
        recorder.enter()
        return Effect.as(Effect.ensuring(Effect.sleep(hold), exit), t1)
      })
      : Effect.sync(() => {
        const t1 = performance.now()
        recorder.enter()
        recorder.exit()
        return t1
      })

    const worker = (w: number) =>
      Effect.gen(function*() {
        for (let i = 0; recorder.more(i); i++) {
          const resource = recorder.resourceOf(w, i)
          const t0 = performance.now()
          let t1: number
          if (driver._tag === "locker") {
            const acquired = yield* Effect.either(driver.locker.lock(resource))
            if (Either.isLeft(acquired)) {
              recorder.failure()
              continue
            }
            t1 = yield* held
            yield* driver.locker.release(acquired.right)
          } else {
            const result = yield* Effect.either(driver.cycle(resource, held))
            if (Either.isLeft(result)) {
              recorder.failure()
              continue
            }
            t1 = result.right
          }
          recorder.cycle(w, t0, t1, performance.now())
        }
      })

    yield* Effect.sync(() => recorder.begin())
    if (scenario.workers === 1) {
      yield* worker(0)
    } else {
      yield* Effect.forEach(Array.from({ length: scenario.workers }, (_, w) => w), worker, {
        concurrency: "unbounded",
        discard: true
      })
    }
    return recorder.finish()
  })))

/** One lock + release outside any measurement (connection and script cache warm). */
export const primeEffect = (clients: ReadonlyArray<Redis>, options: RedlockTypes.InstanceOptions, resource: string) =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const redlock = yield* Redlock.make({ ...options, clients })
    const lock = yield* redlock.lock(resource)
    yield* redlock.release(lock)
  })))
