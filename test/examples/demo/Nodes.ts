/**
 * The Redis side of the demo: three lock nodes and the ledger, either started here with the test
 * harness (and faulted), or given as URLs (and left alone).
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { Redis } from "ioredis"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as RedisNodes from "../../support/RedisNodes.js"
import type { DemoOptions } from "./Options.js"

export class RedisServerMissing extends Data.TaggedError("RedisServerMissing")<{}> {
  override get message() {
    return [
      "redis-server was not found on PATH. The demo starts its own Redis nodes; install Redis first:",
      "  Debian/Ubuntu:  sudo apt-get install -y redis-server",
      "  macOS:          brew install redis",
      "or point the demo at running nodes: REDLOCK_NODES=redis://host1:6379,redis://host2:6379,redis://host3:6379"
    ].join("\n")
  }
}

export interface NodeStatus {
  readonly label: string
  readonly up: boolean
}

export interface DemoNodes {
  /** The lock nodes' URLs, given to the workers. */
  readonly urls: ReadonlyArray<string>
  /** The ledger's URL (see Ledger.ts). */
  readonly ledger: string
  /** The lock nodes this demo started, and may kill; empty when the nodes were given. */
  readonly owned: ReadonlyArray<RedisNodes.RedisNode>
  /** Whether each lock node answers right now, as a client connected to it sees it. */
  readonly status: () => ReadonlyArray<NodeStatus>
}

const isOnPath = (binary: string): boolean =>
  (process.env["PATH"] ?? "").split(Path.delimiter).some((dir) => {
    try {
      Fs.accessSync(Path.join(dir, binary), Fs.constants.X_OK)
      return true
    } catch {
      return false
    }
  })

const labelOf = (url: string): string => {
  const { hostname, port } = new URL(url)
  return `${hostname}:${port || "6379"}`
}

/** A client that only watches the connection: reconnects every 100 ms, queues nothing. */
const probe = (url: string) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const redis = new Redis(url, {
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        connectTimeout: 500,
        retryStrategy: () => 100
      })
      redis.on("error", () => {})
      return redis
    }),
    (redis) => Effect.sync(() => redis.disconnect())
  )

const withStatus = (urls: ReadonlyArray<string>) =>
  Effect.map(Effect.forEach(urls, probe), (probes) => () =>
    probes.map((redis, index): NodeStatus => ({ label: labelOf(urls[index]!), up: redis.status === "ready" })))

/** Starts the nodes (or connects to the given ones); everything started stops with the scope. */
export const make = (options: DemoOptions) =>
  Effect.gen(function*() {
    if (options.nodes !== undefined) {
      const { ledger = options.nodes[0]!, nodes } = options
      return { urls: nodes, ledger, owned: [], status: yield* withStatus(nodes) } satisfies DemoNodes
    }
    if (!isOnPath("redis-server")) return yield* new RedisServerMissing()
    const args = ["--maxmemory-policy", "noeviction"]
    const [lockNodes, ledgerNode] = yield* Effect.all([RedisNodes.make(3, { args }), RedisNodes.make(1, { args })], {
      concurrency: "unbounded"
    })
    return {
      urls: lockNodes.urls,
      ledger: ledgerNode.urls[0]!,
      owned: lockNodes.nodes,
      status: yield* withStatus(lockNodes.urls)
    } satisfies DemoNodes
  })
