/**
 * The three workloads (scenarios a, b, c) and the recorder every implementation reports into.
 * The Promise-side worker loop lives here; the Effect-side one, which mirrors it inside one Effect
 * program, is in effect.ts.
 */
import { setTimeout as sleep } from "node:timers/promises"

export type ScenarioId = "a" | "b" | "c"

export interface Scenario {
  readonly id: ScenarioId
  readonly title: string
  readonly workers: number
  /** fresh: a new resource every cycle; per-worker: one resource per worker; shared: one for all. */
  readonly resource: "fresh" | "per-worker" | "shared"
  /** How long a worker holds the lock (0: release at once). */
  readonly holdMs: number
  /** The measuring window; workers start no cycle after it, and finish the one they are in. */
  readonly durationMs: number
}

/** Cap on cycles per worker, so a loop is bounded even if the clock misbehaves. */
export const maxCyclesPerWorker = 1_000_000

/** What one run of one implementation in one scenario measured. */
export interface RunSample {
  /** Cycles whose release completed inside the window. */
  readonly cycles: number
  /** Every completed cycle, including those that finished after the window (drain). */
  readonly totalCycles: number
  readonly windowMs: number
  /** From start until the last worker stopped. */
  readonly elapsedMs: number
  /** Acquire + release latency of each cycle completed inside the window, in ms. */
  readonly latencies: ReadonlyArray<number>
  /** Wait for the lock (acquire call to acquired) of every acquisition started inside the window, in ms. */
  readonly waits: ReadonlyArray<number>
  /** The same waits, worker by worker. */
  readonly waitsByWorker: ReadonlyArray<ReadonlyArray<number>>
  /** Cycles completed inside the window, per worker. */
  readonly perWorker: ReadonlyArray<number>
  /** Acquisitions that failed (retries exhausted or error). */
  readonly failures: number
  /** Releases that threw. */
  readonly releaseErrors: number
  /** Times a worker entered its critical section while another one was inside (must be 0). */
  readonly violations: number
  /** Client process CPU (user + system) over the run, in µs. */
  readonly cpuUs: number
}

/** Collects one run's measurements. Plain mutable state, shared by all workers of the run. */
export class Recorder {
  readonly latencies: Array<number> = []
  readonly waits: Array<number> = []
  readonly waitsByWorker: Array<Array<number>>
  readonly perWorker: Array<number>
  cycles = 0
  totalCycles = 0
  failures = 0
  releaseErrors = 0
  violations = 0
  private holders = 0
  private cpu0: NodeJS.CpuUsage = process.cpuUsage()
  start = 0
  deadline = 0

  constructor(readonly scenario: Scenario, readonly prefix: string) {
    this.perWorker = new Array<number>(scenario.workers).fill(0)
    this.waitsByWorker = Array.from({ length: scenario.workers }, () => [])
  }

  begin(): void {
    this.cpu0 = process.cpuUsage()
    this.start = performance.now()
    this.deadline = this.start + this.scenario.durationMs
  }

  /** Whether a worker may start another cycle. */
  more(iteration: number): boolean {
    return iteration < maxCyclesPerWorker && performance.now() < this.deadline
  }

  resourceOf(worker: number, iteration: number): string {
    switch (this.scenario.resource) {
      case "fresh":
        return `${this.prefix}:${worker}:${iteration}`
      case "per-worker":
        return `${this.prefix}:${worker}`
      case "shared":
        return this.prefix
    }
  }

  enter(): void {
    if (++this.holders > 1) this.violations++
  }

  exit(): void {
    this.holders--
  }

  failure(): void {
    this.failures++
  }

  releaseError(): void {
    this.releaseErrors++
  }

  /** t0: acquire called, t1: acquired, t2: released. */
  cycle(worker: number, t0: number, t1: number, t2: number): void {
    this.totalCycles++
    if (t0 < this.deadline) {
      this.waits.push(t1 - t0)
      this.waitsByWorker[worker]!.push(t1 - t0)
    }
    if (t2 <= this.deadline) {
      this.cycles++
      this.perWorker[worker]!++
      this.latencies.push(t2 - t0)
    }
  }

  finish(): RunSample {
    const cpu = process.cpuUsage(this.cpu0)
    return {
      cycles: this.cycles,
      totalCycles: this.totalCycles,
      windowMs: this.scenario.durationMs,
      elapsedMs: performance.now() - this.start,
      latencies: this.latencies,
      waits: this.waits,
      waitsByWorker: this.waitsByWorker,
      perWorker: this.perWorker,
      failures: this.failures,
      releaseErrors: this.releaseErrors,
      violations: this.violations,
      cpuUs: cpu.user + cpu.system
    }
  }
}

/** A Promise-based lock as the benchmark drives it. */
export interface PromiseLocker<H> {
  acquire(resource: string): PromiseLike<H>
  release(handle: H): PromiseLike<unknown>
}

/** Runs a scenario with plain async workers. */
export const runPromiseWorkload = async <H>(
  locker: PromiseLocker<H>,
  scenario: Scenario,
  prefix: string
): Promise<RunSample> => {
  const recorder = new Recorder(scenario, prefix)
  const { holdMs } = scenario
  const worker = async (w: number): Promise<void> => {
    for (let i = 0; recorder.more(i); i++) {
      const resource = recorder.resourceOf(w, i)
      const t0 = performance.now()
      let handle: H
      try {
        handle = await locker.acquire(resource)
      } catch {
        recorder.failure()
        continue
      }
      const t1 = performance.now()
      recorder.enter()
      if (holdMs > 0) await sleep(holdMs)
      recorder.exit()
      try {
        await locker.release(handle)
      } catch {
        recorder.releaseError()
      }
      recorder.cycle(w, t0, t1, performance.now())
    }
  }
  recorder.begin()
  await Promise.all(Array.from({ length: scenario.workers }, (_, w) => worker(w)))
  return recorder.finish()
}
