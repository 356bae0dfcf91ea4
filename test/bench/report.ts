/**
 * From raw runs to summaries (medians over rounds), ratios within the run, and text tables.
 */
import type { Kind } from "./impls.js"
import type { RunSample, ScenarioId } from "./workload.js"

/** One measured run, with what Redis saw. */
export interface Run {
  readonly round: number
  readonly sample: RunSample
  /** Commands the implementation sent (INFO commandstats deltas over all nodes, admin calls excluded). */
  readonly commands: number
  readonly commandBreakdown: Readonly<Record<string, number>>
  /** Keys found on all nodes after the run (then flushed). */
  readonly keysLeft: number
}

/** The numbers measured of an implementation in a scenario: of one round, or summarised over rounds. */
interface Metrics {
  /** Cycles per second (cycles completed inside the window). */
  readonly throughput: number
  /** Cycle latency (acquire + release), ms. */
  readonly p50Ms: number
  readonly p99Ms: number
  /** Waits for the lock, ms. */
  readonly waitP50Ms: number
  readonly waitP99Ms: number
  readonly waitMaxMs: number
  /**
   * Each worker's own p99 wait; the worst worker's. Unlike the pooled p99 it is not diluted when
   * one worker keeps re-taking the lock at once while the others starve.
   */
  readonly worstWorkerWaitP99Ms: number
  readonly commandsPerCycle: number
  readonly cpuUsPerCycle: number
  /** The Jain index over per-worker cycle counts. */
  readonly fairness: number
  readonly failures: number
  readonly releaseErrors: number
  readonly violations: number
  readonly keysLeft: number
}

/** Per round, the numbers derived from one run. */
export interface RoundMetrics extends Metrics {
  readonly round: number
  readonly cycles: number
  readonly totalCycles: number
  readonly commandBreakdown: Readonly<Record<string, number>>
}

/**
 * Over rounds: medians of throughput, latency percentiles and fairness; waits pooled over all
 * rounds (the worst worker's p99 too); failures, release errors, violations and keys left summed.
 */
export interface Summary extends Metrics {
  readonly impl: string
  readonly kind: Kind
  readonly rounds: number
  /** Smallest and largest throughput over rounds. */
  readonly throughputRange: readonly [number, number]
  readonly perRound: ReadonlyArray<RoundMetrics>
}

export interface Ratios {
  readonly impl: string
  readonly k: number
  readonly scenario: ScenarioId
  readonly vsFloor: {
    readonly throughput: number
    readonly p50: number
    readonly p99: number
    readonly waitP99: number
    readonly worstWorkerWaitP99: number
    readonly commands: number
  }
  readonly bestPeer: {
    readonly byThroughput: string
    readonly byP50: string
    readonly byWaitP99: string
    readonly byWorstWorkerWaitP99: string
  }
  readonly vsBestPeer: {
    readonly throughput: number
    readonly p50: number
    readonly waitP99: number
    readonly worstWorkerWaitP99: number
  }
}

// ---------------------------------------------------------------------------------------------

