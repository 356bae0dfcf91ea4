/**
 * The benchmark: effect-redlock beside a raw-ioredis floor and the Node Redlock peers, on real
 * redis-server nodes started here (K = 1, 3, 5), all in one process.
 *
 *   npm run bench                          # full run (a few minutes), writes test/bench/results/latest.json
 *   npm run bench -- --quick               # one short round
 *   npm run bench -- --rounds 5 --duration-ms 800 --k 3 --scenarios a,c --impls floor,effect,semaphore
 *
 * Every flag has an environment twin: BENCH_QUICK=1, BENCH_ROUNDS, BENCH_DURATION_MS, BENCH_K,
 * BENCH_SCENARIOS, BENCH_IMPLS, BENCH_WARMUP_MS, BENCH_HOLD_MS, BENCH_QUIET_WAIT_S, BENCH_A_SLICES,
 * BENCH_OUT.
 *
 * The machine is shared (2 cores here): before each round the bench waits, at most --quiet-wait-s
 * seconds (20 by default, 0 with --quick), until other processes use less than a fifth of the
 * CPU, and records how busy it found the machine.
 *
 * Scenarios:
 *   a  one worker, acquire + release of a fresh resource each time: ops/s, p50/p99
 *   b  64 workers, each on its own resource: cycles/s
 *   c  8 workers contending for one resource, holding it 1 ms: cycles/s, waits, Redis commands
 *      per cycle, fairness (Jain), exclusion violations
 * For each K the nodes start once; then, round after round, every scenario runs every
 * implementation in an order rotated by one each time, each with fresh ioredis clients. Scenario a
 * splits each round's window into --a-slices slices (8 by default), every implementation taking
 * its turn in each: a lone worker's latency moves with the machine's speed from second to second,
 * and turns of 50 ms spread every implementation over the same seconds. Reported: medians over
 * rounds (slices, in a; waits pooled over rounds), ratios within the run.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Effect from "effect/Effect"
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import { setTimeout as sleep } from "node:timers/promises"
import { parseArgs } from "node:util"
import * as RedisNodes from "../support/RedisNodes.js"
import { allImpls, type BenchSettings, benchSettings, type Impl } from "./impls.js"
import {
  type Ratios,
  ratiosOf,
  ratiosTableAB,
  ratiosTableC,
  type Run,
  scenarioTable,
  type Summary,
  summarize
} from "./report.js"
import type { Scenario, ScenarioId } from "./workload.js"

// ---------------------------------------------------------------------------------------------
// Configuration

const { values: flags } = parseArgs({
  options: {
    quick: { type: "boolean" },
    rounds: { type: "string" },
    "duration-ms": { type: "string" },
    k: { type: "string" },
    scenarios: { type: "string" },
    impls: { type: "string" },
    "warmup-ms": { type: "string" },
    "hold-ms": { type: "string" },
    "quiet-wait-s": { type: "string" },
    "a-slices": { type: "string" },
    out: { type: "string" },
    help: { type: "boolean" }
  },
  strict: true
})

if (flags.help) {
  console.log(
    "usage: npm run bench -- [--quick] [--rounds N] [--duration-ms N] [--k 1,3,5] [--scenarios a,b,c]\n" +
      "                        [--impls floor,effect,redlock,semaphore,universal,...] [--warmup-ms N] [--hold-ms N]\n" +
      "                        [--quiet-wait-s N] [--a-slices N] [--out FILE]"
  )
  process.exit(0)
}

const setting = (flag: string | undefined, env: string): string | undefined => flag ?? process.env[env]
const intOf = (text: string | undefined, fallback: number, what: string): number => {
  if (text === undefined || text === "") return fallback
  const value = Number(text)
  if (!Number.isInteger(value) || value < 0) throw new Error(`${what} must be a non-negative integer, got ${text}`)
  return value
}

const quick = flags.quick === true || process.env["BENCH_QUICK"] === "1"
const rounds = Math.max(1, intOf(setting(flags.rounds, "BENCH_ROUNDS"), quick ? 1 : 3, "--rounds"))
const baseDurationMs = Math.max(50, intOf(setting(flags["duration-ms"], "BENCH_DURATION_MS"), quick ? 150 : 400, "--duration-ms"))
const warmupMs = intOf(setting(flags["warmup-ms"], "BENCH_WARMUP_MS"), quick ? 100 : 200, "--warmup-ms")
const holdMs = intOf(setting(flags["hold-ms"], "BENCH_HOLD_MS"), 1, "--hold-ms")
const quietWaitS = intOf(setting(flags["quiet-wait-s"], "BENCH_QUIET_WAIT_S"), quick ? 0 : 20, "--quiet-wait-s")
const aSlices = Math.max(1, intOf(setting(flags["a-slices"], "BENCH_A_SLICES"), quick ? 2 : 8, "--a-slices"))
const ks = (setting(flags.k, "BENCH_K") ?? "1,3,5").split(",").map((k) => intOf(k.trim(), 1, "--k")).filter((k) => k > 0)
const scenarioIds = (setting(flags.scenarios, "BENCH_SCENARIOS") ?? "a,b,c").split(",").map((s) => s.trim())
const implFilter = setting(flags.impls, "BENCH_IMPLS")?.split(",").map((s) => s.trim().toLowerCase()).filter(Boolean)
const outPath = setting(flags.out, "BENCH_OUT") ?? new URL("./results/latest.json", import.meta.url).pathname

const allScenarios: ReadonlyArray<Scenario> = [
  { id: "a", title: "one worker, fresh resource per cycle", workers: 1, resource: "fresh", holdMs: 0, durationMs: baseDurationMs },
  { id: "b", title: "64 workers, one resource each", workers: 64, resource: "per-worker", holdMs: 0, durationMs: baseDurationMs },
  {
    id: "c",
    title: `8 workers contending for one resource, holding it ${holdMs} ms`,
    workers: 8,
    resource: "shared",
    holdMs,
    // Polling peers complete only a few dozen cycles a second: give them a longer window.
    durationMs: baseDurationMs * 3
  }
]
const scenarios = allScenarios.filter((s) => scenarioIds.includes(s.id))
const warmScenario: Scenario = { ...allScenarios[0]!, durationMs: warmupMs }

const impls: ReadonlyArray<Impl> = implFilter === undefined
  ? allImpls
  : allImpls.filter((impl) => impl.kind === "floor" || implFilter.some((f) => impl.name.toLowerCase().includes(f)))

const settings: BenchSettings = benchSettings

/** Peers that are not in the benchmark, and why. */
const leftOut: ReadonlyArray<{ readonly name: string; readonly reason: string }> = []

