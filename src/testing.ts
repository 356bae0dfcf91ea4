/**
 * A Redlock over in-memory nodes, for your own tests: no Redis, and time under your control. Keys
 * expire on the `Clock` of the fiber that builds the instance, so under `@effect/vitest`'s
 * `it.effect` a `TestClock.adjust` expires them; each node can be taken down, hung, slowed or
 * emptied to see how your code behaves when Redis fails. The lock logic is the library's own:
 * only the nodes are in memory.
 *
 * @example
 * ```ts
 * import { expect, it } from "@effect/vitest"
 * import { Effect } from "effect"
 * import { Redlock } from "effect-redlock"
 * import * as RedlockTest from "effect-redlock/testing"
 *
 * it.effect("the job reports Redis down, not contention", () =>
 *   Effect.gen(function*() {
 *     const nodes = yield* RedlockTest.Nodes
 *     yield* nodes[0]!.down
 *     yield* nodes[1]!.down
 *     const error = yield* Effect.flip(Redlock.withLock(Effect.void, "job", { retry: { times: 0 } }))
 *     expect(error._tag).toBe("QuorumUnavailable")
 *   }).pipe(Effect.provide(RedlockTest.layer({ nodes: 3 }))))
 * ```
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { Engine } from "./internal/engine.js"
import * as MemoryNode from "./internal/memoryNode.js"
import * as options_ from "./internal/options.js"
import { quorumOf } from "./internal/quorum.js"
import { makeService } from "./internal/service.js"
import * as Waker from "./internal/waker.js"
import * as Redlock from "./Redlock.js"
import type { InvalidArgument } from "./RedlockError.js"

/**
 * Options of the in-memory instance: the number of nodes, and the same settings as `Redlock.make`.
 * Any `wakeUp` other than `false` wakes waiters when a lock is released (as `"publish"` does).
 *
 * @since 0.1.0
 * @category models
 */
export interface TestOptions extends Redlock.InstanceOptions {
  /**
   * How many independent nodes vote (a majority must agree), from 1 to 99.
   * @default 3
   */
  readonly nodes?: number | undefined
}

/**
 * One in-memory node and the faults it can be put in. A control applies to the calls made after
 * it: a call already made is answered as the node was then.
 *
 * @since 0.1.0
 * @category models
 */
export interface TestNode {
  /** The node's name in reports and errors: `memory-0`, `memory-1`, … */
  readonly label: string
  /** From now on every call fails at once, as on a node that is down or unreachable. */
  readonly down: Effect.Effect<void>
  /**
   * From now on calls get no answer, as on a paused or overloaded node: operations wait for it up
   * to their `nodeTimeout` (in Clock time). The waiting calls run, in order, when the node is `up`
   * again, and fail when it goes `down`.
   */
  readonly hang: Effect.Effect<void>
  /**
   * From now on each call runs, and is answered, `latency` of Clock time after it is made, as on a
   * slow or distant node: a lock's validity shrinks by the time its attempt took, and a call slower
   * than `nodeTimeout` counts as a timeout (its write still lands, then its clean-up).
   */
  readonly slow: (latency: Duration.DurationInput) => Effect.Effect<void, InvalidArgument>
  /** Answers normally again, at once; runs the calls that waited while it hung. */
  readonly up: Effect.Effect<void>
  /** Forgets every key, as a node restarted without persistence does (fencing counters included). */
  readonly flush: Effect.Effect<void>
  /** The keys that have not expired, with their values: locks' owner values and fencing counters. */
  readonly keys: Effect.Effect<ReadonlyMap<string, string>>
  /**
   * Sets a resource's key on this node as another owner would: a lock that is not yours. It
   * expires after `ttl`, or never.
   */
  readonly occupy: (resource: string, ttl?: Duration.DurationInput) => Effect.Effect<void, InvalidArgument>
  /** Deletes a resource's key on this node, as if it expired early or was evicted. */
  readonly evict: (resource: string) => Effect.Effect<void, InvalidArgument>
  /** The number of calls the node received (answered, failed or waiting). */
  readonly calls: Effect.Effect<number>
}