export const median = (values: ReadonlyArray<number>): number => {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** Nearest-rank percentile, p in [0, 1]. */
export const percentile = (values: ReadonlyArray<number>, p: number): number => {
  if (values.length === 0) return NaN
  const sorted = Float64Array.from(values).sort()
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!
}

/** Jain's fairness index: 1 when every worker did the same number of cycles, 1/n when one did all. */
export const jain = (counts: ReadonlyArray<number>): number => {
  let sum = 0
  let squares = 0
  for (const count of counts) {
    sum += count
    squares += count * count
  }
  return squares === 0 ? NaN : (sum * sum) / (counts.length * squares)
}

const worstWorker = (byWorker: ReadonlyArray<ReadonlyArray<number>>): number =>
  byWorker.reduce((worst, waits) => waits.length === 0 ? worst : Math.max(worst, percentile(waits, 0.99)), 0)

const metricsOf = (run: Run): RoundMetrics => {
  const { sample } = run
  return {
    round: run.round,
    throughput: sample.cycles / (sample.windowMs / 1000),
    p50Ms: percentile(sample.latencies, 0.5),
    p99Ms: percentile(sample.latencies, 0.99),
    waitP50Ms: percentile(sample.waits, 0.5),
    waitP99Ms: percentile(sample.waits, 0.99),
    waitMaxMs: sample.waits.reduce((max, wait) => Math.max(max, wait), 0),
    worstWorkerWaitP99Ms: worstWorker(sample.waitsByWorker),
    commandsPerCycle: sample.totalCycles === 0 ? NaN : run.commands / sample.totalCycles,
    cpuUsPerCycle: sample.totalCycles === 0 ? NaN : sample.cpuUs / sample.totalCycles,
    fairness: jain(sample.perWorker),
    cycles: sample.cycles,
    totalCycles: sample.totalCycles,
    failures: sample.failures,
    releaseErrors: sample.releaseErrors,
    violations: sample.violations,
    keysLeft: run.keysLeft,
    commandBreakdown: run.commandBreakdown
  }
}

export const summarize = (impl: string, kind: Kind, runs: ReadonlyArray<Run>): Summary => {
  const perRound = runs.map(metricsOf)
  const pick = (f: (m: RoundMetrics) => number) => median(perRound.map(f))
  const total = (f: (m: RoundMetrics) => number) => perRound.reduce((sum, m) => sum + f(m), 0)
  const waits = runs.flatMap((run) => run.sample.waits)
  const throughputs = perRound.map((m) => m.throughput)
  return {
    impl,
    kind,
    rounds: runs.length,
    throughput: median(throughputs),
    throughputRange: [Math.min(...throughputs), Math.max(...throughputs)],
    p50Ms: pick((m) => m.p50Ms),
    p99Ms: pick((m) => m.p99Ms),
    waitP50Ms: percentile(waits, 0.5),
    waitP99Ms: percentile(waits, 0.99),
    waitMaxMs: waits.reduce((max, wait) => Math.max(max, wait), 0),
    worstWorkerWaitP99Ms: worstWorker(
      Array.from(
        { length: Math.max(0, ...runs.map((run) => run.sample.waitsByWorker.length)) },
        (_, w) => runs.flatMap((run) => run.sample.waitsByWorker[w] ?? [])
      )
    ),
    commandsPerCycle: pick((m) => m.commandsPerCycle),
    cpuUsPerCycle: pick((m) => m.cpuUsPerCycle),
    fairness: pick((m) => m.fairness),
    failures: total((m) => m.failures),
    releaseErrors: total((m) => m.releaseErrors),
    violations: total((m) => m.violations),
    keysLeft: total((m) => m.keysLeft),
    perRound
  }
}

const best = (
  peers: ReadonlyArray<Summary>,
  value: (s: Summary) => number,
  higherIsBetter: boolean
): Summary | undefined =>
  peers.filter((s) => Number.isFinite(value(s))).reduce<Summary | undefined>(
    (acc, s) => acc === undefined || (higherIsBetter ? value(s) > value(acc) : value(s) < value(acc)) ? s : acc,
    undefined
  )

export const ratiosOf = (k: number, scenario: ScenarioId, summaries: ReadonlyArray<Summary>): ReadonlyArray<Ratios> => {
  const floor = summaries.find((s) => s.kind === "floor")
  const peers = summaries.filter((s) => s.kind === "peer")
  const byThroughput = best(peers, (s) => s.throughput, true)
  const byP50 = best(peers, (s) => s.p50Ms, false)
  const byWaitP99 = best(peers, (s) => s.waitP99Ms, false)
  const byWorst = best(peers, (s) => s.worstWorkerWaitP99Ms, false)
  return summaries.filter((s) => s.kind === "effect").map((s) => ({
    impl: s.impl,
    k,
    scenario,
    vsFloor: {
      throughput: floor ? s.throughput / floor.throughput : NaN,
      p50: floor ? s.p50Ms / floor.p50Ms : NaN,
      p99: floor ? s.p99Ms / floor.p99Ms : NaN,
      waitP99: floor ? s.waitP99Ms / floor.waitP99Ms : NaN,
      worstWorkerWaitP99: floor ? s.worstWorkerWaitP99Ms / floor.worstWorkerWaitP99Ms : NaN,
      commands: floor ? s.commandsPerCycle / floor.commandsPerCycle : NaN
    },
    bestPeer: {
      byThroughput: byThroughput?.impl ?? "-",
      byP50: byP50?.impl ?? "-",
      byWaitP99: byWaitP99?.impl ?? "-",
      byWorstWorkerWaitP99: byWorst?.impl ?? "-"
    },
    vsBestPeer: {
      throughput: byThroughput ? s.throughput / byThroughput.throughput : NaN,
      p50: byP50 ? s.p50Ms / byP50.p50Ms : NaN,
      waitP99: byWaitP99 ? s.waitP99Ms / byWaitP99.waitP99Ms : NaN,
      worstWorkerWaitP99: byWorst ? s.worstWorkerWaitP99Ms / byWorst.worstWorkerWaitP99Ms : NaN
    }
  }))
}

// ---------------------------------------------------------------------------------------------
// Text tables

const fixed = (digits: number) => (x: number) => Number.isFinite(x) ? x.toFixed(digits) : "-"
const f0 = fixed(0)
const f1 = fixed(1)
const f2 = fixed(2)
const f3 = fixed(3)
const us = (ms: number) => f0(ms * 1000)
const ratio = (x: number) => Number.isFinite(x) ? `${x.toFixed(2)}×` : "-"
const spread = (s: Summary) =>
  s.throughput > 0 ? `${f0((s.throughputRange[1] - s.throughputRange[0]) / s.throughput * 100)}%` : "-"

export const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? "").length)))
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join("  ")
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n")
}

