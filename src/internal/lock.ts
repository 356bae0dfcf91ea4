/** The lock handle's mutable state, shared by the engine, the extension fiber and the accessors. */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as FiberId from "effect/FiberId"
import * as Inspectable from "effect/Inspectable"
import type * as Lock from "../Lock.js"
import type { ReleaseReport } from "../Redlock.js"
import type { LockLost } from "../RedlockError.js"
import type { Engine } from "./engine.js"
import * as metrics from "./metrics.js"
import type { Settings } from "./options.js"
import { lossLeadMs } from "./quorum.js"

/** The type id of lock handles. */
export const TypeId: unique symbol = Symbol.for("effect-redlock/Lock")

/** Where a lock stands on the client's side. */
export type Status = "held" | "released" | "lost"


/** The one implementation of `Lock`. */
export class LockState implements Lock.Lock {
  readonly [TypeId]: typeof TypeId = TypeId
  status: Status = "held"
  extensions = 0
  lostWith: LockLost | undefined = undefined
  fencingToken: number | undefined = undefined
  releaseReport: ReleaseReport | undefined = undefined
  /** Whether the release round runs now. */
  releasing = false
  /** Releases asked for while the release round runs: they wait for its report. */
  laterReleases: Array<(report: ReleaseReport) => void> | undefined = undefined
  /** Set while a keeper extends the lock automatically; it alone reports loss then. */
  autoExtending = false
  /** Called once when the lock is lost: the keeper's reaction (interrupting the work). */
  onLoss: (() => void) | undefined = undefined
  /** Told when `expiresAt` moves earlier: the keeper plans again. */
  onExpiryLowered: (() => void) | undefined = undefined
  /** Also told: the `Lock.awaitLost` calls waiting for the expiry. */
  private expiryWatchers: Set<() => void> | undefined = undefined
  private lossSignal: Deferred.Deferred<never, LockLost> | undefined = undefined

  constructor(
    /** The instance whose nodes hold the lock: extend and release always go there. */
    readonly engine: Engine,
    readonly resources: ReadonlyArray<string>,
    readonly keys: ReadonlyArray<string>,
    readonly value: string,
    readonly attempts: number,
    readonly settings: Settings,
    readonly acquiredAt: number,
    public expiresAt: number
  ) {}

  get ttlMs(): number {
    return this.settings.ttlMs
  }

  /** When the lock is declared lost unless an extension moves `expiresAt` first. */
  get lossAt(): number {
    return this.expiresAt - lossLeadMs
  }

  /** Whether `now` is at the loss instant, or within the millisecond a timer may fire early. */
  isLossDue(now: number): boolean {
    return now >= this.lossAt - 1
  }

  /** Calls `watcher` whenever `expiresAt` moves earlier, until the returned function is called. */
  watchExpiry(watcher: () => void): () => void {
    const watchers = this.expiryWatchers ??= new Set()
    watchers.add(watcher)
    return () => watchers.delete(watcher)
  }

  /** Sets `expiresAt`, telling the watchers when it moves earlier. */
  setExpiry(at: number): void {
    const earlier = at < this.expiresAt
    this.expiresAt = at
    if (!earlier) return
    this.onExpiryLowered?.()
    this.expiryWatchers?.forEach((watcher) => watcher())
  }

  /** Records the loss once and wakes everyone waiting for it. */
  markLost(error: LockLost): void {
    if (this.status !== "held") return
    this.status = "lost"
    metrics.lockLeft()
    metrics.lockLost(error.reason)
    this.lostWith = error
    if (this.lossSignal !== undefined) Deferred.unsafeDone(this.lossSignal, Effect.fail(error))
    this.onLoss?.()
  }

  /** Marks the lock released, once; `now` dates the release for the hold-time metric. */
  markReleased(now: number): void {
    if (this.status === "released") return
    if (this.status === "held") metrics.lockLeft()
    this.status = "released"
    metrics.lockReleased(now - this.acquiredAt)
  }

  /** A lock won by an attempt whose caller was interrupted first: it never reached anyone. */
  abandon(): void {
    if (this.status === "held") metrics.lockLeft()
    this.status = "released"
  }

  /**
   * Completes with the loss; never completes if the lock is released first. A method, not a
   * getter: printers that read every getter (test runners) would iterate the returned effect.
   */
  awaitLoss(): Effect.Effect<never, LockLost> {
    if (this.lostWith !== undefined) return Effect.fail(this.lostWith)
    this.lossSignal ??= Deferred.unsafeMake<never, LockLost>(FiberId.none)
    return Deferred.await(this.lossSignal)
  }

  /** What a log or a test runner shows: never the owner value, nor the instance behind the lock. */
  toJSON(): unknown {
    const { acquiredAt, attempts, expiresAt, extensions, fencingToken, resources, status, ttlMs } = this
    return { _id: "Lock", resources, status, attempts, ttlMs, acquiredAt, expiresAt, extensions, fencingToken }
  }

  toString(): string {
    return JSON.stringify(this.toJSON())
  }

  [Inspectable.NodeInspectSymbol](): unknown {
    return this.toJSON()
  }
}
