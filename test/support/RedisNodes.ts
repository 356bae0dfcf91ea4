/**
 * Real `redis-server` nodes for integration tests: spawned on free loopback ports as a scoped
 * resource, with fault controls (kill, pause, resume, restart) and admin helpers per node.
 *
 * @since 0.1.0
 */
import * as Command from "@effect/platform/Command"
import * as CommandExecutor from "@effect/platform/CommandExecutor"
import * as FileSystem from "@effect/platform/FileSystem"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { Redis, type RedisOptions } from "ioredis"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"

/**
 * Failure of the harness itself: redis-server missing or not starting, or an admin call failing
 * (connection refused, timeout while a node is paused, error reply).
 *
 * @since 0.1.0
 * @category errors
 */
export class RedisNodesError extends Data.TaggedError("RedisNodesError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Extra `redis-server` arguments for every node, e.g. `["--appendonly", "yes", "--appendfsync", "always"]`. */
  readonly args?: ReadonlyArray<string> | undefined
  /** @default "redis-server" */
  readonly binary?: string | undefined
  /** How long a node may take to answer after being spawned. @default "5 seconds" */
  readonly startTimeout?: Duration.DurationInput | undefined
  /** Bound on every admin helper call (connect plus command). @default "1 second" */
  readonly adminTimeout?: Duration.DurationInput | undefined
  /**
   * Run the processes as Sentinels (`redis-server sentinel.conf --sentinel`) watching one master,
   * instead of data nodes; `args` are ignored.
   */
  readonly sentinel?: SentinelOptions | undefined
}

/**
 * What the Sentinels watch.
 *
 * @since 0.1.0
 * @category models
 */
export interface SentinelOptions {
  /** The master's name, as clients ask for it. */
  readonly name: string
  readonly masterPort: number
  /** Sentinels that must agree the master is down. */
  readonly quorum: number
  /** @default 1000 */
  readonly downAfterMs?: number | undefined
}

/**
 * One redis-server process, restartable on the same port and data directory.
 *
 * @since 0.1.0
 * @category models
 */
