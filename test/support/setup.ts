/** Shared test setup: real nodes, one ioredis client per node, and a Redlock over them. */
import { assert } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type { Redis, RedisOptions } from "ioredis"
import * as Redlock from "../../src/Redlock.js"
import * as RedisNodes from "./RedisNodes.js"

/** Options for `withRedlock`. */
export interface SetupOptions extends Omit<Redlock.InstanceOptions, "keyPrefix"> {
  readonly redisOptions?: RedisOptions
  readonly nodeArgs?: ReadonlyArray<string>
}

/**
 * Waits until the clients' nodes have executed everything sent on them so far (a PING answers
 * after them). An operation decides on a quorum and does not wait for the slowest node, so a test
 * that reads every node right after it must settle first.
 */
export const settle = (clients: ReadonlyArray<Redis>) =>
  Effect.forEach(
    clients,
    (client) => Effect.ignore(Effect.timeout(Effect.tryPromise(() => client.ping()), "1 second")),
    { concurrency: "unbounded", discard: true }
  )

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

/**
 * Checks a release of a lock held on every node: done once a quorum deleted the keys, every other
 * delete sent and not waited for. (`keysEverywhere` then sees them land.)
 */
export const assertReleased = (report: Redlock.ReleaseReport, quorum: number, label?: string): void => {
  assert.isAtLeast(report.released, quorum, label)
  for (const node of report.nodes) assert.include(["released", "pending"], node.outcome, label)
}

/** A resource name unique to the calling test. */
let counter = 0
export const resource = (name: string): string => `test:${name}:${process.pid}:${++counter}`

/** Fast retries for tests: a handful of attempts a few ms apart. */
export const quickRetry = { times: 3, delay: "20 millis", jitter: 0 } as const
