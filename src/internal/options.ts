/**
 * Validation and defaults. Everything here runs before any command is sent: bad input becomes an
 * `InvalidArgument`, good input becomes the resolved `Settings` the engine runs on.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import type { AcquireOptions, AutoExtendOptions, LockOptions, RetryOptions, RetrySchedule } from "../Redlock.js"
import { InvalidArgument } from "../RedlockError.js"
import type { Client, LockNode } from "./node.js"
import { driftOf, lossLeadMs, minThresholdMs } from "./quorum.js"
import { hashTagOf, slotOf } from "./slot.js"

/** The longest ttl accepted: what a Node timer can wait (about 24.8 days). */
export const maxTtlMs = 2 ** 31 - 1

/** The longest resource name accepted, in UTF-16 code units. */
export const maxResourceLength = 4096

/** Defaults of the per-lock options. */
export const defaults = {
  ttlMs: 10_000,
  driftFactor: 0.01,
  retryTimes: 10,
  retryDelayMs: 200,
  retryJitter: 0.5,
  /** Automatic extension starts when this fraction of the ttl is left. */
  extendThresholdRatio: 1 / 3
} as const

/** The automatic extension policy of a lock. */
export interface AutoExtend {
  readonly thresholdMs: number
  readonly maxHoldTimeMs: number
  readonly maxExtensions: number
}

/** Resolved per-lock settings. */
export interface Settings {
  readonly ttlMs: number
  readonly driftFactor: number
  readonly driftMs: number
  readonly nodeTimeoutMs: number
  readonly retry: RetrySchedule
  readonly deadlineMs: number | undefined
  readonly autoExtend: AutoExtend | undefined
  readonly fencing: boolean
}

const invalid = (argument: string, reason: string): never => {
  throw new InvalidArgument({ argument, reason })
}

/** Runs a validation, turning its `InvalidArgument` into a failure. */
export const validate = <A>(f: () => A): Effect.Effect<A, InvalidArgument> => {
  try {
    return Effect.succeed(f())
  } catch (error) {
    return error instanceof InvalidArgument ? Effect.fail(error) : Effect.die(error)
  }
}

/** Validates a positive, finite duration into milliseconds. */
export const millisOf = (argument: string, input: unknown): number => {
  if (typeof input === "number" && !Number.isFinite(input)) {
    return invalid(argument, `must be a finite duration, got ${input}`)
  }
  const decoded = Duration.decodeUnknown(input)
  if (Option.isNone(decoded)) return invalid(argument, "must be a Duration or a duration string such as \"5 seconds\"")
  const millis = Duration.toMillis(decoded.value)
  if (!Number.isFinite(millis)) return invalid(argument, "must be finite")
  if (millis <= 0) return invalid(argument, "must be positive")
  return millis
}

const ttlOf = (input: unknown, driftFactor: number): number => {
  const ttlMs = millisOf("ttl", input)
  if (!Number.isInteger(ttlMs)) return invalid("ttl", `must be a whole number of milliseconds, got ${ttlMs}`)
  if (ttlMs > maxTtlMs) return invalid("ttl", `must be at most ${maxTtlMs} ms`)
  const driftMs = driftOf(ttlMs, driftFactor)
  // A lock is declared lost `lossLeadMs` (and, for an early timer, one more) before its validity ends.
  if (ttlMs <= driftMs + lossLeadMs + 1) {
    return invalid("ttl", `must be longer than the clock drift allowance and the loss lead (${driftMs + lossLeadMs + 1} ms)`)
  }
  return ttlMs
}

const countOf = (argument: string, input: unknown): number => {
  if (typeof input !== "number" || Number.isNaN(input) || input < 0 || !(Number.isInteger(input) || input === Infinity)) {
    return invalid(argument, `must be a non-negative whole number or Infinity, got ${String(input)}`)
  }
  return input
}

/** A ttl's default node timeout: 5 % of the ttl, at least 10 ms, at most 300 ms, below half the ttl. */
export const defaultNodeTimeout = (ttlMs: number): number => Math.min(300, Math.max(10, ttlMs * 0.05), ttlMs / 2)

const retryOf = (input: RetrySchedule | RetryOptions): RetrySchedule => {
  if (Schedule.isSchedule(input)) return input
  if (typeof input !== "object" || input === null) return invalid("retry", "must be a Schedule or { times, delay, jitter }")
  const times = countOf("retry.times", input.times ?? defaults.retryTimes)
  const delayMs = input.delay === undefined ? defaults.retryDelayMs : millisOf("retry.delay", input.delay)
  const jitter = input.jitter ?? defaults.retryJitter
  if (typeof jitter !== "number" || !(jitter >= 0 && jitter < 1)) {
    return invalid("retry.jitter", `must be in [0, 1), got ${String(jitter)}`)
  }
  const spaced = Schedule.spaced(Duration.millis(delayMs))
  const delays = jitter === 0 ? spaced : Schedule.jitteredWith(spaced, { min: 1 - jitter, max: 1 + jitter })
  return times === Infinity ? delays : Schedule.intersect(delays, Schedule.recurs(times))
}

