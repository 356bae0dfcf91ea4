/**
 * The soak: one long checker run on 5 nodes while a nemesis injects random survivable faults, one
 * at a time (a minority of the nodes, or something harmless to all of them), each followed by a
 * quiet spell. Not part of CI.
 *
 *   npx tsx test/faults/soak.ts [--seconds 300] [--processes 4] [--fibers 3] [--seed N]
 *
 * Prints acquisitions per second, failed calls by error, p50/p99/max acquire latency, the
 * checker's verdict (overlaps, overstays, stale writes), and per fault type the recovery time
 * (from the heal to the next entry into the critical section). Exits 1 on any violation.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Effect from "effect/Effect"
import * as Checker from "./support/Checker.js"
import type { NemesisEnv } from "./support/Checker.js"
import * as Proxy from "./support/Proxy.js"

const argument = (name: string, fallback: number) => {
  const index = process.argv.indexOf(`--${name}`)
  const value = index === -1 ? undefined : Number(process.argv[index + 1])
  return value === undefined || Number.isNaN(value) ? fallback : value
}

const seconds = argument("seconds", 300)
const processes = argument("processes", 4)
const fibers = argument("fibers", 3)
let seed = argument("seed", Date.now() % 1_000_000)
const firstSeed = seed
/** A small deterministic PRNG (mulberry32), so a failing schedule can be replayed with --seed. */
const random = () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = seed
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
}
const between = (min: number, max: number) => Math.round(min + random() * (max - min))
const pick = <A>(items: ReadonlyArray<A>): A => items[Math.floor(random() * items.length)]!

const nodes = 5
const ttlMs = 1_000

/** A random minority of the 5 nodes: one or two of them. */
const minority = () => {
  const size = between(1, 2)
  const all = [0, 1, 2, 3, 4].sort(() => random() - 0.5)
  return all.slice(0, size).sort()
}

interface Fault {
  readonly type: string
  readonly inject: (env: NemesisEnv, targets: ReadonlyArray<number>) => Effect.Effect<void, unknown>
  readonly heal: (env: NemesisEnv, targets: ReadonlyArray<number>) => Effect.Effect<void, unknown>
  /** Repeated during the window (clock jumps, connection kills, script flushes). */
  readonly repeatEveryMs?: number
  /** Applies to every node rather than a minority. */
  readonly everywhere?: boolean
  readonly minMs?: number
}

const each = (targets: ReadonlyArray<number>, f: (index: number) => Effect.Effect<unknown, unknown>) =>
  Effect.forEach(targets, f, { concurrency: "unbounded", discard: true })

