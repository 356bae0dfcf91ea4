/**
 * Nemeses: fault schedules for the checker's lock nodes. Each one waits a little (so the workers
 * are busy), injects its fault, keeps it for a while, and heals it; interruption heals too.
 *
 * Survivable (a minority, or harmless everywhere): kill + delayed restart, SIGSTOP pause,
 * black-hole / delay / refuse / cut through the proxy, CLIENT KILL, READONLY (REPLICAOF),
 * OOM (maxmemory 1, noeviction), SCRIPT FLUSH, a clock jump on one node.
 * Positive controls (must be flagged): restart of a majority while the lock is held, a clock
 * jump on a majority, eviction on a majority.
 */
import * as Effect from "effect/Effect"
import { Redis } from "ioredis"
import type { Nemesis, NemesisEnv } from "./Checker.js"
import { fenceKeyOf } from "../../../src/internal/options.js"
import * as Proxy from "./Proxy.js"

export interface Window {
  /** Wait before injecting. @default 500 */
  readonly afterMs?: number
  /** How long the fault lasts. @default 1500 */
  readonly forMs?: number
}

type Action = (env: NemesisEnv) => Effect.Effect<void, unknown>

const eachOf = (indices: ReadonlyArray<number>, f: (index: number) => Effect.Effect<unknown, unknown>) =>
  Effect.forEach(indices, f, { concurrency: "unbounded", discard: true })

/** Injects, waits `forMs`, heals (also when interrupted). */
export const window = (name: string, inject: Action, heal: Action, options: Window = {}): Nemesis => ({
  name,
  run: (env) =>
    Effect.gen(function*() {
      yield* Effect.sleep(options.afterMs ?? 500)
      yield* Effect.acquireUseRelease(
        Effect.zipRight(env.mark(name, "inject"), inject(env)),
        () => Effect.sleep(options.forMs ?? 1_500),
        () => Effect.zipRight(Effect.ignore(heal(env)), env.mark(name, "heal"))
      )
    })
})

/** Repeats an action every `everyMs` during the window. */
export const periodic = (name: string, action: Action, everyMs: number, options: Window = {}): Nemesis => ({
  name,
  run: (env) =>
    Effect.gen(function*() {
      yield* Effect.sleep(options.afterMs ?? 500)
      yield* env.mark(name, "inject")
      const loop = Effect.forever(Effect.zipRight(Effect.ignore(action(env)), Effect.sleep(everyMs)))
      yield* Effect.raceFirst(loop, Effect.sleep(options.forMs ?? 1_500)).pipe(
        Effect.ensuring(env.mark(name, "heal"))
      )
    })
})

/** Nemeses one after the other. */
export const sequence = (name: string, nemeses: ReadonlyArray<Nemesis>): Nemesis => ({
  name,
  run: (env) => Effect.forEach(nemeses, (nemesis) => Effect.scoped(nemesis.run(env)), { discard: true })
})

// ---------------------------------------------------------------------------------------------
// Survivable faults

/** kill -9 the nodes, restart them (empty: no persistence) after `forMs` (> ttl). */
export const killRestart = (indices: ReadonlyArray<number>, options: Window = {}): Nemesis =>
  window(
    `kill+restart ${indices.join(",")}`,
    (env) => eachOf(indices, (i) => env.nodes[i]!.kill),
    (env) => eachOf(indices, (i) => env.nodes[i]!.restart),
    options
  )

/** SIGSTOP the nodes, SIGCONT after `forMs`: sockets stay open, commands run late. */
export const pause = (indices: ReadonlyArray<number>, options: Window = {}): Nemesis =>
  window(
    `pause ${indices.join(",")}`,
    (env) => eachOf(indices, (i) => env.nodes[i]!.pause),
    (env) => eachOf(indices, (i) => env.nodes[i]!.resume),
    options
  )

const modeName = (mode: Proxy.Mode) => mode._tag === "delay" ? `delay(${mode.ms}ms)` : mode._tag

/** Switches the proxies of the nodes to `mode`, back to pass after `forMs`. */
export const link = (indices: ReadonlyArray<number>, mode: Proxy.Mode, options: Window = {}): Nemesis =>
  window(
    `${modeName(mode)} ${indices.join(",")}`,
    (env) => eachOf(indices, (i) => env.proxies[i]!.set(mode)),
    (env) => eachOf(indices, (i) => env.proxies[i]!.set(Proxy.pass)),
    options
  )

/** Cuts every connection through the proxies of the nodes every `everyMs`. */
export const cut = (indices: ReadonlyArray<number>, everyMs: number, options: Window = {}): Nemesis =>
  periodic(`cut ${indices.join(",")} every ${everyMs}ms`, (env) => eachOf(indices, (i) => env.proxies[i]!.cut), everyMs, options)

