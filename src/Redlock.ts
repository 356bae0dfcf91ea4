/**
 * The Redlock service: distributed locks on one or more independent Redis nodes, following the
 * Redis distlock algorithm, as scoped Effect resources with typed errors.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { Redis, type RedisOptions } from "ioredis"
import { makeInstance } from "./internal/instance.js"
import type { Client } from "./internal/node.js"
import * as options_ from "./internal/options.js"
import { isBody } from "./internal/service.js"
import * as Lock from "./Lock.js"
import type { AcquireError, InvalidArgument, LockContended, LockLost, QuorumUnavailable } from "./RedlockError.js"

/**
 * What to lock: one resource name, or several that are locked together (all or nothing).
 *
 * @since 0.1.0
 * @category models
 */
export type Resources = string | ReadonlyArray<string>

/**
 * A retry schedule. It receives each failed attempt's error, so it can stop early on, for
 * example, `QuorumUnavailable`.
 *
 * @since 0.1.0
 * @category models
 */
export type RetrySchedule = Schedule.Schedule<unknown, LockContended | QuorumUnavailable>

/**
 * A retry policy in node-redlock's terms, turned into a jittered `Schedule`.
 *
 * @since 0.1.0
 * @category models
 */
export interface RetryOptions {
  /**
   * How many retries after the first attempt (`Infinity`: until the deadline).
   * @default 10
   */
  readonly times?: number | undefined
  /**
   * The pause between attempts.
   * @default "200 millis"
   */
  readonly delay?: Duration.DurationInput | undefined
  /**
   * Random variation of each pause, as a fraction of it: 0.5 pauses between 50 % and 150 %.
   * @default 0.5
   */
  readonly jitter?: number | undefined
}

/**
 * Options of one lock. Given to `make` or a layer they become the instance's defaults.
 *
 * @since 0.1.0
 * @category models
 */
export interface LockOptions {
  /**
   * How long the keys live on Redis. The lock is guaranteed for less: the ttl minus the time the
   * winning attempt took minus the drift allowance (see `Lock.expiresAt`). A whole number of
   * milliseconds, at most 2^31 − 1.
   * @default "10 seconds"
   */
  readonly ttl?: Duration.DurationInput | undefined
  /**
   * When and how often to try again while the resources are held elsewhere or too few nodes
   * answer. `{ times: 0 }` makes a single attempt.
   * @default { times: 10, delay: "200 millis", jitter: 0.5 }
   */
  readonly retry?: RetrySchedule | RetryOptions | undefined
  /** No attempt starts after this much time since the first one began. */
  readonly deadline?: Duration.DurationInput | undefined
  /**
   * How long one node may take to answer one call before it counts as failed. Every call is
   * bounded by it, whatever the client's own settings.
   * @default 5 % of the ttl, between 10 ms and 300 ms (and below half the ttl)
   */
  readonly nodeTimeout?: Duration.DurationInput | undefined
  /**
   * Take a fencing token with the lock (`Lock.fencingToken`): a number that grows with every lock
   * of the same resources, for the storage you write to to refuse writes from an older holder.
   * Each resource gets a counter key on every node, kept forever, and the nodes must persist it
   * (`appendfsync always`: see the README's "Fencing tokens"). Costs a Lua script instead of
   * `SET NX`, and one more round trip when the nodes' counters disagree.
   * @default false
   */
  readonly fencing?: boolean | undefined
}

/**
 * Automatic extension of a held lock.
 *
 * @since 0.1.0
 * @category models
 */
export interface AutoExtendOptions {
  /**
   * Extend when this much validity is left. The extension may start up to a twentieth of this
   * earlier (at most 50 ms), on a grid shared by every lock, so that locks due together extend in
   * one command per node.
   * @default a third of the ttl
   */
  readonly threshold?: Duration.DurationInput | undefined
  /** Never hold the lock longer than this in total; after that it runs out and is lost (`limit`). */
  readonly maxHoldTime?: Duration.DurationInput | undefined
  /** Never extend more often than this; after that the lock runs out and is lost (`limit`). */
  readonly maxExtensions?: number | undefined
}