const correctness = (s: Summary) => [String(s.failures), String(s.violations), String(s.keysLeft)]

export const scenarioTable = (scenario: ScenarioId, summaries: ReadonlyArray<Summary>): string => {
  const floor = summaries.find((s) => s.kind === "floor")
  const vsFloor = (s: Summary, f: (s: Summary) => number) => floor ? ratio(f(s) / f(floor)) : "-"
  switch (scenario) {
    case "a":
      return table(
        ["implementation", "ops/s", "spread", "p50 µs", "p99 µs", "cpu µs/op", "cmds/op", "ops ×floor", "p50 ×floor", "fail", "viol", "keys"],
        summaries.map((s) => [
          s.impl,
          f0(s.throughput),
          spread(s),
          us(s.p50Ms),
          us(s.p99Ms),
          f1(s.cpuUsPerCycle),
          f2(s.commandsPerCycle),
          vsFloor(s, (x) => x.throughput),
          vsFloor(s, (x) => x.p50Ms),
          ...correctness(s)
        ])
      )
    case "b":
      return table(
        ["implementation", "cycles/s", "spread", "p50 ms", "p99 ms", "cpu µs/cycle", "cmds/cycle", "cycles ×floor", "fail", "viol", "keys"],
        summaries.map((s) => [
          s.impl,
          f0(s.throughput),
          spread(s),
          f2(s.p50Ms),
          f2(s.p99Ms),
          f1(s.cpuUsPerCycle),
          f2(s.commandsPerCycle),
          vsFloor(s, (x) => x.throughput),
          ...correctness(s)
        ])
      )
    case "c":
      return table(
        ["implementation", "cycles/s", "spread", "wait p50 ms", "wait p99 ms", "worst worker p99 ms", "wait max ms", "cmds/cycle", "fairness", "cycles ×floor", "fail", "viol", "keys"],
        summaries.map((s) => [
          s.impl,
          f1(s.throughput),
          spread(s),
          f1(s.waitP50Ms),
          f1(s.waitP99Ms),
          f1(s.worstWorkerWaitP99Ms),
          f1(s.waitMaxMs),
          f2(s.commandsPerCycle),
          f3(s.fairness),
          vsFloor(s, (x) => x.throughput),
          ...correctness(s)
        ])
      )
  }
}

/** Ratios for scenarios a and b: throughput and latency. */
export const ratiosTableAB = (ratios: ReadonlyArray<Ratios>): string =>
  table(
    ["K", "scen", "variant", "thr ×floor", "p50 ×floor", "p99 ×floor", "cmds ×floor", "thr ×best peer", "p50 ×best peer", "best peer: thr / p50"],
    ratios.filter((r) => r.scenario !== "c").map((r) => [
      String(r.k),
      r.scenario,
      r.impl.replace("effect-redlock:", ""),
      ratio(r.vsFloor.throughput),
      ratio(r.vsFloor.p50),
      ratio(r.vsFloor.p99),
      ratio(r.vsFloor.commands),
      ratio(r.vsBestPeer.throughput),
      ratio(r.vsBestPeer.p50),
      `${short(r.bestPeer.byThroughput)} / ${short(r.bestPeer.byP50)}`
    ])
  )

/** Ratios for scenario c: throughput, waits and commands. */
export const ratiosTableC = (ratios: ReadonlyArray<Ratios>): string =>
  table(
    ["K", "variant", "thr ×floor", "wait p99 ×floor", "worst p99 ×floor", "cmds ×floor", "thr ×best peer", "wait p99 ×best peer", "worst p99 ×best peer", "best peer: thr / p99 / worst p99"],
    ratios.filter((r) => r.scenario === "c").map((r) => [
      String(r.k),
      r.impl.replace("effect-redlock:", ""),
      ratio(r.vsFloor.throughput),
      ratio(r.vsFloor.waitP99),
      ratio(r.vsFloor.worstWorkerWaitP99),
      ratio(r.vsFloor.commands),
      ratio(r.vsBestPeer.throughput),
      ratio(r.vsBestPeer.waitP99),
      ratio(r.vsBestPeer.worstWorkerWaitP99),
      `${short(r.bestPeer.byThroughput)} / ${short(r.bestPeer.byWaitP99)} / ${short(r.bestPeer.byWorstWorkerWaitP99)}`
    ])
  )

/** "redlock@4.2.0" → "redlock@4", "redis-semaphore@5.8.0" → "redis-semaphore". */
const short = (name: string): string => {
  const match = /^(.+)@(\d+)[^@]*$/.exec(name)
  if (match === null) return name
  return match[1] === "redlock" ? `redlock@${match[2]}` : match[1]!.replace("@sesamecare-oss/", "sesame-")
}