/** The default retry schedule: up to 10 retries, 200 ms apart ± 50 % random jitter. */
export const defaultRetry: RetrySchedule = retryOf({})

const autoExtendOf = (input: boolean | AutoExtendOptions | undefined, ttlMs: number): AutoExtend | undefined => {
  if (input === undefined || input === false) return undefined
  const options: AutoExtendOptions = input === true ? {} : input
  if (typeof options !== "object" || options === null) return invalid("autoExtend", "must be a boolean or an object")
  const thresholdMs = options.threshold === undefined
    ? Math.round(ttlMs * defaults.extendThresholdRatio)
    : millisOf("autoExtend.threshold", options.threshold)
  if (thresholdMs >= ttlMs) return invalid("autoExtend.threshold", "must be shorter than the ttl")
  if (thresholdMs < minThresholdMs) {
    return invalid("autoExtend.threshold", `must be at least ${minThresholdMs} ms: with less left, the lock is declared lost`)
  }
  return {
    thresholdMs,
    maxHoldTimeMs: options.maxHoldTime === undefined ? Infinity : millisOf("autoExtend.maxHoldTime", options.maxHoldTime),
    maxExtensions: countOf("autoExtend.maxExtensions", options.maxExtensions ?? Infinity)
  }
}

/** Validates a drift factor. */
export const driftFactorOf = (input: unknown): number => {
  if (input === undefined) return defaults.driftFactor
  if (typeof input !== "number" || !(input >= 0 && input < 1)) {
    return invalid("driftFactor", `must be a number in [0, 1), got ${String(input)}`)
  }
  return input
}

/**
 * Resolves per-call options over a base. A ttl change rescales the node timeout and the extension
 * threshold unless they are given too.
 */
export const resolve = (
  base: Settings,
  options: AcquireOptions | undefined,
  autoExtendDefault: boolean | AutoExtendOptions | undefined
): Settings => {
  if (options === undefined || options === null) {
    return autoExtendDefault === undefined ? base : { ...base, autoExtend: autoExtendOf(autoExtendDefault, base.ttlMs) }
  }
  if (typeof options !== "object") return invalid("options", "must be an object")
  const { driftFactor } = base
  const ttlMs = options.ttl === undefined ? base.ttlMs : ttlOf(options.ttl, driftFactor)
  const nodeTimeoutMs = options.nodeTimeout !== undefined
    ? millisOf("nodeTimeout", options.nodeTimeout)
    : ttlMs === base.ttlMs
    ? base.nodeTimeoutMs
    : defaultNodeTimeout(ttlMs)
  if (nodeTimeoutMs >= ttlMs) return invalid("nodeTimeout", "must be shorter than the ttl")
  return {
    ttlMs,
    driftFactor,
    driftMs: driftOf(ttlMs, driftFactor),
    nodeTimeoutMs,
    retry: options.retry === undefined ? base.retry : retryOf(options.retry),
    deadlineMs: options.deadline === undefined ? base.deadlineMs : millisOf("deadline", options.deadline),
    autoExtend: autoExtendOf(options.autoExtend ?? autoExtendDefault, ttlMs),
    fencing: booleanOf("fencing", options.fencing, base.fencing)
  }
}

/** The base settings of a Redlock instance. */
export const baseSettings = (options: LockOptions & { readonly driftFactor?: number | undefined }): Settings => {
  const driftFactor = driftFactorOf(options.driftFactor)
  const root: Settings = {
    ttlMs: defaults.ttlMs,
    driftFactor,
    driftMs: driftOf(defaults.ttlMs, driftFactor),
    nodeTimeoutMs: defaultNodeTimeout(defaults.ttlMs),
    retry: defaultRetry,
    deadlineMs: undefined,
    autoExtend: undefined,
    fencing: false
  }
  return resolve(root, options, undefined)
}

/** Validates resources and turns them into keys: one or more distinct, non-empty strings. */
export const keysOf = (
  input: unknown,
  keyPrefix: string,
  nodes: ReadonlyArray<LockNode>
): { readonly resources: ReadonlyArray<string>; readonly keys: ReadonlyArray<string> } => {
  const resources: ReadonlyArray<unknown> = typeof input === "string" ? [input] : Array.isArray(input)
    ? input
    : invalid("resources", "must be a string or a non-empty array of strings")
  if (resources.length === 0) return invalid("resources", "must not be empty")
  const keys = new Array<string>(resources.length)
  for (let index = 0; index < resources.length; index++) {
    const resource = resources[index]
    if (typeof resource !== "string") return invalid("resources", `resource ${index} is not a string`)
    if (resource.length === 0) return invalid("resources", `resource ${index} is empty`)
    if (resource.length > maxResourceLength) {
      return invalid("resources", `resource ${index} is longer than ${maxResourceLength} characters`)
    }
    keys[index] = keyPrefix + resource
  }
  if (keys.length > 1) {
    if (new Set(keys).size !== keys.length) return invalid("resources", "must not contain duplicates")
    if (nodes.some((node) => node.isCluster)) {
      const slot = slotOf(keys[0]!)
      if (keys.some((key) => slotOf(key) !== slot)) {
        return invalid(
          "resources",
          "on Redis Cluster all resources of one lock must share a hash slot; use a {hash tag}"
        )
      }
    }
  }
  return { resources: resources as ReadonlyArray<string>, keys }
}