/** Calls the harness makes itself (INFO, CONFIG RESETSTAT, KEYS, FLUSHALL) and connection setup. */
const adminCommands = new Set(["info", "config|resetstat", "config|get", "config|set", "keys", "flushall", "client|setinfo", "client|setname", "hello", "ping"])

// ---------------------------------------------------------------------------------------------
// A quiet machine

const cpuTimes = () => {
  let idle = 0
  let total = 0
  for (const cpu of Os.cpus()) {
    idle += cpu.times.idle
    total += cpu.times.user + cpu.times.nice + cpu.times.sys + cpu.times.irq + cpu.times.idle
  }
  return { idle, total }
}

/** The share of the machine's CPU that was busy over `ms` (while this process idles). */
const busyOver = async (ms: number): Promise<number> => {
  const before = cpuTimes()
  await sleep(ms)
  const after = cpuTimes()
  const total = after.total - before.total
  return total <= 0 ? 0 : 1 - (after.idle - before.idle) / total
}

const busyThreshold = 0.2

/** Waits (bounded) until other processes leave the machine mostly idle; returns the last reading. */
const awaitQuiet = Effect.promise(async () => {
  const until = performance.now() + quietWaitS * 1000
  let busy = await busyOver(300)
  while (busy > busyThreshold && performance.now() < until) {
    await sleep(700)
    busy = await busyOver(300)
  }
  return busy
})

// ---------------------------------------------------------------------------------------------
// Running

const log = (line: string) => process.stderr.write(`${line}\n`)