/**
 * Options of `acquire`, `tryAcquire`, `withLock` and `tryWithLock`.
 *
 * @since 0.1.0
 * @category models
 */
export interface AcquireOptions extends LockOptions {
  /**
   * Keep extending the lock while its scope is open.
   * @default true for withLock and tryWithLock, false for acquire and tryAcquire
   */
  readonly autoExtend?: boolean | AutoExtendOptions | undefined
}

/**
 * Instance-wide settings.
 *
 * @since 0.1.0
 * @category models
 */
export interface InstanceOptions extends LockOptions {
  /**
   * The clock drift allowance as a fraction of the ttl (plus 2 ms), in [0, 1).
   * @default 0.01
   */
  readonly driftFactor?: number | undefined
  /**
   * Prepended to every resource name to form its key.
   * @default ""
   */
  readonly keyPrefix?: string | undefined
  /**
   * Wake waiters when a lock is released instead of leaving them to the retry schedule alone.
   * Waiters listen through one extra subscriber connection per node (opened on the first
   * contention, closed with the instance) and hear of releases from:
   * - `"publish"` (or `true`): each release publishes on a channel per key from the release
   *   script. Works on any Redis whose ACL allows SUBSCRIBE and PUBLISH.
   * - `"keyspace"`: Redis's own keyspace notifications: no PUBLISH per release, and waiters also
   *   wake when a lock expires. Needs `notify-keyspace-events` with `K`, `g` and `x` (for example
   *   `Kgx`) on every node (a warning is logged for a node where it is missing) and standalone
   *   clients: Cluster notifications stay on the node that holds the key.
   * - `false`: waiters follow the retry schedule only.
   *
   * Processes that contend for the same locks should use the same source.
   * @default "publish"
   */
  readonly wakeUp?: boolean | "publish" | "keyspace" | undefined
}

/**
 * Options of `make`: the clients to vote with, and the instance's settings.
 *
 * @since 0.1.0
 * @category models
 */
export interface MakeOptions extends InstanceOptions {
  /**
   * One ioredis `Redis` or `Cluster` client per independent Redis deployment. Each counts as one
   * vote; a majority must agree. The clients stay the caller's: they are not closed or changed,
   * except for an `error` listener added while the instance lives.
   */
  readonly clients: ReadonlyArray<Client>
}

/**
 * Options of `layer`: node URLs, credentials, and the instance's settings.
 *
 * @since 0.1.0
 * @category models
 */
export interface LayerOptions extends InstanceOptions {
  /** One `redis://` or `rediss://` URL per independent Redis node. */
  readonly nodes: ReadonlyArray<string>
  /** The password for every node (overrides one in the URLs). */
  readonly password?: Redacted.Redacted<string> | undefined
  /** The ACL user name for every node. */
  readonly username?: string | undefined
  /** Further ioredis options for the clients the layer opens. */
  readonly redisOptions?: RedisOptions | undefined
}

/**
 * What one node did when a lock was released.
 *
 * @since 0.1.0
 * @category models
 */
export interface NodeReport {
  /** The node's `host:port`. */
  readonly node: string
  /**
   * `not-held`: the key had expired or belonged to another owner; it was left alone. `pending`:
   * the delete was sent, but the release did not wait for the answer: a release is done once a
   * quorum of nodes deleted the keys (a scope's release, once a quorum answered).
   */
  readonly outcome: "released" | "not-held" | "error" | "timeout" | "pending"
  /** The node's error message, when the outcome is `error`. */
  readonly error?: string
}

/**
 * The result of a release: how many nodes deleted the lock's keys, and what each node did.
 *
 * @since 0.1.0
 * @category models
 */
export interface ReleaseReport {
  /**
   * How many nodes deleted the lock's keys before the release was done. At least the quorum when
   * a quorum of nodes still held the lock and answered; the deletes not waited for (`pending`)
   * still land.
   */
  readonly released: number
  /** What each node did, in the order of the clients. */
  readonly nodes: ReadonlyArray<NodeReport>
}

/**
 * What `withLock` runs: an effect, or a function that receives the held lock and returns one.
 *
 * @since 0.1.0
 * @category models
 */
