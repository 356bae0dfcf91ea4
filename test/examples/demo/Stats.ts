/** What the demo has seen so far, updated from the workers' events and the fault schedule. */
import type * as Protocol from "./Protocol.js"

export type WorkerStatus = "starting" | "idle" | "waiting" | "holding" | "stopped"

export interface WorkerState {
  status: WorkerStatus
  /** When the current status began, in ms since the start of the run. */
  since: number
}

export interface Holder {
  readonly worker: number
  readonly token: number
  readonly since: number
}

export interface Note {
  readonly at: number
  readonly text: string
}

/** A node taken down by the fault schedule. */
export interface Fault {
  readonly label: string
  readonly killedAt: number
  readonly restartAt: number
  restartedAt: number | undefined
}

/** The value at percentile `p` (0–100) of `values`, by nearest rank; 0 when there are none. */
export const percentile = (values: ReadonlyArray<number>, p: number): number => {
  if (values.length === 0) return 0
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
}

export class Stats {
  /** Epoch ms when the workers were all ready and the clock started. */
  startedAt = Date.now()
  acquisitions = 0
  /** Entries that found another holder inside, as the workers report them (the report reads the ledger). */
  overlaps = 0
  lost = 0
  /** Failed `withLock` calls other than LockLost, by error tag. */
  readonly failures = new Map<string, number>()
  /** How long each acquisition waited, in ms. */
  readonly waits: Array<number> = []
  /** Critical sections that lasted longer than the ttl: they needed automatic extension. */
  heldPastTtl = 0
  holder: Holder | undefined = undefined
  readonly workers: Array<WorkerState>
  readonly notes: Array<Note> = []
  /** Worker log lines by message, e.g. the library's warnings while a node is down. */
  readonly logs = new Map<string, number>()
  readonly faults: Array<Fault> = []
  /** Workers that exited on their own during the run. */
  crashed = 0

  constructor(workers: number, readonly ttlMs: number) {
    this.workers = Array.from({ length: workers }, () => ({ status: "starting", since: 0 }))
  }

  /** Milliseconds since the run started. */
  elapsed(now = Date.now()): number {
    return now - this.startedAt
  }

  note(text: string, now = Date.now()): void {
    this.notes.push({ at: this.elapsed(now), text })
  }

  private setStatus(worker: number, status: WorkerStatus, now: number): void {
    const state = this.workers[worker]
    if (state === undefined || state.status === "stopped") return
    state.status = status
    state.since = this.elapsed(now)
  }

  stopped(worker: number, now = Date.now()): void {
    this.setStatus(worker, "stopped", now)
  }

  record(event: Protocol.Event, now = Date.now()): void {
    switch (event._tag) {
      case "Ready":
        return this.setStatus(event.worker, "idle", now)
      case "Waiting":
        return this.setStatus(event.worker, "waiting", now)
      case "Entered": {
        this.acquisitions++
        this.waits.push(event.waitedMs)
        this.holder = { worker: event.worker, token: event.token, since: this.elapsed(now) }
        this.setStatus(event.worker, "holding", now)
        if (event.others > 0) {
          this.overlaps++
          this.note(`OVERLAP: w${event.worker} entered with ${event.others} other holder(s) inside`, now)
        }
        return
      }
      case "Exited": {
        if (event.heldMs > this.ttlMs) this.heldPastTtl++
        if (this.holder?.token === event.token) this.holder = undefined
        return this.setStatus(event.worker, "idle", now)
      }
      case "Failed": {
        if (event.error === "LockLost") this.lost++
        else this.failures.set(event.error, (this.failures.get(event.error) ?? 0) + 1)
        this.note(`w${event.worker} ${event.error}: ${event.message}`, now)
        return this.setStatus(event.worker, "idle", now)
      }
      case "Log": {
        const key = `${event.level} ${event.message.replace(/(\d+\.\d+\.\d+\.\d+):\d+/g, "$1:*")}`
        this.logs.set(key, (this.logs.get(key) ?? 0) + 1)
        return
      }
    }
  }
}