export interface RedisNode {
  readonly index: number
  readonly host: "127.0.0.1"
  readonly port: number
  /** `redis://127.0.0.1:PORT` */
  readonly url: string
  /** PID of the current process, or of the last one when the node is down. */
  readonly pid: number
  /** The node's `--dir`, kept across restarts (AOF survives a restart). */
  readonly dir: string
  readonly isRunning: Effect.Effect<boolean>
  /** SIGCONT then SIGKILL the process group, and wait until the process has exited. No-op when down. */
  readonly kill: Effect.Effect<void>
  /** SIGSTOP: sockets stay open, commands sent meanwhile run after `resume`. */
  readonly pause: Effect.Effect<void, RedisNodesError>
  /** SIGCONT. No-op when down. */
  readonly resume: Effect.Effect<void>
  /** Kill (if running), then start the same command on the same port and wait until it answers. */
  readonly restart: Effect.Effect<void, RedisNodesError>
  /** Sorted `KEYS pattern`. */
  readonly keys: (pattern?: string) => Effect.Effect<ReadonlyArray<string>, RedisNodesError>
  readonly get: (key: string) => Effect.Effect<string | null, RedisNodesError>
  readonly pttl: (key: string) => Effect.Effect<number, RedisNodesError>
  readonly del: (...keys: ReadonlyArray<string>) => Effect.Effect<number, RedisNodesError>
  readonly flushAll: Effect.Effect<void, RedisNodesError>
  /** `CONFIG RESETSTAT`, zeroing `commandCalls`. */
  readonly resetStats: Effect.Effect<void, RedisNodesError>
  /**
   * Calls per command from `INFO commandstats` (lower-case names, subcommands as `client|kill`).
   * The harness's own admin calls (info, config, keys, get, pttl, del, …) are counted too.
   */
  readonly commandCalls: Effect.Effect<Readonly<Record<string, number>>, RedisNodesError>
  /** Calls of one command since start or `resetStats`; 0 when absent. */
  readonly commandCount: (name: string) => Effect.Effect<number, RedisNodesError>
  /** Any command, e.g. `call("DEBUG", "SLEEP", "0.2")`, `call("SCRIPT", "FLUSH")`. */
  readonly call: (command: string, ...args: ReadonlyArray<string | number>) => Effect.Effect<unknown, RedisNodesError>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface RedisNodes {
  readonly nodes: ReadonlyArray<RedisNode>
  readonly urls: ReadonlyArray<string>
  /**
   * One ioredis client per node for the code under test (an 'error' listener attached), waiting
   * for 'ready' on running nodes; disconnected when the scope closes.
   */
  readonly clients: (options?: RedisOptions) => Effect.Effect<ReadonlyArray<Redis>, never, Scope.Scope>
}

const host = "127.0.0.1"
const liveClock = Clock.make()
const live = <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.withClock(self, liveClock)

const livePids = new Set<number>()
const liveDirs = new Set<string>()
let exitHookInstalled = false

const signal = (pid: number, sig: NodeJS.Signals): void => {
  try {
    process.kill(-pid, sig)
  } catch {
    try {
      process.kill(pid, sig)
    } catch {
      // already gone
    }
  }
}

const killAllSync = () => {
  for (const pid of livePids) {
    signal(pid, "SIGCONT")
    signal(pid, "SIGKILL")
  }
  for (const dir of liveDirs) Fs.rmSync(dir, { recursive: true, force: true })
}

/** Safety net for runs that end without closing the scope: exit, or a signal nobody else handles. */
const installExitHook = () => {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.once("exit", killAllSync)
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    if (process.listenerCount(sig) > 0) continue
    process.once(sig, () => {
      killAllSync()
      process.kill(process.pid, sig)
    })
  }
}

const freePorts = (n: number) =>
  Effect.async<ReadonlyArray<number>, RedisNodesError>((resume) => {
    const servers = Array.from({ length: n }, () => Net.createServer())
    const closeAll = (then: () => void) => {
      let open = servers.length
      if (open === 0) return then()
      for (const server of servers) server.close(() => --open === 0 && then())
    }
    Promise.all(servers.map((server) =>
      new Promise<number>((ok, ko) => {
        server.once("error", ko)
        server.listen(0, host, () => {
          const address = server.address()
          ok(typeof address === "object" && address !== null ? address.port : 0)
        })
      })
    )).then(
      (ports) => closeAll(() => resume(Effect.succeed(ports))),
      (cause) => closeAll(() => resume(Effect.fail(new RedisNodesError({ message: "no free port", cause }))))
    )
  }).pipe(Effect.repeat({ until: (ports) => !ports.includes(6379) }))

const admin = <A>(port: number, timeout: Duration.Duration, f: (redis: Redis) => Promise<A>, what: string) => {
  let connectionError: unknown
  return Effect.acquireUseRelease(
    Effect.sync(() => {
      const redis = new Redis({
        host,
        port,
        lazyConnect: true,
        maxRetriesPerRequest: 0,
        enableOfflineQueue: false,
        enableReadyCheck: false,
        retryStrategy: () => null,
        connectTimeout: Duration.toMillis(timeout),
        disconnectTimeout: 50
      })
      redis.on("error", (error) => connectionError ??= error)
      return redis
    }),
    (redis) =>
      Effect.tryPromise({
        try: () => redis.connect().then(() => f(redis)),
        catch: (error) => {
          const cause = connectionError ?? error
          return new RedisNodesError({ message: `${what} on ${host}:${port} failed: ${String(cause)}`, cause })
        }
      }).pipe(
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () =>
            new RedisNodesError({ message: `${what} on ${host}:${port} timed out after ${Duration.format(timeout)}` })
        })
      ),
    (redis) => Effect.sync(() => redis.disconnect())
  )
}