export type Body<A, E, R> = Effect.Effect<A, E, R> | ((lock: Lock.Lock) => Effect.Effect<A, E, R>)

/**
 * Runs an effect while holding a lock (see `Redlock.withLock`).
 *
 * @since 0.1.0
 * @category models
 */
export interface WithLock {
  (resources: Resources, options?: AcquireOptions): <A, E, R>(
    body: Body<A, E, R>
  ) => Effect.Effect<A, E | AcquireError | LockLost, Exclude<R, Scope.Scope>>
  <A, E, R>(
    body: Body<A, E, R>,
    resources: Resources,
    options?: AcquireOptions
  ): Effect.Effect<A, E | AcquireError | LockLost, Exclude<R, Scope.Scope>>
}

/**
 * Runs an effect if a lock is free at once (see `Redlock.tryWithLock`).
 *
 * @since 0.1.0
 * @category models
 */
export interface TryWithLock {
  (resources: Resources, options?: AcquireOptions): <A, E, R>(
    body: Body<A, E, R>
  ) => Effect.Effect<Option.Option<A>, E | QuorumUnavailable | InvalidArgument | LockLost, Exclude<R, Scope.Scope>>
  <A, E, R>(
    body: Body<A, E, R>,
    resources: Resources,
    options?: AcquireOptions
  ): Effect.Effect<Option.Option<A>, E | QuorumUnavailable | InvalidArgument | LockLost, Exclude<R, Scope.Scope>>
}

/**
 * The Redlock service.
 *
 * @since 0.1.0
 * @category tags
 */
export class Redlock extends Context.Tag("effect-redlock/Redlock")<Redlock, Redlock.Service>() {}

/**
 * Types that belong to the `Redlock` tag.
 *
 * @since 0.1.0
 * @category models
 */
export declare namespace Redlock {
  /**
   * The operations of a Redlock instance.
   *
   * @since 0.1.0
   * @category models
   */
  export interface Service {
    /** How many nodes vote. */
    readonly nodes: number
    /** How many nodes must agree. */
    readonly quorum: number
    /**
     * Acquires a lock in the current `Scope`; the scope's finalizer releases it whatever the exit.
     * Retries while the resources are held elsewhere or too few nodes answer.
     */
    readonly acquire: (resources: Resources, options?: AcquireOptions) => Effect.Effect<Lock.Lock, AcquireError, Scope.Scope>
    /** One attempt, no retries: `None` when the resources are held elsewhere. */
    readonly tryAcquire: (
      resources: Resources,
      options?: AcquireOptions
    ) => Effect.Effect<Option.Option<Lock.Lock>, QuorumUnavailable | InvalidArgument, Scope.Scope>
    /**
     * Acquires, runs the effect, releases. The lock is extended while the effect runs; if it is
     * lost, the effect is interrupted and the result is a `LockLost` failure (also when the effect
     * could not be interrupted and ran to its end). The effect has a `Scope` of its own, closed
     * before the lock is released.
     */
    readonly withLock: WithLock
    /** Like `withLock` with a single attempt: `None` when the resources are held elsewhere. */
    readonly tryWithLock: TryWithLock
    /** Acquires a lock that the caller releases with `release` (or lets expire). */
    readonly lock: (resources: Resources, options?: LockOptions) => Effect.Effect<Lock.Lock, AcquireError>
    /**
     * Resets the lock's ttl (or sets a new one) on a quorum of nodes. A shorter ttl shortens the
     * lock: its `expiresAt` moves earlier (under automatic extension, the keeper then extends it
     * again with the lock's own ttl once its threshold is reached).
     */
    readonly extend: (lock: Lock.Lock, ttl?: Duration.DurationInput) => Effect.Effect<Lock.Lock, LockLost | InvalidArgument>
    /**
     * Deletes the lock's keys where they still hold its owner value. Done as soon as a quorum of
     * nodes deleted them (the lock is free; the other deletes still land), else once every node
     * answered or timed out, so that the report says what each did. Never fails. Releasing again,
     * even while the first release runs (the scope's, say, which waits for a quorum of answers
     * only), returns the first release's report without a call.
     */
    readonly release: (lock: Lock.Lock) => Effect.Effect<ReleaseReport>
  }
}

