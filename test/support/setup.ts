/** Shared test setup: real nodes, one ioredis client per node, and a Redlock over them. */
import * as Effect from "effect/Effect"
import type { RedisOptions } from "ioredis"
import * as Redlock from "../../src/Redlock.js"
import * as RedisNodes from "./RedisNodes.js"

/** Options for `withRedlock`. */
export interface SetupOptions extends Omit<Redlock.InstanceOptions, "keyPrefix"> {
  readonly redisOptions?: RedisOptions
  readonly nodeArgs?: ReadonlyArray<string>
}

/** See `RedisNodes.settle`. */
export const settle = RedisNodes.settle

/** Lets promise callbacks and forked fibers run without moving the clock (one turn of the event loop). */
export const nextTurn: Effect.Effect<void> = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

/** Starts `n` nodes and a Redlock over clients to them, all closed with the scope. */
export const withRedlock = (n: number, options: SetupOptions = {}) =>
  Effect.gen(function*() {
    const { nodeArgs, redisOptions, ...instance } = options
    const cluster = yield* RedisNodes.make(n, { args: nodeArgs })
    const clients = yield* cluster.clients(redisOptions)
    const redlock = yield* Redlock.make({ ...instance, clients })
    return { cluster, nodes: cluster.nodes, clients, redlock, settle: settle(clients) }
  })

/** Reads every 10 ms until `done` holds, for at most `seconds`, and returns the last reading. */
export const eventually = <A, E>(read: Effect.Effect<A, E>, done: (value: A) => boolean, seconds = 4) =>
  Effect.gen(function*() {
    const until = Date.now() + seconds * 1000
    let value = yield* read
    while (!done(value) && Date.now() < until) {
      yield* Effect.sleep("10 millis")
      value = yield* read
    }
    return value
  })

/**
 * The keys on every node that match a pattern, node by node, once none is left or four seconds
 * passed: releases and clean-ups reach the slowest node after the operation returned.
 */
export const keysEverywhere = (cluster: RedisNodes.RedisNodes, pattern = "*") =>
  eventually(
    Effect.forEach(cluster.nodes, (node) => node.keys(pattern)),
    (perNode) => perNode.every((keys) => keys.length === 0)
  )

/** A resource name unique to the calling test. */
let counter = 0
export const resource = (name: string): string => `test:${name}:${process.pid}:${++counter}`

/** Fast retries for tests: a handful of attempts a few ms apart. */
export const quickRetry = { times: 3, delay: "20 millis", jitter: 0 } as const