const parseCommandStats = (info: string): Record<string, number> => {
  const calls: Record<string, number> = {}
  for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    calls[match[1]!] = Number(match[2])
  }
  return calls
}

interface Instance {
  readonly pid: number
  readonly process: CommandExecutor.Process
  readonly scope: Scope.CloseableScope
  readonly stderr: Array<string>
}

const isRunning = (instance: Instance | undefined): Effect.Effect<boolean> =>
  instance === undefined ? Effect.succeed(false) : Effect.orElseSucceed(instance.process.isRunning, () => false)

interface NodeConfig {
  readonly index: number
  readonly dir: string
  readonly binary: string
  readonly args: ReadonlyArray<string>
  readonly sentinel: SentinelOptions | undefined
  readonly startTimeout: Duration.Duration
  readonly adminTimeout: Duration.Duration
}

const makeNode = (
  config: NodeConfig,
  firstPort: number,
  executor: CommandExecutor.CommandExecutor,
  fs: FileSystem.FileSystem
) =>
  Effect.gen(function*() {
    const logFile = Path.join(config.dir, "redis.log")
    let port = firstPort
    let current: Instance | undefined
    let lastPid = 0

    const stop = Effect.suspend(() => {
      const instance = current
      if (instance === undefined) return Effect.void
      return Effect.gen(function*() {
        if (yield* isRunning(instance)) {
          signal(instance.pid, "SIGCONT")
          signal(instance.pid, "SIGKILL")
        }
        yield* Effect.exit(instance.process.exitCode).pipe(Effect.timeout("5 seconds"), Effect.ignore)
        yield* Scope.close(instance.scope, Exit.void)
        livePids.delete(instance.pid)
        current = undefined
      })
    }).pipe(Effect.uninterruptible, live)

    const sentinelConfig = (sentinel: SentinelOptions) =>
      Effect.gen(function*() {
        const path = Path.join(config.dir, "sentinel.conf")
        yield* fs.writeFileString(
          path,
          [
            `sentinel monitor ${sentinel.name} ${host} ${sentinel.masterPort} ${sentinel.quorum}`,
            `sentinel down-after-milliseconds ${sentinel.name} ${sentinel.downAfterMs ?? 1_000}`,
            `sentinel failover-timeout ${sentinel.name} 10000`,
            ""
          ].join("\n")
        ).pipe(Effect.orDie)
        return [path, "--sentinel"]
      })

    const spawn = Effect.gen(function*() {
      const scope = yield* Scope.make()
      // A Sentinel rewrites its config file: it is written once, then kept across restarts.
      const sentinelArgs = config.sentinel === undefined
        ? []
        : (yield* fs.exists(Path.join(config.dir, "sentinel.conf")).pipe(Effect.orElseSucceed(() => false)))
        ? [Path.join(config.dir, "sentinel.conf"), "--sentinel"]
        : yield* sentinelConfig(config.sentinel)
      const dataArgs = config.sentinel === undefined
        ? ["--save", "", "--appendonly", "no", "--enable-debug-command", "local", ...config.args]
        : []
      const command = Command.make(
        config.binary,
        ...sentinelArgs,
        "--port",
        String(port),
        "--bind",
        host,
        "--protected-mode",
        "no",
        "--dir",
        config.dir,
        "--logfile",
        logFile,
        ...dataArgs
      ).pipe(Command.stdout("inherit"))
      const child = yield* executor.start(command).pipe(
        Scope.extend(scope),
        Effect.tapError(() => Scope.close(scope, Exit.void)),
        Effect.mapError((cause) =>
          new RedisNodesError({
            message: cause._tag === "SystemError" && cause.reason === "NotFound"
              ? `${config.binary} not found on PATH (apt-get install -y redis-server)`
              : `cannot spawn ${config.binary}: ${cause.message}`,
            cause
          })
        )
      )
      const stderr: Array<string> = []
      yield* Stream.decodeText(child.stderr).pipe(
        Stream.runForEach((text) => Effect.sync(() => stderr.push(text))),
        Effect.ignore,
        Effect.forkIn(scope)
      )
      current = { pid: child.pid, process: child, scope, stderr }
      lastPid = child.pid
      livePids.add(child.pid)
    }).pipe(Effect.uninterruptible)

    const describeExit = (instance: Instance) =>
      fs.readFileString(logFile).pipe(
        Effect.orElseSucceed(() => ""),
        Effect.map((log) => [...instance.stderr, ...log.trim().split("\n").slice(-5)].join("\n").trim())
      )

    const awaitReady = Effect.gen(function*() {
      const instance = current!
      const deadline = Date.now() + Duration.toMillis(config.startTimeout)
      while (true) {
        // INFO answers while the dataset is still loading; a node is ready once it is ours and loaded
        // (a Sentinel has no dataset).
        const info = yield* admin(port, Duration.millis(500), (redis) => redis.info(), "INFO").pipe(Effect.option)
        if (
          info._tag === "Some" && info.value.includes(`process_id:${instance.pid}\r`) &&
          (config.sentinel !== undefined || info.value.includes("loading:0\r"))
        ) return
        if (!(yield* isRunning(instance))) {
          const detail = yield* describeExit(instance)
          return yield* new RedisNodesError({
            message: `redis-server on port ${port} exited before answering${detail ? `:\n${detail}` : ""}`
          })
        }
        if (Date.now() > deadline) {
          return yield* new RedisNodesError({
            message: `redis-server on port ${port} did not answer within ${Duration.format(config.startTimeout)}`
          })
        }
        yield* Effect.sleep("10 millis")
      }
    })

    const start = spawn.pipe(Effect.zipRight(awaitReady), Effect.tapError(() => stop))

    const startFresh = (attempt: number): Effect.Effect<void, RedisNodesError> =>
      start.pipe(
        Effect.catchTag("RedisNodesError", (error) =>
          attempt < 5 && /Address already in use/i.test(error.message)
            ? freePorts(1).pipe(Effect.flatMap(([next]) => {
              port = next!
              return startFresh(attempt + 1)
            }))
            : Effect.fail(error))
      )

    yield* Effect.addFinalizer(() => stop)
    yield* startFresh(1)

    const run = <A>(what: string, f: (redis: Redis) => Promise<A>) =>
      live(admin(port, config.adminTimeout, f, what))

    const node: RedisNode = {
      index: config.index,
      host,
      port,
      url: `redis://${host}:${port}`,
      get pid() {
        return lastPid
      },
      dir: config.dir,
      isRunning: Effect.suspend(() => isRunning(current)),
      kill: stop,
      pause: Effect.suspend(() =>
        current === undefined
          ? Effect.fail(new RedisNodesError({ message: `cannot pause node ${config.index}: not running` }))
          : Effect.sync(() => signal(current!.pid, "SIGSTOP"))
      ),
      resume: Effect.sync(() => current && signal(current.pid, "SIGCONT")),
      restart: live(stop.pipe(Effect.zipRight(start))),
      keys: (pattern = "*") => run("KEYS", (redis) => redis.keys(pattern).then((keys) => keys.sort())),
      get: (key) => run("GET", (redis) => redis.get(key)),
      pttl: (key) => run("PTTL", (redis) => redis.pttl(key)),
      del: (...keys) => run("DEL", (redis) => keys.length === 0 ? Promise.resolve(0) : redis.del(...keys)),
      flushAll: run("FLUSHALL", (redis) => redis.flushall()).pipe(Effect.asVoid),
      resetStats: run("CONFIG RESETSTAT", (redis) => redis.config("RESETSTAT")).pipe(Effect.asVoid),
      commandCalls: run("INFO commandstats", (redis) => redis.info("commandstats").then(parseCommandStats)),
      commandCount: (name) =>
        run("INFO commandstats", (redis) => redis.info("commandstats").then(parseCommandStats)).pipe(
          Effect.map((calls) => calls[name.toLowerCase()] ?? 0)
        ),
      call: (command, ...args) => run(command, (redis) => redis.call(command, ...args))
    }
    return node
  })