/**
 * Builds a Redlock instance over the given ioredis clients. The clients stay the caller's; an
 * `error` listener is added to each (so ioredis never prints "Unhandled error event") and removed
 * when the scope closes.
 *
 * @example
 * ```ts
 * const redlock = yield* Redlock.make({ clients: [a, b, c], ttl: "5 seconds" })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: MakeOptions): Effect.Effect<Redlock.Service, InvalidArgument, Scope.Scope> =>
  makeInstance(options)

/**
 * Provides `Redlock` over ioredis clients the caller owns (and closes).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFromClients = (
  clients: ReadonlyArray<Client>,
  options?: InstanceOptions
): Layer.Layer<Redlock, InvalidArgument> => Layer.scoped(Redlock, make({ ...options, clients }))

const ignoreErrors = () => {}

/** Opens a client that fails queued commands after one reconnection attempt. */
const openClient = (url: string, options: RedisOptions) =>
  Effect.sync(() => {
    const client = new Redis(url, {
      maxRetriesPerRequest: 1,
      retryStrategy: (times) => Math.min(times * 100, 2000),
      ...options
    })
    // Kept for the client's whole life: ioredis may still report errors while it closes.
    client.on("error", ignoreErrors)
    return client
  })

/** QUIT where the node is reachable (bounded), then a hard disconnect. */
const closeClient = (client: Redis): Effect.Effect<void> =>
  (client.status === "ready" ? Effect.ignore(Effect.timeout(Effect.tryPromise(() => client.quit()), "1 second")) : Effect.void)
    .pipe(Effect.ensuring(Effect.sync(() => client.disconnect())))

/**
 * Opens one ioredis client per node URL and provides `Redlock` over them; the clients are closed
 * when the layer is released. The clients fail queued commands after one reconnection attempt,
 * so a dead node does not pile up commands.
 *
 * @example
 * ```ts
 * const RedlockLive = Redlock.layer({
 *   nodes: ["redis://10.0.0.1:6379", "redis://10.0.0.2:6379", "redis://10.0.0.3:6379"]
 * })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: LayerOptions): Layer.Layer<Redlock, InvalidArgument> =>
  Layer.scoped(
    Redlock,
    Effect.gen(function*() {
      const { nodes, password, redisOptions, username, ...instance } = yield* options_.validate(() => {
        const checked = options_.objectOf("options", options)
        return { ...checked, nodes: options_.nodeUrlsOf(checked.nodes) }
      })
      const clientOptions: RedisOptions = {
        ...(password === undefined ? {} : { password: Redacted.value(password) }),
        ...(username === undefined ? {} : { username }),
        ...redisOptions
      }
      const clients = yield* Effect.acquireRelease(
        Effect.forEach(nodes, (url) => openClient(url, clientOptions)),
        (clients) => Effect.forEach(clients, closeClient, { concurrency: "unbounded", discard: true })
      )
      return yield* make({ ...instance, clients })
    })
  )

/**
 * Like `layer`, with the options read from `Config`.
 *
 * @example
 * ```ts
 * const RedlockLive = Redlock.layerConfig({
 *   nodes: Config.array(Config.string(), "REDLOCK_NODES"),
 *   password: Config.option(Config.redacted("REDLOCK_PASSWORD")).pipe(Config.map(Option.getOrUndefined)),
 *   ttl: Config.succeed("5 seconds")
 * })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Config.Wrap<LayerOptions>
): Layer.Layer<Redlock, InvalidArgument | ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.map(Config.unwrap(config), layer))

/**
 * Acquires a lock in the current `Scope` (see `Redlock.Service.acquire`).
 *
 * @example
 * ```ts
 * Effect.scoped(Effect.gen(function*() {
 *   const lock = yield* Redlock.acquire("report:daily", { ttl: "30 seconds" })
 *   yield* buildReport
 * }))
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const acquire = (
  resources: Resources,
  options?: AcquireOptions
): Effect.Effect<Lock.Lock, AcquireError, Redlock | Scope.Scope> =>
  Effect.flatMap(Redlock, (redlock) => redlock.acquire(resources, options))

/**
 * One attempt, no retries: `None` when the resources are held elsewhere.
 *
 * @since 0.1.0
 * @category accessors
 */