/**
 * The in-memory nodes of the instance `layer` provides, in order.
 *
 * @since 0.1.0
 * @category tags
 */
export class Nodes extends Context.Tag("effect-redlock/testing/Nodes")<Nodes, ReadonlyArray<TestNode>>() {}

/**
 * An in-memory Redlock instance and its nodes.
 *
 * @since 0.1.0
 * @category models
 */
export interface TestInstance {
  /** The Redlock service over the nodes. */
  readonly redlock: Redlock.Redlock.Service
  /** The nodes' controls, in order. */
  readonly nodes: ReadonlyArray<TestNode>
}

/** An owner value no lock of this library ever has (those are UUIDs). */
const otherOwner = "effect-redlock/testing:another-owner"

const controlsOf = (node: MemoryNode.MemoryNode, keyOf: (resource: string) => string): TestNode => ({
  label: node.label,
  down: Effect.sync(() => node.setState("down")),
  hang: Effect.sync(() => node.setState("hung")),
  slow: (latency) =>
    Effect.flatMap(options_.validate(() => options_.millisOf("latency", latency)), (ms) => Effect.sync(() => node.setDelay(ms))),
  up: Effect.sync(() => node.setState("up")),
  flush: Effect.sync(() => node.flush()),
  keys: Effect.sync(() => node.entries()),
  occupy: (resource, ttl) =>
    Effect.flatMap(
      options_.validate(() => ({ key: keyOf(resource), ttlMs: ttl === undefined ? undefined : Math.ceil(options_.millisOf("ttl", ttl)) })),
      ({ key, ttlMs }) => Effect.sync(() => node.put(key, otherOwner, ttlMs))
    ),
  evict: (resource) =>
    Effect.flatMap(options_.validate(() => keyOf(resource)), (key) => Effect.sync(() => node.remove(key))),
  calls: Effect.sync(() => node.calls)
})

/**
 * Builds a Redlock over in-memory nodes; bad options fail with `InvalidArgument`. The nodes' keys
 * expire on the Clock of the fiber that runs this.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: TestOptions = {}): Effect.Effect<TestInstance, InvalidArgument> =>
  Effect.flatMap(
    options_.validate(() => {
      const checked = options_.objectOf("options", options)
      return {
        count: options_.nodeCountOf(checked.nodes),
        keyPrefix: options_.keyPrefixOf(checked.keyPrefix),
        wakeUp: options_.wakeUpOf(checked.wakeUp, []) !== false,
        settings: options_.baseSettings(checked)
      }
    }),
    ({ count, keyPrefix, settings, wakeUp }) =>
      Effect.clockWith((clock) =>
        Effect.sync(() => {
          const quorum = quorumOf(count)
          const wakeUps = wakeUp ? Waker.makeInMemory(count, quorum) : undefined
          const nodes = Array.from({ length: count }, (_, index) =>
            MemoryNode.make(`memory-${index}`, clock, (key, value) => wakeUps?.announce(index, key, value)))
          const engine: Engine = { nodes, quorum, keyPrefix, settings, waker: wakeUps?.waker }
          const keyOf = (resource: string) => options_.keysOf(resource, keyPrefix, nodes).keys[0]!
          return { redlock: makeService(engine), nodes: nodes.map((node) => controlsOf(node, keyOf)) }
        })
      )
  )

/**
 * Provides `Redlock` over in-memory nodes, and their controls as `Nodes`. Build it inside the
 * test (`Effect.provide` in `it.effect`) so that its keys expire on the test's Clock.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: TestOptions): Layer.Layer<Redlock.Redlock | Nodes, InvalidArgument> =>
  Layer.effectContext(
    Effect.map(make(options), ({ nodes, redlock }) => Context.make(Redlock.Redlock, redlock).pipe(Context.add(Nodes, nodes)))
  )