const openClient = (node: RedisNode, options: RedisOptions | undefined) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const redis = new Redis({ ...options, host, port: node.port })
      redis.on("error", () => {})
      return redis
    }),
    (redis) => Effect.sync(() => redis.disconnect())
  ).pipe(
    Effect.tap((redis) =>
      Effect.whenEffect(
        Effect.async<void>((resume) => {
          redis.once("ready", () => resume(Effect.void))
          redis.once("end", () => resume(Effect.void))
        }).pipe(Effect.timeout("5 seconds"), Effect.ignore),
        Effect.map(node.isRunning, (running) => running && options?.lazyConnect !== true)
      )
    ),
    live
  )

/**
 * Start `n` redis-server nodes on free loopback ports, each with its own fresh `--dir`, and wait
 * until each answers. Closing the scope kills every process started (by PID) and removes the dirs.
 *
 * @since 0.1.0
 * @category constructors
 * @example
 * Effect.gen(function*() {
 *   const { nodes, clients } = yield* RedisNodes.make(3, { args: ["--maxmemory-policy", "noeviction"] })
 *   const redis = yield* clients()
 * })
 */
export const make = (
  n: number,
  options: Options = {}
): Effect.Effect<RedisNodes, RedisNodesError, Scope.Scope> =>
  Effect.gen(function*() {
    installExitHook()
    const fs = yield* FileSystem.FileSystem
    const executor = yield* CommandExecutor.CommandExecutor
    const outer = yield* Effect.scope
    const scope = yield* Scope.fork(outer, ExecutionStrategy.sequential)
    const build = Effect.gen(function*() {
      const root = yield* fs.makeTempDirectoryScoped({ prefix: "effect-redlock-" }).pipe(
        Effect.mapError((cause) => new RedisNodesError({ message: "cannot create a temp dir", cause }))
      )
      liveDirs.add(root)
      yield* Effect.addFinalizer(() => Effect.sync(() => liveDirs.delete(root)))
      const ports = yield* freePorts(n)
      const nodes = yield* Effect.forEach(ports, (port, index) => {
        const dir = Path.join(root, `node-${index}`)
        return fs.makeDirectory(dir).pipe(
          Effect.orDie,
          Effect.zipRight(makeNode({
            index,
            dir,
            binary: options.binary ?? "redis-server",
            args: options.args ?? [],
            sentinel: options.sentinel,
            startTimeout: Duration.decode(options.startTimeout ?? "5 seconds"),
            adminTimeout: Duration.decode(options.adminTimeout ?? "1 second")
          }, port, executor, fs))
        )
      }, { concurrency: "unbounded" })
      return {
        nodes,
        urls: nodes.map((node) => node.url),
        clients: (options) => Effect.forEach(nodes, (node) => openClient(node, options), { concurrency: "unbounded" })
      } satisfies RedisNodes
    })
    return yield* build.pipe(
      Scope.extend(scope),
      Effect.onError((cause) => Scope.close(scope, Exit.failCause(cause)))
    )
  }).pipe(Effect.provide(NodeContext.layer), live)

/**
 * Waits until the clients' nodes have executed everything sent on them so far (a PING answers
 * after them). An operation decides on a quorum and does not wait for the slowest node, so a test
 * that reads every node right after it must settle first.
 *
 * @since 0.1.0
 */
export const settle = (clients: ReadonlyArray<Redis>) =>
  Effect.forEach(
    clients,
    (client) => Effect.ignore(Effect.timeout(Effect.tryPromise(() => client.ping()), "1 second")),
    { concurrency: "unbounded", discard: true }
  )
