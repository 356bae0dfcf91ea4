/**
 * The implementations side by side: effect-redlock (three ways of using it), the raw-ioredis floor
 * and the Node peers. Each is built over fresh ioredis clients for every run, warmed by one cycle
 * outside the measurement, and given comparable settings: ttl 10 s, its own default retry delay,
 * and enough retries that waits under contention do not fail.
 */
import { Redlock as SesameRedlock } from "@sesamecare-oss/redlock"
import type { Redis } from "ioredis"
import { createHash, randomUUID } from "node:crypto"
import { setTimeout as sleep } from "node:timers/promises"
import { RedlockMutex } from "redis-semaphore"
import { createRedlock, IoredisAdapter, type Lock as UniversalLock, type LockHandle } from "redlock-universal"
import Redlock4 from "redlock4"
import Redlock5 from "redlock5"
import type * as Redlock from "../../src/Redlock.js"
import { type EffectVariant, type LockerForm, primeEffect, runEffectLockerWorkload, runEffectWorkload } from "./effect.js"
import { PromiseRedlock } from "./library.js"
import { type PromiseLocker, runPromiseWorkload, type RunSample, type Scenario } from "./workload.js"

export interface BenchSettings {
  readonly ttlMs: number
  /** Retries after the first attempt, for every implementation that counts them. */
  readonly retryCount: number
  /** Longest wait for implementations that bound acquisition by time instead. */
  readonly acquireTimeoutMs: number
  /** The floor's pause between attempts (it has no default of its own): node-redlock's. */
  readonly floorRetryDelayMs: number
  readonly floorRetryJitterMs: number
}

/**
 * floor: the reference every ratio divides by; effect: effect-redlock; peer: another library;
 * reference: a yardstick shown beside them but in no summary (the floor run from Effect).
 */
export type Kind = "floor" | "effect" | "peer" | "reference"

/** Runs one scenario; made by `prepare` over a run's fresh clients. */
export type Runner = (scenario: Scenario, prefix: string) => Promise<RunSample>

export interface Impl {
  readonly name: string
  readonly kind: Kind
  /** How it is driven and which retry policy it runs under contention. */
  readonly description: string
  readonly prepare: (clients: ReadonlyArray<Redis>, settings: BenchSettings) => Promise<Runner>
}

const primeKey = (name: string) => `bench:prime:${name}`

const promiseImpl = <H>(
  name: string,
  kind: Kind,
  description: string,
  make: (clients: ReadonlyArray<Redis>, settings: BenchSettings) => PromiseLocker<H> | Promise<PromiseLocker<H>>
): Impl => ({
  name,
  kind,
  description,
  prepare: async (clients, settings) => {
    const locker = await make(clients, settings)
    await locker.release(await locker.acquire(primeKey(name)))
    return (scenario, prefix) => runPromiseWorkload(locker, scenario, prefix)
  }
})

// ---------------------------------------------------------------------------------------------
// The raw-ioredis floor: the least a correct Redlock must do.
// ---------------------------------------------------------------------------------------------