/** `CLIENT KILL TYPE normal` on the nodes every `everyMs`: every client connection dropped. */
export const clientKill = (indices: ReadonlyArray<number>, everyMs: number, options: Window = {}): Nemesis =>
  periodic(
    `CLIENT KILL ${indices.join(",")} every ${everyMs}ms`,
    (env) => eachOf(indices, (i) => env.nodes[i]!.call("CLIENT", "KILL", "TYPE", "normal")),
    everyMs,
    options
  )

/** `REPLICAOF` a throwaway node: writes fail with READONLY (and the dataset is replaced by the spare's). */
export const readOnly = (indices: ReadonlyArray<number>, options: Window = {}): Nemesis =>
  window(
    `READONLY ${indices.join(",")}`,
    (env) =>
      Effect.flatMap(env.spare, (spare) =>
        eachOf(indices, (i) =>
          Effect.zipRight(
            env.nodes[i]!.call("REPLICAOF", spare.host, spare.port),
            // until the replica has synced, writes may still pass; wait for the role to settle
            Effect.sleep("50 millis")
          ))),
    (env) => eachOf(indices, (i) => env.nodes[i]!.call("REPLICAOF", "NO", "ONE")),
    options
  )

/** `maxmemory 1` with `noeviction`: every write that may grow memory fails with OOM. */
export const oom = (indices: ReadonlyArray<number>, options: Window = {}): Nemesis =>
  window(
    `OOM ${indices.join(",")}`,
    (env) =>
      eachOf(indices, (i) =>
        Effect.zipRight(
          env.nodes[i]!.call("CONFIG", "SET", "maxmemory-policy", "noeviction"),
          env.nodes[i]!.call("CONFIG", "SET", "maxmemory", "1")
        )),
    (env) => eachOf(indices, (i) => env.nodes[i]!.call("CONFIG", "SET", "maxmemory", "0")),
    options
  )

/** `SCRIPT FLUSH` on the nodes every `everyMs`: EVALSHA gets NOSCRIPT. */
export const scriptFlush = (indices: ReadonlyArray<number>, everyMs: number, options: Window = {}): Nemesis =>
  periodic(
    `SCRIPT FLUSH ${indices.join(",")} every ${everyMs}ms`,
    (env) => eachOf(indices, (i) => env.nodes[i]!.call("SCRIPT", "FLUSH")),
    everyMs,
    options
  )

/**
 * A server clock jumping forward by `deltaMs` on the nodes, every `everyMs`: the semantic
 * equivalent is `PEXPIRE key (PTTL − Δ)` (or `DEL` when less than Δ is left) on those nodes only.
 */
export const clockJump = (
  indices: ReadonlyArray<number>,
  deltaMs: number,
  everyMs: number,
  options: Window = {}
): Nemesis =>
  periodic(
    `clock +${deltaMs}ms on ${indices.join(",")} every ${everyMs}ms`,
    (env) => eachOf(indices, (i) => jump(env, i, deltaMs)),
    everyMs,
    options
  )

const jump = (env: NemesisEnv, index: number, deltaMs: number) =>
  Effect.gen(function*() {
    const node = env.nodes[index]!
    const pttl = yield* node.pttl(env.key)
    if (pttl === -2) return
    if (pttl > deltaMs) yield* node.call("PEXPIRE", env.key, pttl - deltaMs)
    else yield* node.del(env.key)
  })

// ---------------------------------------------------------------------------------------------
// Positive controls: each strikes while the lock is held, `strikes` times.

const whileHeld = (
  name: string,
  watch: number,
  strikes: number,
  strike: Action,
  options: { readonly afterMs?: number; readonly pauseMs?: number } = {}
): Nemesis => ({
  name,
  run: (env) =>
    Effect.gen(function*() {
      yield* Effect.sleep(options.afterMs ?? 300)
      for (let i = 0; i < strikes; i++) {
        if (!(yield* env.awaitHeld(watch))) return
        yield* env.mark(name, "inject")
        yield* Effect.ignore(strike(env))
        yield* env.mark(name, "heal")
        yield* Effect.sleep(options.pauseMs ?? env.ttlMs)
      }
    })
})

/** kill + immediate restart (no persistence) of the nodes while the lock is held. */
export const restartWhileHeld = (
  indices: ReadonlyArray<number>,
  watch: number,
  strikes = 3,
  options?: { readonly afterMs?: number }
): Nemesis =>
  whileHeld(
    `restart ${indices.join(",")} while held`,
    watch,
    strikes,
    (env) => eachOf(indices, (i) => env.nodes[i]!.restart),
    options
  )

/** Sets the resource's fencing counter to `value` on every node, so tokens go on from there. */
export const seedFence = (value: number): Nemesis => ({
  name: `fencing counters at ${value}`,
  run: (env) => eachOf(env.nodes.map((_, i) => i), (i) => env.nodes[i]!.call("SET", fenceKeyOf(env.key), value))
})