const faults: ReadonlyArray<Fault> = [
  {
    type: "kill + restart (down > ttl)",
    inject: (env, t) => each(t, (i) => env.nodes[i]!.kill),
    heal: (env, t) => each(t, (i) => env.nodes[i]!.restart),
    minMs: Math.round(ttlMs * 1.2)
  },
  {
    type: "SIGSTOP pause",
    inject: (env, t) => each(t, (i) => env.nodes[i]!.pause),
    heal: (env, t) => each(t, (i) => env.nodes[i]!.resume)
  },
  {
    type: "black-hole",
    inject: (env, t) => each(t, (i) => env.proxies[i]!.set(Proxy.blackHole)),
    heal: (env, t) => each(t, (i) => env.proxies[i]!.set(Proxy.pass))
  },
  {
    type: "delay > node timeout",
    inject: (env, t) => each(t, (i) => env.proxies[i]!.set(Proxy.delay(between(80, 300)))),
    heal: (env, t) => each(t, (i) => env.proxies[i]!.set(Proxy.pass))
  },
  {
    type: "small delay everywhere",
    everywhere: true,
    inject: (env, t) => each(t, (i) => env.proxies[i]!.set(Proxy.delay(between(2, 15)))),
    heal: (env, t) => each(t, (i) => env.proxies[i]!.set(Proxy.pass))
  },
  {
    type: "refuse",
    inject: (env, t) => each(t, (i) => env.proxies[i]!.set(Proxy.refuse)),
    heal: (env, t) => each(t, (i) => env.proxies[i]!.set(Proxy.pass))
  },
  {
    type: "cut connections everywhere",
    everywhere: true,
    repeatEveryMs: 250,
    inject: (env, t) => each(t, (i) => env.proxies[i]!.cut),
    heal: () => Effect.void
  },
  {
    type: "CLIENT KILL everywhere",
    everywhere: true,
    repeatEveryMs: 300,
    inject: (env, t) => each(t, (i) => env.nodes[i]!.call("CLIENT", "KILL", "TYPE", "normal")),
    heal: () => Effect.void
  },
  {
    type: "READONLY (REPLICAOF)",
    inject: (env, t) => Effect.flatMap(env.spare, (spare) => each(t, (i) => env.nodes[i]!.call("REPLICAOF", spare.host, spare.port))),
    heal: (env, t) => each(t, (i) => env.nodes[i]!.call("REPLICAOF", "NO", "ONE"))
  },
  {
    type: "OOM (maxmemory 1)",
    inject: (env, t) => each(t, (i) => env.nodes[i]!.call("CONFIG", "SET", "maxmemory", "1")),
    heal: (env, t) => each(t, (i) => env.nodes[i]!.call("CONFIG", "SET", "maxmemory", "0"))
  },
  {
    type: "SCRIPT FLUSH everywhere",
    everywhere: true,
    repeatEveryMs: 100,
    inject: (env, t) => each(t, (i) => env.nodes[i]!.call("SCRIPT", "FLUSH")),
    heal: () => Effect.void
  },
  {
    type: "clock jump (one node)",
    repeatEveryMs: 50,
    inject: (env, t) =>
      each(t.slice(0, 1), (i) =>
        Effect.gen(function*() {
          const node = env.nodes[i]!
          const pttl = yield* node.pttl(env.key)
          if (pttl === -2) return
          if (pttl > 600) yield* node.call("PEXPIRE", env.key, pttl - 600)
          else yield* node.del(env.key)
        })),
    heal: () => Effect.void
  }
]

interface Injected {
  readonly type: string
  readonly targets: ReadonlyArray<number>
  readonly forMs: number
}
const injected: Array<Injected> = []

const nemesis: Checker.Nemesis = {
  name: "random survivable faults",
  run: (env) =>
    Effect.gen(function*() {
      const endAt = Date.now() + seconds * 1_000 - 3_000
      yield* Effect.sleep("1 second")
      while (Date.now() + 4_000 < endAt) {
        const fault = pick(faults)
        const targets = fault.everywhere ? [0, 1, 2, 3, 4] : minority()
        const forMs = Math.max(fault.minMs ?? 0, between(500, 2_000))
        const label = fault.type
        injected.push({ type: label, targets, forMs })
        const window = fault.repeatEveryMs === undefined
          ? Effect.sleep(forMs)
          : Effect.raceFirst(
            Effect.forever(Effect.zipRight(Effect.ignore(fault.inject(env, targets)), Effect.sleep(fault.repeatEveryMs))),
            Effect.sleep(forMs)
          )
        yield* Effect.acquireUseRelease(
          Effect.zipRight(env.mark(label, "inject"), fault.repeatEveryMs === undefined ? Effect.ignore(fault.inject(env, targets)) : Effect.void),
          () => window,
          () => Effect.zipRight(Effect.ignore(fault.heal(env, targets)), env.mark(label, "heal"))
        )
        yield* Effect.sleep(between(1_000, 2_000))
      }
    })
}

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!

