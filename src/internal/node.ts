/**
 * The seam between the algorithm and Redis: a node answers each call with a plain number.
 * `fromClient` adapts an ioredis `Redis` or `Cluster` client without mutating it (no
 * `defineCommand`): scripts go by EVALSHA and fall back to EVAL once when the node lacks them.
 */
import type { Cluster, Redis } from "ioredis"
import * as Scripts from "./scripts.js"
import { channelPrefix } from "./waker.js"

/** One Redis deployment that votes in the quorum. */
export interface LockNode {
  /** `host:port` or a description, never credentials. */
  readonly label: string
  /** Whether keys must share a hash slot. */
  readonly isCluster: boolean
  /** The client's own ioredis `keyPrefix`, which it prepends to every key it sends ("" if none). */
  readonly keyPrefix: string
  /** Told of each call that failed or timed out while its round waited (see `makeInstance`). */
  readonly onFailure?: ((node: string, error: Error) => void) | undefined
  /** 1 when every key was free and is now ours, 0 when another owner holds one. */
  acquire(keys: ReadonlyArray<string>, value: string, ttlMs: number): Promise<number>
  /**
   * `acquire` that also takes a token: one more than the highest of the keys' fencing counters
   * (`fenceKeys`, in the keys' order), which all become the token. The token when the keys were
   * free and are now ours, 0 when another owner holds one.
   */
  acquireFenced(keys: ReadonlyArray<string>, fenceKeys: ReadonlyArray<string>, value: string, ttlMs: number): Promise<number>
  /** 1 when every key holds `value` and each fencing counter is now at least `token`, else 0. */
  raiseFence(keys: ReadonlyArray<string>, fenceKeys: ReadonlyArray<string>, value: string, token: number): Promise<number>
  /** 1 when every key was ours and is extended, 0 when one is gone, -1 when one is another owner's. */
  extend(keys: ReadonlyArray<string>, value: string, ttlMs: number): Promise<number>
  /**
   * `extend`, sent with every other batched extension of this turn of the event loop as one
   * command (on a standalone node; a Cluster node has no batches, its keys live in many slots).
   */
  extendInBatch(keys: ReadonlyArray<string>, value: string, ttlMs: number): Promise<number>
  /** The number of keys that held `value` and were deleted. */
  release(keys: ReadonlyArray<string>, value: string): Promise<number>
}

/** The ioredis clients a Redlock accepts. */
export type Client = Redis | Cluster

const isNoScript = (error: unknown): boolean =>
  error instanceof Error && error.message.startsWith("NOSCRIPT")

const runScript = <A = number>(
  client: Client,
  script: Scripts.Script,
  keys: ReadonlyArray<string>,
  args: ReadonlyArray<string | number>
): Promise<A> =>
  (client.evalsha(script.sha, keys.length, ...keys, ...args) as Promise<A>).catch((error: unknown) =>
    isNoScript(error)
      ? client.eval(script.source, keys.length, ...keys, ...args) as Promise<A>
      : Promise.reject(error)
  )

const isOk = (reply: string | null): number => reply === "OK" ? 1 : 0

/** Connections whose writes this module holds until the next tick. */
const held = new Set<object>()

const letGo = (stream: NodeJS.WritableStream & { uncork(): void }) => {
  held.delete(stream)
  stream.uncork()
}

/**
 * A held batch goes out once it holds this many bytes (some 40 lock commands), and the rest of
 * the tick's commands start a new one: Redis works on the first part while the client prepares
 * the next, instead of idling until the whole tick's batch arrives. Measured with 64 workers on
 * one node, a batch per tick reached 0.8–1.0× the floor's cycles; parts of 4 KB, 1.2–1.5×; on 3
 * and 5 nodes the difference stayed inside the noise (`test/bench/pairwise.ts`).
 */
const flushAtBytes = 4096

/** Connections that sent a command in the current tick. */
const sentThisTick = new Set<object>()
let forgetting = false
const forgetTick = () => {
  sentThisTick.clear()
  forgetting = false
}

/**
 * Coalesces the writes of concurrent locks: the first command of a tick to a node leaves at once;
 * from the second on, the connection holds its writes until the next tick, so they leave in a few
 * writes of `flushAtBytes`. Under load a system call per command is most of a lock's client cost;
 * a lone lock is not delayed. Only a ready standalone connection that nobody else corked.
 */
const coalesceWrites = (client: Client): void => {
  if (client.isCluster) return
  const stream = (client as Redis).stream as (Redis["stream"] & { writableCorked?: number }) | undefined
  if (stream === undefined || (client as Redis).status !== "ready") return
  if (!sentThisTick.has(stream)) {
    sentThisTick.add(stream)
    if (!forgetting) {
      forgetting = true
      process.nextTick(forgetTick)
    }
    return
  }
  if (stream.writableCorked !== 0) {
    if (held.has(stream) && stream.writableLength >= flushAtBytes) {
      stream.uncork()
      stream.cork()
    }
    return
  }
  stream.cork()
  held.add(stream)
  process.nextTick(letGo, stream)
}