/** The clock of the nodes jumps past the key's expiry while the lock is held (`DEL` there). */
export const clockJumpWhileHeld = (indices: ReadonlyArray<number>, watch: number, strikes = 3): Nemesis =>
  whileHeld(
    `clock jump on ${indices.join(",")} while held`,
    watch,
    strikes,
    (env) => eachOf(indices, (i) => env.nodes[i]!.del(env.key))
  )

const usedMemory = (info: unknown) => Number(/used_memory:(\d+)/.exec(String(info))?.[1] ?? 0)

/**
 * `maxmemory-policy volatile-ttl` on the nodes and, while the lock is held, a `maxmemory` just
 * above the memory in use with filler keys (no ttl) written until the lock's key is gone: it is
 * evicted like any key with an expiry. `allkeys-lru` made this a matter of luck: every waiter's
 * `SET NX` touches the key, so it stays among the most recently used and the fillers went first.
 */
export const evictWhileHeld = (indices: ReadonlyArray<number>, watch: number, strikes = 3): Nemesis => {
  const name = `eviction on ${indices.join(",")} while held`
  return {
    name,
    run: (env) =>
      Effect.gen(function*() {
        const fillers = yield* Effect.forEach(indices, (i) =>
          Effect.acquireRelease(
            Effect.sync(() => {
              const redis = new Redis({ host: "127.0.0.1", port: env.nodes[i]!.port })
              redis.on("error", () => {})
              return redis
            }),
            (redis) => Effect.sync(() => redis.disconnect())
          ))
        yield* eachOf(indices, (i) => env.nodes[i]!.call("CONFIG", "SET", "maxmemory-policy", "volatile-ttl"))
        const evict = (slot: number) => evictKey(env, indices[slot]!, fillers[slot]!)
        yield* whileHeld(name, watch, strikes, () => eachOf(indices.map((_, slot) => slot), evict)).run(env)
      }).pipe(
        Effect.ensuring(
          Effect.ignore(eachOf(indices, (i) =>
            Effect.zipRight(
              env.nodes[i]!.call("CONFIG", "SET", "maxmemory", "0"),
              env.nodes[i]!.call("CONFIG", "SET", "maxmemory-policy", "noeviction")
            )))
        )
      )
  }
}

let fillerBatch = 0
const fillerValue = "x".repeat(1024)

/** Fills node `index` past a small `maxmemory` until `env.key` is evicted (or 20 batches), then lifts the limit. */
const evictKey = (env: NemesisEnv, index: number, filler: Redis) => {
  const node = env.nodes[index]!
  return Effect.gen(function*() {
    const used = usedMemory(yield* node.call("INFO", "memory"))
    yield* node.call("CONFIG", "SET", "maxmemory", used + 64 * 1024)
    for (let batch = 0; batch < 20 && (yield* node.pttl(env.key)) !== -2; batch++) {
      yield* Effect.promise(() => {
        const pipeline = filler.pipeline()
        for (let k = 0; k < 100; k++) pipeline.set(`filler:${fillerBatch}:${k}`, fillerValue)
        fillerBatch++
        return pipeline.exec()
      })
    }
  }).pipe(Effect.ensuring(Effect.ignore(node.call("CONFIG", "SET", "maxmemory", "0"))))
}

/**
 * A client-side partition: whenever worker `worker` enters the critical section, its own links
 * to every node go black for `forMs` (the other workers still reach the nodes). Needs
 * `Config.isolate` to include that worker. Survivable: the cut-off holder must stop by the end of
 * its validity, before anyone else can enter.
 */
export const partitionHolder = (worker: string, forMs: number, strikes = 2): Nemesis => ({
  name: `partition ${worker} while it holds`,
  run: (env) =>
    Effect.gen(function*() {
      const links = env.workerProxies.get(worker)
      if (links === undefined) return yield* Effect.dieMessage(`${worker} has no links of its own (Config.isolate)`)
      for (let strike = 0; strike < strikes; strike++) {
        const until = Date.now() + 10_000
        let holding = false
        while (!holding && Date.now() < until) {
          const holder = yield* env.holder
          holding = holder !== undefined && holder.worker === worker && !holder.ended
          if (!holding) yield* Effect.sleep("2 millis")
        }
        if (!holding) return
        yield* Effect.acquireUseRelease(
          Effect.zipRight(env.mark(`partition ${worker}`, "inject"), Effect.forEach(links, (link) => link.set(Proxy.blackHole))),
          () => Effect.sleep(forMs),
          () => Effect.zipRight(Effect.forEach(links, (link) => link.set(Proxy.pass)), env.mark(`partition ${worker}`, "heal"))
        )
      }
    })
})
