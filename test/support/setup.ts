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

/** Starts `n` nodes and a Redlock over clients to them, all closed with the scope. */
export const withRedlock = (n: number, options: SetupOptions = {}) =>
  Effect.gen(function*() {
    const { nodeArgs, redisOptions, ...instance } = options
    const cluster = yield* RedisNodes.make(n, { args: nodeArgs })
    const clients = yield* cluster.clients(redisOptions)
    const redlock = yield* Redlock.make({ ...instance, clients })
    return { cluster, nodes: cluster.nodes, clients, redlock }
  })

/** The keys on every node that match a pattern, node by node. */
export const keysEverywhere = (cluster: RedisNodes.RedisNodes, pattern = "*") =>
  Effect.forEach(cluster.nodes, (node) => node.keys(pattern))

/** A resource name unique to the calling test. */
let counter = 0
export const resource = (name: string): string => `test:${name}:${process.pid}:${++counter}`

/** Fast retries for tests: a handful of attempts a few ms apart. */
export const quickRetry = { times: 3, delay: "20 millis", jitter: 0 } as const