/** The commit measured, and whether src/ had uncommitted changes. */
const gitState = (): string => {
  try {
    const git = (...args: Array<string>) => execFileSync("git", args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim()
    const dirty = git("status", "--porcelain", "--", "src").length > 0
    return `${git("rev-parse", "--short", "HEAD")}${dirty ? " + uncommitted src changes" : ""}`
  } catch {
    return "unknown"
  }
}
const commit = gitState()

/** How busy other processes kept the machine just before each round. */
const busyBeforeRound: Array<{ readonly k: number; readonly round: number; readonly busy: number }> = []

/** Implementations that failed at run time, with the error, skipped from then on. */
const broken = new Map<string, string>()

const runOne = (cluster: RedisNodes.RedisNodes, impl: Impl, scenario: Scenario, prefix: string, round: number) =>
  Effect.scoped(Effect.gen(function*() {
    const clients = yield* cluster.clients()
    const runner = yield* Effect.tryPromise(() => impl.prepare(clients, settings))
    yield* Effect.forEach(cluster.nodes, (node) => node.resetStats, { discard: true })
    const sample = yield* Effect.tryPromise(() => runner(scenario, prefix))
    // Releases are done on a quorum: let the last deletes land before counting keys and commands.
    yield* RedisNodes.settle(clients)
    const calls = yield* Effect.forEach(cluster.nodes, (node) => node.commandCalls)
    const keys = yield* Effect.forEach(cluster.nodes, (node) => node.keys("*"))
    // Fencing counters (`…:fence`) are kept on purpose: one per resource ever fenced.
    const left = keys.flat().filter((key) => !key.endsWith(":fence"))
    const keysLeft = left.length
    if (keysLeft > 0) log(`  ! ${impl.name} left ${keysLeft} key(s): ${left.slice(0, 5).join(", ")}`)
    if (keys.some((list) => list.length > 0)) yield* Effect.forEach(cluster.nodes, (node) => node.flushAll, { discard: true })
    const commandBreakdown: Record<string, number> = {}
    let commands = 0
    for (const nodeCalls of calls) {
      for (const [name, count] of Object.entries(nodeCalls)) {
        if (adminCommands.has(name)) continue
        commandBreakdown[name] = (commandBreakdown[name] ?? 0) + count
        commands += count
      }
    }
    return { round, sample, commands, commandBreakdown, keysLeft } satisfies Run
  })).pipe(
    Effect.tapError((error) =>
      Effect.sync(() => {
        const message = error instanceof Error ? error.message : String(error)
        const cause = error instanceof Error && error.cause instanceof Error ? `: ${error.cause.message}` : ""
        broken.set(impl.name, `${message}${cause}`)
        log(`  ! ${impl.name} failed in scenario ${scenario.id}: ${message}${cause}`)
      })
    ),
    Effect.option
  )

const rotate = <A>(items: ReadonlyArray<A>, by: number): ReadonlyArray<A> => {
  const n = items.length
  const shift = ((by % n) + n) % n
  return [...items.slice(shift), ...items.slice(0, shift)]
}

interface Block {
  readonly k: number
  readonly scenario: ScenarioId
  readonly summaries: ReadonlyArray<Summary>
}

/** The nodes' `notify-keyspace-events`: deleted and expired keys on keyspace channels. */
const keyspaceEvents = ["--notify-keyspace-events", "Kgx"]

const runK = (k: number) =>
  Effect.scoped(Effect.gen(function*() {
    // Every implementation runs on nodes that announce deletions (effect-redlock's keyspace wake-ups).
    const cluster = yield* RedisNodes.make(k, { args: keyspaceEvents })
    const info = yield* cluster.nodes[0]!.call("INFO", "server")
    const version = /redis_version:([^\r\n]+)/.exec(String(info))?.[1] ?? "unknown"
    log(`K=${k}: ${k} redis-server ${version} node(s) on ports ${cluster.nodes.map((n) => n.port).join(", ")}`)
    for (const impl of impls) {
      if (broken.has(impl.name)) continue
      yield* runOne(cluster, impl, warmScenario, `bench:warm:${k}`, -1)
    }
    const runs = new Map<string, Array<Run>>()
    for (let round = 0; round < rounds; round++) {
      const busy = yield* awaitQuiet
      busyBeforeRound.push({ k, round, busy })
      if (busy > busyThreshold) log(`  ! K=${k} round ${round + 1}: the machine is ${(busy * 100).toFixed(0)} % busy with other work`)
      for (const [index, scenario] of scenarios.entries()) {
        const slices = scenario.id === "a" ? aSlices : 1
        const window: Scenario = { ...scenario, durationMs: Math.max(20, Math.round(scenario.durationMs / slices)) }
        for (let slice = 0; slice < slices; slice++) {
          for (const impl of rotate(impls, round * slices + slice + index)) {
            if (broken.has(impl.name)) continue
            const prefix = `bench:${scenario.id}:${k}:${round}:${slice}:${impl.name}`
            const run = yield* runOne(cluster, impl, window, prefix, round)
            if (run._tag === "None") continue
            const key = `${scenario.id}|${impl.name}`
            runs.set(key, [...(runs.get(key) ?? []), run.value])
            const s = run.value.sample
            const problems = s.failures + s.violations + run.value.keysLeft > 0
            if (slice < slices - 1 && !problems) continue
            const thr = s.cycles / (s.windowMs / 1000)
            log(
              `  K=${k} round ${round + 1}/${rounds} ${scenario.id} ${impl.name.padEnd(30)} ${thr.toFixed(0).padStart(7)}/s` +
                (slices > 1 ? ` (slice ${slice + 1}/${slices})` : "") +
                (problems ? `  failures ${s.failures} violations ${s.violations} keys ${run.value.keysLeft}` : "")
            )
          }
        }
      }
    }
    const blocks: Array<Block> = scenarios.map((scenario) => ({
      k,
      scenario: scenario.id,
      summaries: impls.flatMap((impl) => {
        const list = runs.get(`${scenario.id}|${impl.name}`)
        return list === undefined || list.length === 0 ? [] : [summarize(impl.name, impl.kind, list)]
      })
    }))
    return { version, blocks }
  }))

const program = Effect.gen(function*() {
  const started = performance.now()
  log(
    `bench: K=${ks.join(",")} scenarios=${scenarios.map((s) => s.id).join(",")} rounds=${rounds} ` +
      `window=${baseDurationMs} ms (a: ${aSlices} slices; c: ${baseDurationMs * 3} ms) warm-up=${warmupMs} ms, ${impls.length} implementations`
  )
  const blocks: Array<Block> = []
  let redisVersion = "unknown"
  for (const k of ks) {
    const result = yield* runK(k)
    redisVersion = result.version
    blocks.push(...result.blocks)
  }
  const ratios: Array<Ratios> = blocks.flatMap((b) => ratiosOf(b.k, b.scenario, b.summaries))
  const totalSeconds = (performance.now() - started) / 1000

  const out: Array<string> = []
  out.push(`# effect-redlock benchmark — ${new Date().toISOString()}`)
  out.push(
    `commit ${commit}; node ${process.version}, redis-server ${redisVersion}, ${Os.cpus().length} × ${Os.cpus()[0]?.model ?? "cpu"}; ` +
      `rounds ${rounds}, window ${baseDurationMs} ms (c: ${baseDurationMs * 3} ms), ttl ${settings.ttlMs} ms; ` +
      `total ${totalSeconds.toFixed(0)} s`
  )
  out.push(
    `CPU busy with other processes before each round: ${busyBeforeRound.map((b) => `${(b.busy * 100).toFixed(0)}%`).join(" ")} ` +
      `(load average at the end ${Os.loadavg().map((x) => x.toFixed(1)).join(" ")})`
  )
  out.push(
    `Medians over rounds (in a, over the ${aSlices} slices of every round); in c the waits are pooled over rounds. ` +
      "spread = (max − min) / median of the throughput over rounds (slices)."
  )
  out.push("worst worker p99 = the highest of the workers' own p99 waits (not diluted when one worker keeps the lock and the others starve).")
  out.push("cmds = INFO commandstats calls summed over nodes (commands run inside Lua scripts included), per completed cycle.")
  out.push("fail = acquisitions that failed, viol = overlapping holders seen in-process, keys = keys left on the nodes after the run (fencing counters, kept on purpose, apart).")
  for (const scenario of scenarios) {
    for (const k of ks) {
      const block = blocks.find((b) => b.k === k && b.scenario === scenario.id)
      if (block === undefined) continue
      out.push("")
      out.push(`## ${scenario.id}: ${scenario.title} — K = ${k}`)
      out.push(scenarioTable(scenario.id, block.summaries))
    }
  }
  out.push("")
  out.push("## effect-redlock vs the floor and the best peer (ratios within this run)")
  out.push("throughput ratios: higher is better; latency, wait and command ratios: lower is better.")
  if (ratios.some((r) => r.scenario !== "c")) out.push(ratiosTableAB(ratios))
  if (ratios.some((r) => r.scenario === "c")) {
    out.push("")
    out.push(ratiosTableC(ratios))
  }
  out.push("")
  out.push("## Implementations")
  for (const impl of impls) out.push(`- ${impl.name}: ${impl.description}`)
  if (leftOut.length + broken.size > 0) {
    out.push("")
    out.push("## Left out")
    for (const { name, reason } of leftOut) out.push(`- ${name}: ${reason}`)
    for (const [name, reason] of broken) out.push(`- ${name}: failed at run time: ${reason}`)
  }
  console.log(out.join("\n"))

  const json = {
    meta: {
      date: new Date().toISOString(),
      commit,
      node: process.version,
      redis: redisVersion,
      cpus: Os.cpus().length,
      cpuModel: Os.cpus()[0]?.model ?? "unknown",
      platform: `${Os.platform()} ${Os.release()}`,
      quick,
      rounds,
      windowMs: Object.fromEntries(scenarios.map((s) => [s.id, s.durationMs])),
      aSlices,
      warmupMs,
      holdMs,
      ks,
      settings,
      totalSeconds,
      busyBeforeRound,
      loadAverageAtEnd: Os.loadavg(),
      notes: [
        "medians over rounds; scenario c waits pooled over rounds",
        "commands: INFO commandstats deltas summed over nodes, admin calls excluded, commands run inside Lua included"
      ]
    },
    implementations: impls.map(({ description, kind, name }) => ({ name, kind, description })),
    leftOut: [...leftOut, ...[...broken].map(([name, reason]) => ({ name, reason: `failed at run time: ${reason}` }))],
    results: blocks,
    ratios
  }
  Fs.mkdirSync(new URL(".", `file://${outPath}`).pathname, { recursive: true })
  Fs.writeFileSync(outPath, `${JSON.stringify(json, null, 2)}\n`)
  log(`results written to ${outPath}`)
})

NodeRuntime.runMain(program)
