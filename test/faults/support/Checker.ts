/**
 * The mutual-exclusion checker: P worker processes × W fibers contend for one resource on fresh
 * lock nodes (behind proxies), a nemesis breaks things meanwhile, every critical section is
 * recorded in the ledger (a Redis that is never faulted), and afterwards the history is swept for
 * overlaps, overstays and stale writes. `run(config)` is one such run; it returns a `Report`.
 */
import * as Command from "@effect/platform/Command"
import type * as CommandExecutor from "@effect/platform/CommandExecutor"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Exit from "effect/Exit"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { Redis } from "ioredis"
import * as Path from "node:path"
import * as RedisNodes from "../../support/RedisNodes.js"
import * as Ledger from "./Ledger.js"
import {
  acquireBudgetMs,
  encode,
  lostBudgetMs,
  type RetryConfig,
  type Role,
  typedTags,
  type TypedTag,
  type WorkerArgs,
  type WorkerConfig,
  type WorkerResult
} from "./Protocol.js"
import * as Proxy from "./Proxy.js"
import { sweep, type SweepReport } from "./Sweep.js"

export class CheckerError extends Data.TaggedError("CheckerError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

/** What a nemesis may use. Its effect is forked when the workers start and interrupted when they end. */
export interface NemesisEnv {
  readonly nodes: ReadonlyArray<RedisNodes.RedisNode>
  /** One proxy per node (the workers connect through them), or empty when the run is not proxied. */
  readonly proxies: ReadonlyArray<Proxy.Proxy>
  /** The lock's key on the nodes. */
  readonly key: string
  readonly ttlMs: number
  /** Records a fault event in the ledger's clock (recovery times are measured from them). */
  readonly mark: (fault: string, phase: "inject" | "heal") => Effect.Effect<void>
  /** Waits until the key exists on node `index` (someone holds the lock); false after `timeoutMs`. */
  readonly awaitHeld: (index: number, timeoutMs?: number) => Effect.Effect<boolean>
  /** A throwaway redis-server (started on first use, stopped with the run), e.g. for REPLICAOF. */
  readonly spare: Effect.Effect<RedisNodes.RedisNode, RedisNodes.RedisNodesError>
  /** The proxies of the workers that have links of their own (`Config.isolate`), by worker id. */
  readonly workerProxies: ReadonlyMap<string, ReadonlyArray<Proxy.Proxy>>
  /** The section most recently entered, by the ledger: its worker, and whether it has ended. */
  readonly holder: Effect.Effect<{ readonly worker: string; readonly token: number; readonly ended: boolean } | undefined>
}

export interface Nemesis {
  readonly name: string
  readonly run: (env: NemesisEnv) => Effect.Effect<void, unknown, Scope.Scope>
}

export interface Config {
  readonly name: string
  /** Lock nodes. @default 3 */
  readonly nodes?: number
  /** Worker processes. @default 3 */
  readonly processes?: number
  /** Fibers per worker. @default 3 */
  readonly fibers?: number
  /** How long the workers contend, from the go signal. @default 3000 */
  readonly runMs?: number
  /** @default 1000 */
  readonly ttlMs?: number
  /** @default 50 */
  readonly nodeTimeoutMs?: number
  /** @default { times: 10, delayMs: 30, jitter: 0.5 } */
  readonly retry?: RetryConfig
  /** @default true */
  readonly autoExtend?: boolean
  /**
   * Holders take fencing tokens and the sweep checks they grow in the order holders entered.
   * Needs nodes that keep their data: a node restarted empty, or resynchronised as a replica,
   * forgets its counters. @default false
   */
  readonly fencing?: boolean
  /** @default [5, 20] */
  readonly workMs?: readonly [number, number]
  /** @default 5 */
  readonly actEveryMs?: number
  /** @default 10 */
  readonly idleMs?: number
  /** The role of each fiber. @default withLock for even fibers, acquire for odd ones */
  readonly roles?: (process: number, fiber: number) => Role
  /** @default 2500 */
  readonly zombieHoldMs?: number
  /** @default 2500 */
  readonly stallMs?: number
  /** Extra redis-server arguments for the lock nodes. */
  readonly nodeArgs?: ReadonlyArray<string>
  /** Put a proxy in front of every node. @default true */
  readonly proxied?: boolean
  /**
   * Workers (by index) that reach the nodes through proxies of their own, so a nemesis can cut
   * one client off (a client-side partition) while the others still reach every node.
   */
  readonly isolate?: ReadonlyArray<number>
  /** ioredis options for the workers' lock clients (JSON). @default {} (ioredis defaults) */
  readonly redisOptions?: Readonly<Record<string, unknown>>
  readonly nemesis?: Nemesis
  /** Keep every acquisition latency (soak). @default false */
  readonly keepLatencies?: boolean
}

export interface FaultEvent {
  readonly fault: string
  readonly phase: "inject" | "heal"
  /** Ledger ms. */
  readonly at: number
}

export interface Recovery {
  readonly fault: string
  readonly injectedAt: number
  readonly healedAt: number | undefined
  /** From the heal to the next entry into the critical section, ms (undefined: none after). */
  readonly recoveryMs: number | undefined
  /** The longest time without an entry between injection and heal, ms. */
  readonly longestGapMs: number
  /** Entries while the fault was active. */
  readonly entriesDuring: number
}

export interface Totals {
  readonly calls: number
  readonly entered: number
  readonly failures: Readonly<Record<TypedTag, number>>
  readonly untyped: number
  readonly overBudget: number
  readonly lostOverBudget: number
  readonly maxFailedAcquireMs: number
  readonly maxLostMs: number
  readonly ledgerErrors: number
  readonly unhandled: number
  readonly interruptedAtEnd: number
}

export interface Report {
  readonly name: string
  readonly nemesis: string
  readonly sweep: Omit<SweepReport, "enters">
  readonly workers: ReadonlyArray<WorkerResult>
  readonly totals: Totals
  /** Workers that exited without a result, with a non-zero code, or had to be killed. */
  readonly badExits: ReadonlyArray<string>
  /** "Unhandled error event" lines printed by ioredis in any worker. */
  readonly unhandledErrorEvents: number
  /** Untyped failures and unhandled rejections, as the workers saw them. */
  readonly samples: ReadonlyArray<string>
  /** Nodes holding the lock's key right after the workers exited (and the nemesis healed). */
  readonly keysLeft: number
  /** Of those, keys without an expiry (never go away by themselves). */
  readonly keysWithoutTtl: number
  /** Nodes still holding the key one ttl later. */
  readonly keysLeftAfterTtl: number
  readonly faults: ReadonlyArray<FaultEvent>
  readonly recoveries: ReadonlyArray<Recovery>
  readonly violations: number
  readonly elapsedMs: number
  /** When each phase ended, ms from the start of the run (nodes, ready, workersExited, checked). */
  readonly phases: Readonly<Record<string, number>>
  readonly budgets: { readonly acquireMs: number; readonly lostMs: number }
}

const root = Path.resolve(new URL("../../..", import.meta.url).pathname)
const workerScript = Path.join(root, "test/faults/worker.ts")

const livePids = new Set<number>()
let exitHook = false
const installExitHook = () => {
  if (exitHook) return
  exitHook = true
  process.once("exit", () => {
    for (const pid of livePids) {
      try {
        process.kill(-pid, "SIGKILL")
      } catch {
        // gone
      }
    }
  })
}

const defaultRoles = (_process: number, fiber: number): Role => fiber % 2 === 0 ? "withLock" : "acquire"

interface Spawned {
  readonly id: string
  readonly process: CommandExecutor.Process
  readonly stdout: Fiber.Fiber<string>
  readonly stderr: Fiber.Fiber<string>
}

const collect = (stream: Stream.Stream<Uint8Array, unknown>) =>
  stream.pipe(
    Stream.decodeText(),
    Stream.runFold("", (all, text) => all.length > 200_000 ? all : all + text),
    Effect.orElseSucceed(() => "")
  )

const spawnWorker = (args: WorkerArgs) =>
  Effect.gen(function*() {
    const command = Command.make("node", "--import", "tsx", workerScript, encode(args)).pipe(
      Command.workingDirectory(root)
    )
    const process = yield* Command.start(command).pipe(
      Effect.mapError((cause) => new CheckerError({ message: `cannot start worker ${args.id}`, cause }))
    )
    livePids.add(process.pid)
    yield* Effect.addFinalizer(() => Effect.sync(() => livePids.delete(process.pid)))
    const stdout = yield* Effect.forkScoped(collect(process.stdout))
    const stderr = yield* Effect.forkScoped(collect(process.stderr))
    return { id: args.id, process, stdout, stderr } satisfies Spawned
  })

/**
 * Worker processes that take one run after another (starting a Node process with tsx costs
 * about a second of CPU; a pool pays it once), and the ledger node they write to.
 */
export interface Pool {
  readonly size: number
  readonly ledgerPort: number
  readonly ledger: Redis
  readonly workers: ReadonlyArray<Spawned>
  /** Set when a worker died or hung: later runs fail at once. */
  broken: string | undefined
  /** Filled when the pool is closed: how each worker ended. */
  readonly exits: Array<string>
}

const isRunning = (worker: Spawned) => Effect.orElseSucceed(worker.process.isRunning, () => false)

/** Starts `size` worker processes and the ledger; closing the scope stops them (exit job, then kill). */
export const pool = (size: number): Effect.Effect<Pool, CheckerError | RedisNodes.RedisNodesError, Scope.Scope> =>
  Effect.gen(function*() {
    installExitHook()
    const ledgerNode = yield* RedisNodes.make(1)
    const ledgerPort = ledgerNode.nodes[0]!.port
    const ledger = yield* Effect.acquireRelease(
      Effect.sync(() => Ledger.open(ledgerPort)),
      (redis) => Effect.sync(() => redis.disconnect())
    )
    const exits: Array<string> = []
    const workers = yield* Effect.forEach(
      Array.from({ length: size }, (_, index) => ({ id: `w${index}`, ledgerPort, parentPid: process.pid })),
      spawnWorker
    ).pipe(Effect.provide(NodeContext.layer))
    // Runs before the executor's own finalizers (which SIGTERM whatever still runs): ask nicely first.
    yield* Effect.addFinalizer((exit) =>
      Effect.gen(function*() {
        if (Exit.isFailure(exit)) {
          // Interrupted or failed: the workers may be mid-run; stop them now.
          for (const worker of workers) yield* Effect.ignore(worker.process.kill("SIGKILL"))
          return
        }
        for (const worker of workers) {
          yield* Effect.ignore(Effect.tryPromise(() => ledger.rpush(Ledger.poolKeys.jobs(worker.id), "exit")))
        }
        for (const worker of workers) {
          const code = yield* worker.process.exitCode.pipe(Effect.timeout("10 seconds"), Effect.option)
          if (Option.isNone(code)) {
            yield* Effect.ignore(worker.process.kill("SIGKILL"))
            exits.push(`${worker.id}: killed (did not exit within 10 s)`)
          } else exits.push(`${worker.id}: exit code ${code.value}`)
          const stderr = yield* Fiber.join(worker.stderr)
          if (stderr.includes("LINGER")) exits.push(`${worker.id}: ${stderr.slice(stderr.indexOf("LINGER"), 500)}`)
        }
      })
    )
    const startedBy = Date.now() + 60_000
    while (Number((yield* Effect.promise(() => ledger.get(Ledger.poolKeys.started))) ?? 0) < size) {
      for (const worker of workers) {
        if (!(yield* isRunning(worker))) {
          const stderr = yield* Fiber.join(worker.stderr)
          return yield* new CheckerError({ message: `worker ${worker.id} exited at start:\n${stderr}` })
        }
      }
      if (Date.now() > startedBy) return yield* new CheckerError({ message: "workers not started within 60 s" })
      yield* Effect.sleep("20 millis")
    }
    const result: Pool = { size, ledgerPort, ledger, workers, broken: undefined, exits }
    return result
  })

let runCounter = 0

/**
 * Runs the checker once: fresh lock nodes (behind proxies), the pool's workers contend while the
 * nemesis works, then the sweep. Without a pool it starts (and stops) its own, and reports how the
 * workers exited.
 */
export const run = (
  config: Config,
  workerPool?: Pool
): Effect.Effect<Report, CheckerError | RedisNodes.RedisNodesError> =>
  workerPool !== undefined
    ? runIn(config, workerPool)
    : Effect.scoped(Effect.gen(function*() {
      const own = yield* pool(config.processes ?? 3)
      const report = yield* runIn(config, own)
      return { own, report }
    })).pipe(
      // The pool is closed now: its workers' exits belong to the report.
      Effect.map(({ own, report }) => ({
        ...report,
        badExits: [...report.badExits, ...own.exits.filter((line) => !line.endsWith("exit code 0"))]
      }))
    )

const runIn = (config: Config, workerPool: Pool): Effect.Effect<Report, CheckerError | RedisNodes.RedisNodesError> =>
  Effect.scoped(Effect.gen(function*() {
    if (workerPool.broken !== undefined) {
      return yield* new CheckerError({ message: `the worker pool is broken: ${workerPool.broken}` })
    }
    const startedAt = Date.now()
    const n = config.nodes ?? 3
    const processes = config.processes ?? workerPool.size
    if (processes > workerPool.size) {
      return yield* new CheckerError({ message: `${processes} processes wanted, the pool has ${workerPool.size}` })
    }
    const fibers = config.fibers ?? 3
    const runMs = config.runMs ?? 3_000
    const ttlMs = config.ttlMs ?? 1_000
    const nodeTimeoutMs = config.nodeTimeoutMs ?? 50
    const retry = config.retry ?? { times: 10, delayMs: 30, jitter: 0.5 }
    const workMs = config.workMs ?? [5, 20]
    const roles = config.roles ?? defaultRoles
    const runId = `run:${process.pid}:${++runCounter}`
    const resource = `faults:${config.name.replace(/[^a-z0-9]+/gi, "-")}:${process.pid}:${runCounter}`
    const ledger = Ledger.client(workerPool.ledger, runId, "checker")
    const workers = workerPool.workers.slice(0, processes)

    const cluster = yield* RedisNodes.make(n, { args: config.nodeArgs })
    const proxies = config.proxied === false ? [] : yield* Proxy.makeAll(cluster.nodes)
    const lockPorts = proxies.length > 0 ? proxies.map((proxy) => proxy.port) : cluster.nodes.map((node) => node.port)

    const workerProxies = new Map<string, ReadonlyArray<Proxy.Proxy>>()
    for (const p of config.isolate ?? []) {
      const worker = workers[p]
      if (worker !== undefined) workerProxies.set(worker.id, yield* Proxy.makeAll(cluster.nodes))
    }
    const jobs = workers.map((worker, p): WorkerConfig => ({
      run: runId,
      id: worker.id,
      lockPorts: workerProxies.get(worker.id)?.map((proxy) => proxy.port) ?? lockPorts,
      resource,
      roles: Array.from({ length: fibers }, (_, f) => roles(p, f)),
      runMs,
      ttlMs,
      nodeTimeoutMs,
      retry,
      autoExtend: config.autoExtend ?? true,
      fencing: config.fencing ?? false,
      workMs,
      actEveryMs: config.actEveryMs ?? 5,
      idleMs: config.idleMs ?? 10,
      zombieHoldMs: config.zombieHoldMs ?? 2_500,
      stallMs: config.stallMs ?? 2_500,
      redisOptions: config.redisOptions ?? {},
      keepLatencies: config.keepLatencies ?? false
    }))
    const budgets = { acquireMs: acquireBudgetMs(jobs[0]!), lostMs: lostBudgetMs(jobs[0]!) }
    const phases: Record<string, number> = { nodes: Date.now() - startedAt }
    for (const job of jobs) {
      yield* Effect.promise(() => workerPool.ledger.rpush(Ledger.poolKeys.jobs(job.id), JSON.stringify(job)))
    }

    const broken = (message: string) => {
      workerPool.broken = message
      return new CheckerError({ message })
    }
    // Start barrier: every worker has connected and built its Redlock.
    const readyBy = Date.now() + 30_000
    while (Number((yield* Effect.promise(() => workerPool.ledger.get(ledger.keys.ready))) ?? 0) < processes) {
      for (const worker of workers) {
        if (!(yield* isRunning(worker))) return yield* broken(`worker ${worker.id} died`)
      }
      if (Date.now() > readyBy) return yield* broken("workers not ready within 30 s")
      yield* Effect.sleep("10 millis")
    }
    phases["ready"] = Date.now() - startedAt

    const faults: Array<FaultEvent> = []
    let spare: RedisNodes.RedisNode | undefined
    const runScope = yield* Effect.scope
    const env: NemesisEnv = {
      nodes: cluster.nodes,
      proxies,
      key: resource,
      ttlMs,
      mark: (fault, phase) =>
        Effect.flatMap(Effect.promise(() => ledger.now()), (at) =>
          Effect.sync(() => {
            faults.push({ fault, phase, at })
          })),
      awaitHeld: (index, timeoutMs = 10_000) =>
        Effect.gen(function*() {
          const node = cluster.nodes[index]!
          const until = Date.now() + timeoutMs
          while (Date.now() < until) {
            const value = yield* Effect.orElseSucceed(node.get(resource), () => null)
            if (value !== null) return true
            yield* Effect.sleep("2 millis")
          }
          return false
        }),
      workerProxies,
      holder: Effect.promise(() => workerPool.ledger.lrange(ledger.keys.history, -200, -1)).pipe(
        Effect.map((lines) => {
          const entries = lines.map(Ledger.parseEntry)
          const enter = entries.filter((entry) => entry.kind === "enter").pop()
          if (enter === undefined) return undefined
          const ended = entries.some((entry) =>
            entry.token === enter.token && (entry.kind === "exit" || entry.kind === "interrupted")
          )
          return { worker: enter.worker, token: enter.token, ended }
        })
      ),
      spare: Effect.suspend(() =>
        spare !== undefined
          ? Effect.succeed(spare)
          : RedisNodes.make(1).pipe(
            Effect.map((spares) => spare = spares.nodes[0]!),
            Effect.provideService(Scope.Scope, runScope)
          )
      )
    }

    const goAt = Date.now() + 50
    yield* Effect.promise(() => workerPool.ledger.set(ledger.keys.go, String(goAt)))
    yield* Effect.sleep(Math.max(0, goAt - Date.now()))
    const nemesis = config.nemesis
    const nemesisFiber = nemesis === undefined
      ? undefined
      : yield* Effect.fork(Effect.scoped(nemesis.run(env)).pipe(
        Effect.catchAllCause((cause) => Effect.logWarning(`nemesis ${nemesis.name} failed`, cause))
      ))

    // Wait for every worker's result.
    const badExits: Array<string> = []
    const resultsBy = goAt + runMs + budgets.acquireMs + budgets.lostMs + (config.zombieHoldMs ?? 2_500) + 15_000
    while (Number(yield* Effect.promise(() => workerPool.ledger.llen(ledger.keys.results))) < processes) {
      for (const worker of workers) {
        if (!(yield* isRunning(worker))) {
          badExits.push(`${worker.id}: died during the run`)
          workerPool.broken = `worker ${worker.id} died`
        }
      }
      if (badExits.length > 0) break
      if (Date.now() > resultsBy) {
        badExits.push("no result in time (hung worker)")
        workerPool.broken = "a worker hung"
        break
      }
      yield* Effect.sleep("20 millis")
    }
    phases["workersDone"] = Date.now() - startedAt

    if (nemesisFiber !== undefined) yield* Fiber.interrupt(nemesisFiber)
    // Whatever the nemesis left behind: links back to pass, nodes running.
    for (const proxy of [...proxies, ...[...workerProxies.values()].flat()]) yield* proxy.set(Proxy.pass)
    for (const node of cluster.nodes) {
      yield* node.resume
      if (!(yield* node.isRunning)) yield* node.restart
    }

    const results = (yield* Effect.promise(() => workerPool.ledger.lrange(ledger.keys.results, 0, -1))).map(
      (line) => JSON.parse(line) as WorkerResult
    )
    for (const worker of workers) {
      if (!results.some((result) => result.id === worker.id)) badExits.push(`${worker.id}: no result`)
    }
    const history = (yield* Effect.promise(() => workerPool.ledger.lrange(ledger.keys.history, 0, -1))).map(
      Ledger.parseEntry
    )
    const { enters, ...swept } = sweep(history)

    const keyState = Effect.forEach(cluster.nodes, (node) => Effect.orElseSucceed(node.pttl(resource), () => -2))
    const pttls = yield* keyState
    const keysLeft = pttls.filter((pttl) => pttl !== -2).length
    const keysWithoutTtl = pttls.filter((pttl) => pttl === -1).length
    let keysLeftAfterTtl = 0
    if (keysLeft > 0) {
      yield* Effect.sleep(ttlMs + 200)
      keysLeftAfterTtl = (yield* keyState).filter((pttl) => pttl !== -2).length
    }
    phases["checked"] = Date.now() - startedAt

    const totals = totalsOf(results)
    const report: Report = {
      name: config.name,
      nemesis: nemesis?.name ?? "none",
      sweep: swept,
      workers: results,
      totals,
      badExits,
      unhandledErrorEvents: results.reduce((sum, result) => sum + result.unhandledErrorEvents, 0),
      samples: results.flatMap((result) => [...result.untypedSamples, ...result.unhandledSamples]).slice(0, 10),
      keysLeft,
      keysWithoutTtl,
      keysLeftAfterTtl,
      faults,
      recoveries: recoveriesOf(faults, enters),
      violations: swept.overlaps.length + swept.overstays.length + swept.staleWrites,
      elapsedMs: Date.now() - startedAt,
      phases,
      budgets
    }
    return report
  }))

const totalsOf = (results: ReadonlyArray<WorkerResult>): Totals => {
  const failures = Object.fromEntries(typedTags.map((tag) => [tag, 0])) as Record<TypedTag, number>
  for (const result of results) for (const tag of typedTags) failures[tag] += result.failures[tag]
  const sum = (f: (result: WorkerResult) => number) => results.reduce((total, result) => total + f(result), 0)
  const max = (f: (result: WorkerResult) => number) => results.reduce((m, result) => Math.max(m, f(result)), 0)
  return {
    calls: sum((r) => r.calls),
    entered: sum((r) => r.entered),
    failures,
    untyped: sum((r) => r.untyped),
    overBudget: sum((r) => r.overBudget),
    lostOverBudget: sum((r) => r.lostOverBudget),
    maxFailedAcquireMs: max((r) => r.maxFailedAcquireMs),
    maxLostMs: max((r) => r.maxLostMs),
    ledgerErrors: sum((r) => r.ledgerErrors),
    unhandled: sum((r) => r.unhandledRejections + r.uncaughtExceptions),
    interruptedAtEnd: sum((r) => r.interruptedAtEnd)
  }
}

const recoveriesOf = (faults: ReadonlyArray<FaultEvent>, enters: ReadonlyArray<number>): ReadonlyArray<Recovery> => {
  const recoveries: Array<Recovery> = []
  faults.forEach((event, index) => {
    if (event.phase !== "inject") return
    const heal = faults.slice(index + 1).find((later) => later.fault === event.fault && later.phase === "heal")
    const end = heal?.at ?? Infinity
    const during = enters.filter((at) => at >= event.at && at < end)
    let longestGapMs = 0
    let previous = event.at
    for (const at of during) {
      longestGapMs = Math.max(longestGapMs, at - previous)
      previous = at
    }
    if (heal !== undefined) {
      const next = enters.find((at) => at >= heal.at)
      longestGapMs = Math.max(longestGapMs, (next ?? heal.at) - previous)
    }
    const next = heal === undefined ? undefined : enters.find((at) => at >= heal.at)
    recoveries.push({
      fault: event.fault,
      injectedAt: event.at,
      healedAt: heal?.at,
      recoveryMs: heal === undefined || next === undefined ? undefined : next - heal.at,
      longestGapMs,
      entriesDuring: during.length
    })
  })
  return recoveries
}

/** A one-paragraph summary of a report, for test output and the soak. */
export const summary = (report: Report): string => {
  const { sweep: s, totals: t } = report
  const failures = typedTags.map((tag) => `${tag}=${t.failures[tag]}`).join(" ")
  return [
    `[${report.name}] nemesis=${report.nemesis} ioredis=${[...new Set(report.workers.map((w) => w.ioredis))].join(",")} elapsed=${(report.elapsedMs / 1000).toFixed(1)}s phases=${
      JSON.stringify(report.phases)
    }`,
    `  sections=${s.holders} calls=${t.calls} entered=${t.entered} ${failures} untyped=${t.untyped}`,
    `  overlaps=${s.overlaps.length} overstays=${s.overstays.length} (event-loop stalls ${s.stalledOverstays.length}) staleWrites=${s.staleWrites} (interruptions ${s.staleInterruptions}) unfinished=${s.unfinished} longestGap=${
      s.longestGapMs.toFixed(0)
    }ms fenced=${s.fenced} fenceInversions=${s.fenceInversions.length}`,
    `  overBudget=${t.overBudget} (budget ${report.budgets.acquireMs}ms, max ${t.maxFailedAcquireMs}ms) lostOverBudget=${t.lostOverBudget} unhandled=${t.unhandled} errorEvents=${report.unhandledErrorEvents} ledgerErrors=${t.ledgerErrors}`,
    `  keysLeft=${report.keysLeft} (no ttl ${report.keysWithoutTtl}, after ttl ${report.keysLeftAfterTtl}) badExits=${
      report.badExits.join("; ") || "none"
    }`,
    ...report.recoveries.map((r) =>
      `  fault ${r.fault}: entries during=${r.entriesDuring} longest gap=${r.longestGapMs.toFixed(0)}ms recovery=${
        r.recoveryMs === undefined ? "n/a" : `${r.recoveryMs.toFixed(0)}ms`
      }`
    ),
    ...s.overlaps.slice(0, 3).map((o) => `  overlap: ${o.description}`),
    ...s.overstays.slice(0, 3).map((o) => `  overstay: ${o.description}`),
    ...s.stalledOverstays.slice(0, 3).map((o) => `  stalled: ${o.description}`),
    ...s.fenceInversions.slice(0, 3).map((inversion) => `  fence: ${inversion}`)
  ].join("\n")
}

/** A worker pool shared by the tests of one file. */
export class WorkerPool extends Context.Tag("effect-redlock/test/faults/WorkerPool")<WorkerPool, Pool>() {}

/** The pool as a layer (for `layer(…)` of @effect/vitest). */
export const poolLayer = (size: number): Layer.Layer<WorkerPool, CheckerError | RedisNodes.RedisNodesError> =>
  Layer.scoped(WorkerPool, pool(size))

/** `run` with the pool from the context. */
export const runPooled = (config: Config): Effect.Effect<Report, CheckerError | RedisNodes.RedisNodesError, WorkerPool> =>
  Effect.flatMap(WorkerPool, (workerPool) => run(config, workerPool))
