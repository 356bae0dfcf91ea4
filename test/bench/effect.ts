/**
 * effect-redlock measured the way an Effect user runs it: every worker loop inside ONE Effect
 * program (`Effect.runPromise` once per run), the Redlock instance made in that program's scope.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type { Redis } from "ioredis"
import type * as RedlockTypes from "../../src/Redlock.js"
import { Redlock } from "./library.js"
import { Recorder, type RunSample, type Scenario } from "./workload.js"

/**
 * - lock: `redlock.lock` then `redlock.release` in the loop;
 * - acquire: `Effect.scoped(redlock.acquire(...) *> hold)`, release as the scope's finalizer;
 * - withLock: `redlock.withLock(hold, resource)` (automatic extension on, as by default).
 */
export type EffectVariant = "lock" | "acquire" | "withLock"

export const runEffectWorkload = (
  clients: ReadonlyArray<Redis>,
  options: RedlockTypes.InstanceOptions,
  variant: EffectVariant,
  scenario: Scenario,
  prefix: string
): Promise<RunSample> =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const redlock = yield* Redlock.make({ ...options, clients })
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
          if (variant === "lock") {
            const acquired = yield* Effect.either(redlock.lock(resource))
            if (Either.isLeft(acquired)) {
              recorder.failure()
              continue
            }
            t1 = yield* held
            yield* redlock.release(acquired.right)
          } else {
            const cycle = variant === "acquire"
              ? Effect.scoped(Effect.zipRight(redlock.acquire(resource), held))
              : redlock.withLock(held, resource)
            const result = yield* Effect.either(cycle)
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