export const tryAcquire = (
  resources: Resources,
  options?: AcquireOptions
): Effect.Effect<Option.Option<Lock.Lock>, QuorumUnavailable | InvalidArgument, Redlock | Scope.Scope> =>
  Effect.flatMap(Redlock, (redlock) => redlock.tryAcquire(resources, options))

/**
 * Runs an effect while holding a lock, extending it as needed; interrupts the effect with
 * `LockLost` if the lock can no longer be guaranteed (an effect that cannot be interrupted runs on,
 * and the result is the `LockLost` all the same). The body may be a function of the lock, and has
 * a `Scope` of its own: what it acquires is released before the lock is.
 *
 * @example
 * ```ts
 * transfer.pipe(Redlock.withLock("account:42", { ttl: "5 seconds" }))
 * Redlock.withLock((lock) => Effect.log(`held until ${lock.expiresAt}`), "account:42")
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const withLock: {
  (resources: Resources, options?: AcquireOptions): <A, E, R>(
    body: Body<A, E, R>
  ) => Effect.Effect<A, E | AcquireError | LockLost, Exclude<R, Scope.Scope> | Redlock>
  <A, E, R>(
    body: Body<A, E, R>,
    resources: Resources,
    options?: AcquireOptions
  ): Effect.Effect<A, E | AcquireError | LockLost, Exclude<R, Scope.Scope> | Redlock>
} = dual(
  isBody,
  <A, E, R>(body: Body<A, E, R>, resources: Resources, options?: AcquireOptions) =>
    Effect.flatMap(Redlock, (redlock) => redlock.withLock(body, resources, options))
)

/**
 * Runs an effect if the lock is free at once: `None` when the resources are held elsewhere.
 *
 * @since 0.1.0
 * @category accessors
 */
export const tryWithLock: {
  (resources: Resources, options?: AcquireOptions): <A, E, R>(
    body: Body<A, E, R>
  ) => Effect.Effect<
    Option.Option<A>,
    E | QuorumUnavailable | InvalidArgument | LockLost,
    Exclude<R, Scope.Scope> | Redlock
  >
  <A, E, R>(
    body: Body<A, E, R>,
    resources: Resources,
    options?: AcquireOptions
  ): Effect.Effect<
    Option.Option<A>,
    E | QuorumUnavailable | InvalidArgument | LockLost,
    Exclude<R, Scope.Scope> | Redlock
  >
} = dual(
  isBody,
  <A, E, R>(body: Body<A, E, R>, resources: Resources, options?: AcquireOptions) =>
    Effect.flatMap(Redlock, (redlock) => redlock.tryWithLock(body, resources, options))
)

/**
 * Acquires a lock outside any scope; release it with `release`.
 *
 * @since 0.1.0
 * @category accessors
 */
export const lock = (resources: Resources, options?: LockOptions): Effect.Effect<Lock.Lock, AcquireError, Redlock> =>
  Effect.flatMap(Redlock, (redlock) => redlock.lock(resources, options))

/**
 * Resets a lock's ttl (or sets a new one) on a quorum of nodes.
 *
 * @since 0.1.0
 * @category accessors
 */
export const extend = (
  lock: Lock.Lock,
  ttl?: Duration.DurationInput
): Effect.Effect<Lock.Lock, LockLost | InvalidArgument, Redlock> =>
  Effect.flatMap(Redlock, (redlock) => redlock.extend(lock, ttl))

/**
 * Releases a lock: done as soon as a quorum of nodes deleted its keys, else once every node
 * answered. Never fails: an expired or taken lock is reported per node. Releasing again, even
 * while the first release runs, returns the first release's report without a call.
 *
 * @since 0.1.0
 * @category accessors
 */
export const release = (lock: Lock.Lock): Effect.Effect<ReleaseReport, never, Redlock> =>
  Effect.flatMap(Redlock, (redlock) => redlock.release(lock))