/**
 * The key of a lock key's fencing counter: beside it and, on Redis Cluster, in its hash slot once
 * the client's own `keyPrefix` is prepended to both: the key's `{hash tag}`, or else the whole
 * prefixed key made one.
 */
export const fenceKeyOf = (key: string, clientPrefix = ""): string => {
  const sent = clientPrefix + key
  return hashTagOf(sent) !== undefined || sent.includes("}") ? `${key}:fence` : `{${sent}}:fence`
}

/**
 * The fencing counters' keys, named for the first Cluster client's `keyPrefix`; every Cluster
 * client must find each counter in its lock key's slot.
 */
export const fenceKeysOf = (keys: ReadonlyArray<string>, nodes: ReadonlyArray<LockNode>): ReadonlyArray<string> => {
  const clusters = nodes.filter((node) => node.isCluster)
  const fenceKeys = keys.map((key) => fenceKeyOf(key, clusters[0]?.keyPrefix))
  const apart = (node: LockNode) =>
    fenceKeys.some((fenceKey, index) => slotOf(node.keyPrefix + fenceKey) !== slotOf(node.keyPrefix + keys[index]!))
  if (clusters.some(apart)) {
    return invalid("resources", "with fencing on Redis Cluster, a key containing \"}\" needs a {hash tag}")
  }
  return fenceKeys
}

const isClient = (u: unknown): u is Client =>
  typeof u === "object" && u !== null &&
  typeof (u as Client).set === "function" && typeof (u as Client).evalsha === "function" &&
  typeof (u as Client).eval === "function" && typeof (u as Client).on === "function"

/** Validates the clients: at least one, each an ioredis client, none twice. */
export const clientsOf = (input: unknown, labelOf: (client: Client) => string): ReadonlyArray<Client> => {
  if (!Array.isArray(input) || input.length === 0) {
    return invalid("clients", "must be a non-empty array of ioredis clients")
  }
  const labels = new Set<string>()
  input.forEach((client: unknown, index) => {
    if (!isClient(client)) return invalid("clients", `client ${index} is not an ioredis Redis or Cluster client`)
    if (input.indexOf(client) !== index) {
      return invalid("clients", `client ${index} is passed twice: one Redis would count as two votes`)
    }
    const label = labelOf(client)
    if (!client.isCluster && labels.has(label)) {
      return invalid("clients", `clients ${index} and another both connect to ${label}: one Redis would count twice`)
    }
    labels.add(label)
  })
  return input as ReadonlyArray<Client>
}

/** Checks that an options argument is an object. */
export const objectOf = <A extends object>(argument: string, input: A): A =>
  typeof input === "object" && input !== null ? input : invalid(argument, "must be an object")

/** Validates node URLs: at least one, each `redis://` or `rediss://`, none twice. */
export const nodeUrlsOf = (input: unknown): ReadonlyArray<string> => {
  if (!Array.isArray(input) || input.length === 0) return invalid("nodes", "must be a non-empty array of URLs")
  input.forEach((url: unknown, index) => {
    if (typeof url !== "string" || !/^rediss?:\/\//.test(url)) {
      return invalid("nodes", `node ${index} is not a redis:// or rediss:// URL`)
    }
    if (input.indexOf(url) !== index) return invalid("nodes", `node ${index} is listed twice`)
  })
  return input as ReadonlyArray<string>
}

/** Validates an optional boolean. */
export const booleanOf = (argument: string, input: unknown, fallback: boolean): boolean => {
  if (input === undefined) return fallback
  return typeof input === "boolean" ? input : invalid(argument, "must be a boolean")
}

/** Validates the wake-up source: `true` means "publish"; keyspace notifications need standalone clients. */
export const wakeUpOf = (input: unknown, clients: ReadonlyArray<Client>): "publish" | "keyspace" | false => {
  if (input === undefined || input === true || input === "publish") return "publish"
  if (input === false) return false
  if (input !== "keyspace") return invalid("wakeUp", "must be a boolean, \"publish\" or \"keyspace\"")
  if (clients.some((client) => client.isCluster)) {
    return invalid("wakeUp", "\"keyspace\" needs standalone clients: on Redis Cluster, notifications stay on the key's node")
  }
  return "keyspace"
}

/** Validates the number of in-memory nodes of `effect-redlock/testing`: 3 unless given, at most 99. */
export const nodeCountOf = (input: unknown): number => {
  if (input === undefined) return 3
  return typeof input === "number" && Number.isInteger(input) && input >= 1 && input <= 99
    ? input
    : invalid("nodes", "must be a whole number of nodes from 1 to 99")
}

/** Validates a key prefix. */
export const keyPrefixOf = (input: unknown): string => {
  if (input === undefined) return ""
  return typeof input === "string" ? input : invalid("keyPrefix", "must be a string")
}