const main = Effect.gen(function*() {
  console.log(
    `soak: ${seconds} s, ${nodes} nodes, ${processes} processes × ${fibers} fibers, ttl ${ttlMs} ms, seed ${firstSeed}`
  )
  const report = yield* Checker.run({
    name: "soak",
    nodes,
    processes,
    fibers,
    runMs: seconds * 1_000,
    ttlMs,
    nodeTimeoutMs: 50,
    retry: { times: 20, delayMs: 50, jitter: 0.5 },
    workMs: [5, 20],
    keepLatencies: true,
    nemesis
  })
  const runSeconds = seconds
  const latencies = report.workers.flatMap((worker) => worker.latencies).sort((a, b) => a - b)
  const { totals, sweep } = report
  console.log(Checker.summary({ ...report, recoveries: [] }))
  console.log("")
  console.log(`acquisitions:        ${totals.entered} (${(totals.entered / runSeconds).toFixed(1)}/s)`)
  console.log(`calls:               ${totals.calls}`)
  console.log(
    `failed calls:        ${totals.calls - totals.entered} (LockContended ${totals.failures.LockContended}, QuorumUnavailable ${totals.failures.QuorumUnavailable}, LockLost ${totals.failures.LockLost}, untyped ${totals.untyped})`
  )
  console.log(
    `acquire latency:     p50 ${percentile(latencies, 0.5)} ms, p90 ${percentile(latencies, 0.9)} ms, p99 ${
      percentile(latencies, 0.99)
    } ms, max ${latencies[latencies.length - 1] ?? NaN} ms (call → entry, retries included)`
  )
  console.log(
    `checker:             ${sweep.holders} sections, overlaps ${sweep.overlaps.length}, overstays ${sweep.overstays.length} (event-loop stalls ${sweep.stalledOverstays.length}), stale writes ${sweep.staleWrites}, unfinished ${sweep.unfinished}`
  )
  console.log(
    `health:              unhandled ${totals.unhandled}, ioredis error events ${report.unhandledErrorEvents}, over budget ${totals.overBudget}+${totals.lostOverBudget}, keys left ${report.keysLeft}, bad exits ${report.badExits.length}`
  )
  console.log(`faults injected:     ${injected.length}`)
  const byType = new Map<string, Array<Checker.Recovery>>()
  for (const recovery of report.recoveries) {
    const list = byType.get(recovery.fault) ?? []
    list.push(recovery)
    byType.set(recovery.fault, list)
  }
  console.log("")
  console.log(
    `${"fault".padEnd(30)} ${"n".padStart(3)} ${"entries during".padStart(15)} ${"longest gap".padStart(12)} ${
      "recovery p50".padStart(13)
    } ${"recovery max".padStart(13)}`
  )
  for (const [type, list] of [...byType.entries()].sort()) {
    const recoveries = list.map((r) => r.recoveryMs ?? NaN).filter((ms) => !Number.isNaN(ms)).sort((a, b) => a - b)
    const gaps = Math.max(...list.map((r) => r.longestGapMs))
    const during = list.reduce((sum, r) => sum + r.entriesDuring, 0)
    console.log(
      `${type.padEnd(30)} ${String(list.length).padStart(3)} ${String(during).padStart(15)} ${`${gaps.toFixed(0)} ms`.padStart(12)} ${
        `${percentile(recoveries, 0.5).toFixed(0)} ms`.padStart(13)
      } ${`${(recoveries[recoveries.length - 1] ?? NaN).toFixed(0)} ms`.padStart(13)}`
    )
  }
  const healthy = report.violations === 0 && totals.untyped === 0 && totals.unhandled === 0 &&
    report.unhandledErrorEvents === 0 && report.badExits.length === 0 && report.keysLeft === 0
  console.log("")
  console.log(healthy ? "verdict: OK (no violation)" : "verdict: FAILED")
  if (!healthy) {
    for (const sample of report.samples) console.log(`  ${sample}`)
    for (const overlap of sweep.overlaps.slice(0, 10)) console.log(`  overlap: ${overlap.description}`)
    for (const overstay of sweep.overstays.slice(0, 10)) console.log(`  overstay: ${overstay.description}`)
  }
  return healthy
})

// runMain interrupts the run on Ctrl-C, so the nodes and workers are stopped by their finalizers.
NodeRuntime.runMain(Effect.map(main, (healthy) => {
  process.exitCode = healthy ? 0 : 1
}))