/** At most this many locks per batched command: Redis runs nothing else while a script runs. */
const maxBatch = 500

interface Extension {
  readonly keys: ReadonlyArray<string>
  readonly value: string
  readonly ttlMs: number
  readonly resolve: (reply: number) => void
  readonly reject: (error: unknown) => void
}

const extendOne = (client: Client, keys: ReadonlyArray<string>, value: string, ttlMs: number): Promise<number> => {
  coalesceWrites(client)
  return runScript(client, Scripts.extend, keys, [value, ttlMs])
}

const sendBatch = (client: Client, batch: ReadonlyArray<Extension>): void => {
  if (batch.length === 1) {
    const { keys, reject, resolve, ttlMs, value } = batch[0]!
    return void extendOne(client, keys, value, ttlMs).then(resolve, reject)
  }
  coalesceWrites(client)
  const keys: Array<string> = []
  const args: Array<string | number> = []
  for (const extension of batch) {
    for (const key of extension.keys) keys.push(key)
    args.push(extension.keys.length, extension.value, extension.ttlMs)
  }
  runScript<ReadonlyArray<number>>(client, Scripts.extendMany, keys, args).then(
    (replies) => batch.forEach((extension, index) => extension.resolve(replies[index]!)),
    (error: unknown) => batch.forEach((extension) => extension.reject(error))
  )
}

/**
 * Collects the extensions asked for in one turn of the event loop and sends them as one command
 * (per `maxBatch` locks) once the turn's timers and callbacks have run: held locks extend on a
 * shared grid (see `keepAlive`), so thousands of them cost a few commands per grid step.
 */
const batchExtensions = (client: Client): LockNode["extendInBatch"] => {
  let pending: Array<Extension> = []
  const flush = () => {
    const batch = pending
    pending = []
    for (let start = 0; start < batch.length; start += maxBatch) sendBatch(client, batch.slice(start, start + maxBatch))
  }
  return (keys, value, ttlMs) =>
    new Promise<number>((resolve, reject) => {
      if (pending.length === 0) setImmediate(flush)
      pending.push({ keys, value, ttlMs, resolve, reject })
    })
}

/**
 * The address of a client for reports and errors: host and port only or, for a client that finds
 * its master through Sentinel, the master's name and the Sentinels' addresses.
 */
export const labelOf = (client: Client): string => {
  if (client.isCluster) return "cluster"
  const options = (client as Redis).options
  if (options.sentinels !== undefined && options.sentinels !== null && options.sentinels.length > 0) {
    const sentinels = options.sentinels.map((sentinel) => `${sentinel.host ?? "localhost"}:${sentinel.port ?? 26379}`)
    return `${options.name ?? "mymaster"}@${sentinels.join(",")}`
  }
  return options.path ? options.path : `${options.host ?? "localhost"}:${options.port ?? 6379}`
}

/**
 * Adapts an ioredis client. A single key is taken with a plain `SET NX PX`: one command, no
 * script. With `announce`, releases publish for waiters (see `Waker`); `onFailure` is told of failed
 * and timed-out calls.
 */
export const fromClient = (
  client: Client,
  announce = true,
  onFailure?: (node: string, error: Error) => void
): LockNode => {
  const extend: LockNode["extend"] = (keys, value, ttlMs) => extendOne(client, keys, value, ttlMs)
  return {
    label: labelOf(client),
    isCluster: client.isCluster,
    keyPrefix: client.options.keyPrefix ?? "",
    onFailure,
    acquire: (keys, value, ttlMs) => {
      coalesceWrites(client)
      return keys.length === 1
        ? client.set(keys[0]!, value, "PX", ttlMs, "NX").then(isOk)
        : runScript(client, Scripts.acquire, keys, [value, ttlMs])
    },
    acquireFenced: (keys, fenceKeys, value, ttlMs) => {
      coalesceWrites(client)
      return runScript(client, Scripts.acquireFenced, [...keys, ...fenceKeys], [value, ttlMs])
    },
    raiseFence: (keys, fenceKeys, value, token) => {
      coalesceWrites(client)
      return runScript(client, Scripts.raiseFence, [...keys, ...fenceKeys], [value, token])
    },
    extend,
    extendInBatch: client.isCluster ? extend : batchExtensions(client),
    release: (keys, value) => {
      coalesceWrites(client)
      return runScript(client, Scripts.release, keys, [value, announce ? channelPrefix : ""])
    }
  }
}