const releaseSource = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`
const releaseSha = createHash("sha1").update(releaseSource).digest("hex")

const isNoScript = (error: unknown): boolean => error instanceof Error && error.message.startsWith("NOSCRIPT")

interface FloorHandle {
  readonly key: string
  readonly value: string
}

/** Node states in one attempt (0: no answer yet, or an error). */
const GRANTED = 1
const DENIED = 2

interface Attempt {
  readonly won: boolean
  /** Per node: 0 (no answer yet, or an error: the SET may still land), GRANTED, DENIED. */
  readonly states: Uint8Array
}

/**
 * SET NX PX on every node at once; resolves as soon as a majority said OK (or can no longer say
 * it). Release: a compare-and-delete script loaded beforehand, by EVALSHA with an EVAL fallback
 * on NOSCRIPT, on every node. A lost attempt deletes its value only where it may have landed
 * (granted or unanswered nodes), then pauses 200 ms ± 100 ms like node-redlock.
 */
export class Floor implements PromiseLocker<FloorHandle> {
  private readonly quorum: number
  private readonly validityMs: number

  constructor(private readonly clients: ReadonlyArray<Redis>, private readonly settings: BenchSettings) {
    this.quorum = Math.floor(clients.length / 2) + 1
    this.validityMs = settings.ttlMs - (Math.round(settings.ttlMs * 0.01) + 2)
  }

  async load(): Promise<void> {
    await Promise.all(this.clients.map((client) => client.script("LOAD", releaseSource)))
  }

  private attempt(key: string, value: string): Promise<Attempt> {
    const { clients, quorum } = this
    const count = clients.length
    const ttlMs = this.settings.ttlMs
    return new Promise((resolve) => {
      const states = new Uint8Array(count)
      let granted = 0
      let against = 0
      let done = false
      const lose = () => {
        if (++against > count - quorum && !done) {
          done = true
          resolve({ won: false, states })
        }
      }
      for (let index = 0; index < count; index++) {
        clients[index]!.set(key, value, "PX", ttlMs, "NX").then((reply) => {
          if (reply === "OK") {
            states[index] = GRANTED
            if (++granted >= quorum && !done) {
              done = true
              resolve({ won: true, states })
            }
          } else {
            states[index] = DENIED
            lose()
          }
        }, lose)
      }
    })
  }

  private del(client: Redis, key: string, value: string): Promise<unknown> {
    return client.evalsha(releaseSha, 1, key, value).catch((error: unknown) =>
      isNoScript(error) ? client.eval(releaseSource, 1, key, value) : Promise.reject(error)
    )
  }

  async acquire(key: string): Promise<FloorHandle> {
    const { clients, settings } = this
    for (let attempt = 0;; attempt++) {
      const value = randomUUID()
      const start = Date.now()
      const { states, won } = await this.attempt(key, value)
      if (won && Date.now() - start < this.validityMs) return { key, value }
      const cleanUp: Array<Promise<unknown>> = []
      for (let index = 0; index < clients.length; index++) {
        if (states[index] !== DENIED) cleanUp.push(this.del(clients[index]!, key, value).catch(() => 0))
      }
      await Promise.all(cleanUp)
      if (attempt >= settings.retryCount) throw new Error(`floor: no quorum after ${attempt + 1} attempts`)
      const jitter = Math.floor((Math.random() * 2 - 1) * settings.floorRetryJitterMs)
      await sleep(Math.max(0, settings.floorRetryDelayMs + jitter))
    }
  }

  release(handle: FloorHandle): Promise<unknown> {
    return Promise.all(this.clients.map((client) => this.del(client, handle.key, handle.value)))
  }
}

/** The benchmark's settings: ttl 10 s, retries enough never to give up inside a window. */
export const benchSettings: BenchSettings = {
  ttlMs: 10_000,
  retryCount: 1000,
  acquireTimeoutMs: 120_000,
  floorRetryDelayMs: 200,
  floorRetryJitterMs: 100
}

/** A floor over `clients` (with the benchmark's settings unless told), its script loaded. */
export const loadFloor = async (clients: ReadonlyArray<Redis>, settings = benchSettings): Promise<Floor> => {
  const locker = new Floor(clients, settings)
  await locker.load()
  return locker
}

export const floor: Impl = promiseImpl(
  "floor",
  "floor",
  "raw ioredis: SET NX PX on all nodes, resolve at majority; EVALSHA compare-and-delete; retry 200±100 ms",
  loadFloor
)

/** The floor's commands driven from an Effect program, one `Effect.async` per acquire and release. */
const effectFloorImpl = (name: string, form: LockerForm, description: string): Impl => ({
  name,
  kind: "reference",
  description,
  prepare: async (clients, settings) => {
    const locker = await loadFloor(clients, settings)
    await locker.release(await locker.acquire(primeKey(name)))
    return (scenario, prefix) => runEffectLockerWorkload(locker, form, scenario, prefix)
  }
})

/** What the Effect runtime alone costs on top of the floor's commands: the least an Effect library can reach. */
export const effectFloor = effectFloorImpl(
  "floor/effect",
  "locker",
  "the floor's acquire / release, each one Effect.async, in one Effect program like effect-redlock's"
)

/** The same as the idiomatic scoped resource: what any Effect library's scoped lock costs (compare with acquire). */
export const effectFloorScoped = effectFloorImpl(
  "floor/effect:scoped",
  "scoped",
  "as floor/effect, as a scoped resource: Effect.scoped(Effect.acquireRelease(acquire, release) *> hold)"
)

// ---------------------------------------------------------------------------------------------
// effect-redlock
// ---------------------------------------------------------------------------------------------

/** Wake-up sources measured: keyspace notifications (the nodes here announce deletions) and the default PUBLISH. */
type WakeUp = "keyspace" | "publish"

const effectOptions = (settings: BenchSettings, wakeUp: WakeUp): Redlock.InstanceOptions => ({
  ttl: settings.ttlMs,
  // The default delay and jitter (200 ms ± 50 %), with enough retries.
  retry: { times: settings.retryCount },
  wakeUp
})

const effectImpl = (variant: EffectVariant, wakeUp: WakeUp, description: string, fencing = false): Impl => {
  const name = `effect-redlock:${variant}${wakeUp === "publish" ? "/publish" : ""}${fencing ? "/fenced" : ""}`
  return {
    name,
    kind: "effect",
    description,
    prepare: async (clients, settings) => {
      const options = { ...effectOptions(settings, wakeUp), fencing }
      await primeEffect(clients, options, primeKey(name))
      return (scenario, prefix) => runEffectWorkload(clients, options, variant, scenario, prefix)
    }
  }
}

export const effectLock = effectImpl(
  "lock",
  "keyspace",
  "one Effect program: redlock.lock + redlock.release; wake-ups from keyspace events; retry 200 ms ± 50 %"
)
export const effectAcquire = effectImpl(
  "acquire",
  "keyspace",
  "one Effect program: Effect.scoped(redlock.acquire *> hold); wake-ups from keyspace events; retry 200 ms ± 50 %"
)
export const effectWithLock = effectImpl(
  "withLock",
  "keyspace",
  "one Effect program: redlock.withLock(hold, resource), auto-extension on; wake-ups from keyspace events; retry 200 ms ± 50 %"
)
export const effectLockPublish = effectImpl(
  "lock",
  "publish",
  "as effect-redlock:lock with the default wake-ups: the release script PUBLISHes; retry 200 ms ± 50 %"
)

export const effectLockFenced = effectImpl(
  "lock",
  "keyspace",
  "as effect-redlock:lock with fencing tokens (fencing: true): the acquire is a Lua script, not SET NX",
  true
)

// ---------------------------------------------------------------------------------------------
// Peers
// ---------------------------------------------------------------------------------------------

export const redlock4: Impl = promiseImpl(
  "redlock@4.2.0",
  "peer",
  "new Redlock(clients).lock(resource, ttl) / lock.unlock(); retry 200 ± 100 ms (defaults)",
  (clients, settings) => {
    const redlock = new Redlock4(clients, { retryCount: settings.retryCount, retryDelay: 200, retryJitter: 100 })
    redlock.on("clientError", () => {})
    return {
      acquire: (resource) => redlock.lock(resource, settings.ttlMs),
      release: (lock) => redlock.unlock(lock)
    }
  }
)

export const redlock5: Impl = promiseImpl(
  "redlock@5.0.0-beta.2",
  "peer",
  "new Redlock(clients).acquire([resource], ttl) / release(lock); retry 200 ± 100 ms (defaults)",
  (clients, settings) => {
    const redlock = new Redlock5(clients, { retryCount: settings.retryCount, retryDelay: 200, retryJitter: 100 })
    // It emits every refused vote as an 'error' event; without a listener that would throw.
    redlock.on("error", () => {})
    return {
      acquire: (resource) => redlock.acquire([resource], settings.ttlMs),
      release: (lock) => redlock.release(lock)
    }
  }
)

export const effectPromise: Impl = promiseImpl(
  "effect-redlock/promise",
  "effect",
  "the Promise façade, as a node-redlock user: new Redlock(clients).acquire([resource], ttl) / release(lock); retry 200 ± 100 ms",
  (clients, settings) => {
    const redlock = new PromiseRedlock(clients, { retryCount: settings.retryCount, retryDelay: 200, retryJitter: 100 })
    return {
      acquire: (resource) => redlock.acquire([resource], settings.ttlMs),
      release: (lock) => redlock.release(lock)
    }
  }
)

export const sesame: Impl = promiseImpl(
  "@sesamecare-oss/redlock@1.4.0",
  "peer",
  "new Redlock(clients).acquire([resource], ttl) / release(lock); retry 200 ± 100 ms (defaults)",
  (clients, settings) => {
    const redlock = new SesameRedlock(clients, { retryCount: settings.retryCount, retryDelay: 200, retryJitter: 100 })
    redlock.on("error", () => {})
    return {
      acquire: (resource) => redlock.acquire([resource], settings.ttlMs),
      release: (lock) => redlock.release(lock)
    }
  }
)

export const semaphore: Impl = promiseImpl(
  "redis-semaphore@5.8.0",
  "peer",
  "new RedlockMutex(clients, resource, { lockTimeout }).acquire() / release(); retry every 10 ms (default)",
  (clients, settings) => ({
    acquire: async (resource) => {
      const mutex = new RedlockMutex(clients as Array<Redis>, resource, {
        lockTimeout: settings.ttlMs,
        acquireTimeout: settings.acquireTimeoutMs,
        retryInterval: 10
      })
      await mutex.acquire()
      return mutex
    },
    release: (mutex) => mutex.release()
  })
)

interface UniversalHandle {
  readonly lock: UniversalLock
  readonly handle: LockHandle
}

export const universal: Impl = promiseImpl(
  "redlock-universal@0.8.5",
  "peer",
  "createRedlock({ adapters, key, ttl }).acquire() / release(handle); retry 200 ms, no jitter (default)",
  (clients, settings) => {
    const adapters = clients.map((client) => new IoredisAdapter(client))
    return {
      acquire: async (key): Promise<UniversalHandle> => {
        const lock = createRedlock({
          adapters,
          key,
          ttl: settings.ttlMs,
          retryAttempts: settings.retryCount,
          retryDelay: 200
        })
        return { lock, handle: await lock.acquire() }
      },
      release: ({ handle, lock }) => lock.release(handle)
    }
  }
)

export const allImpls: ReadonlyArray<Impl> = [
  floor,
  effectFloor,
  effectFloorScoped,
  effectLock,
  effectAcquire,
  effectWithLock,
  effectLockPublish,
  effectLockFenced,
  effectPromise,
  redlock4,
  redlock5,
  sesame,
  semaphore,
  universal
]
