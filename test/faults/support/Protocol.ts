/** What the checker tells a worker process, and what the worker reports back. Plain JSON. */

/**
 * How a fiber takes the lock:
 * - `withLock`: `redlock.withLock(resource, …)(body)`; the body cannot see its lock, so its
 *   validity is unknown to the ledger and its section is bounded by its exit record.
 * - `acquire`: `redlock.acquire` in a scope, the body raced with `Lock.awaitLost` (what withLock
 *   does inside), so the body reports `expiresAt − now` with each write.
 * - `zombie`: `acquire` without automatic extension and without watching for loss; the body keeps
 *   writing for `zombieHoldMs`, long past its validity (a positive control).
 * - `stall`: like `acquire`, but the process freezes (a busy loop of `stallMs`) between deciding
 *   to write and writing its first act, so that write goes out late (a holder paused past its
 *   ttl; a positive control).
 */
export type Role = "withLock" | "acquire" | "zombie" | "stall"

export interface RetryConfig {
  readonly times: number
  readonly delayMs: number
  readonly jitter: number
}

/** One run's instructions for one worker (a job). */
export interface WorkerConfig {
  /** The run, which namespaces its ledger keys. */
  readonly run: string
  readonly id: string
  /** Ports the lock clients connect to (proxies or the nodes themselves), all on 127.0.0.1. */
  readonly lockPorts: ReadonlyArray<number>
  readonly resource: string
  readonly roles: ReadonlyArray<Role>
  readonly runMs: number
  readonly ttlMs: number
  readonly nodeTimeoutMs: number
  readonly retry: RetryConfig
  /** Automatic extension for `withLock` and `acquire` roles. */
  readonly autoExtend: boolean
  /** Fencing tokens (`fencing: true`) for `withLock` and `acquire` roles. */
  readonly fencing: boolean
  /** How long a holder works, uniformly in [min, max] ms. */
  readonly workMs: readonly [number, number]
  /** A holder writes an `act` record this often while working. */
  readonly actEveryMs: number
  /** Pause between two calls of one fiber, uniformly in [0, idleMs]. */
  readonly idleMs: number
  readonly zombieHoldMs: number
  readonly stallMs: number
  /** JSON-able ioredis options for the lock clients. */
  readonly redisOptions: Readonly<Record<string, unknown>>
  /** Keep every successful acquisition's latency (the soak wants percentiles). */
  readonly keepLatencies: boolean
}

/** Failure tags the library may end a call with. */
export const typedTags = ["LockContended", "QuorumUnavailable", "LockLost", "InvalidArgument"] as const
export type TypedTag = typeof typedTags[number]

export interface WorkerResult {
  readonly id: string
  /** The ioredis version the worker's lock clients ran on. */
  readonly ioredis: string
  readonly calls: number
  readonly entered: number
  readonly failures: Readonly<Record<TypedTag, number>>
  /** Calls that ended with anything but a typed library error (defect, foreign error, interruption). */
  readonly untyped: number
  /** "Unhandled error event" lines ioredis printed during the run. */
  readonly unhandledErrorEvents: number
  readonly untypedSamples: ReadonlyArray<string>
  /** Failed acquisitions (LockContended, QuorumUnavailable) that took longer than `acquireBudgetMs`. */
  readonly overBudget: number
  readonly acquireBudgetMs: number
  readonly maxFailedAcquireMs: number
  /** LockLost that came later than `lostBudgetMs` after the section began. */
  readonly lostOverBudget: number
  readonly lostBudgetMs: number
  readonly maxLostMs: number
  /** Ledger writes that failed (the ledger is never faulted: should be 0). */
  readonly ledgerErrors: number
  readonly unhandledRejections: number
  readonly uncaughtExceptions: number
  readonly unhandledSamples: ReadonlyArray<string>
  /** Successful acquisitions' latency from call to entry, ms (only with `keepLatencies`). */
  readonly latencies: ReadonlyArray<number>
  /** Calls still running when the run ended and had to be interrupted. */
  readonly interruptedAtEnd: number
}

/**
 * The time an acquisition may take before it must have failed: each attempt waits at most one
 * node timeout for the votes and one for the clean-up, plus the pauses between attempts, plus a
 * generous allowance for a noisy 2-core machine.
 */
export const acquireBudgetMs = (config: Pick<WorkerConfig, "retry" | "nodeTimeoutMs">, slackMs = 2_000): number =>
  (config.retry.times + 1) * 2 * config.nodeTimeoutMs +
  config.retry.times * config.retry.delayMs * (1 + config.retry.jitter) + slackMs

/** LockLost must come by the end of the work plus one ttl (the validity it could have had left). */
export const lostBudgetMs = (config: Pick<WorkerConfig, "workMs" | "ttlMs" | "nodeTimeoutMs">, slackMs = 2_000): number =>
  config.workMs[1] + config.ttlMs + config.nodeTimeoutMs + slackMs

/** What a worker process is started with: its id and the ledger node's port. */
export interface WorkerArgs {
  readonly id: string
  readonly ledgerPort: number
  /** The checker's process: the worker exits when it is gone. */
  readonly parentPid: number
}

export const encode = (args: WorkerArgs): string => Buffer.from(JSON.stringify(args)).toString("base64url")
export const decode = (text: string): WorkerArgs => JSON.parse(Buffer.from(text, "base64url").toString()) as WorkerArgs
