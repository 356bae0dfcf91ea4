/**
 * The metrics' definitions and the engine's recorders. Updates are synchronous hook updates where
 * the replies arrive, outside any fiber: a few nanoseconds each, against the microseconds an Effect
 * step costs.
 */
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricKey from "effect/MetricKey"
import type * as MetricLabel from "effect/MetricLabel"
import type { LossReason } from "../RedlockError.js"

const counterKey = (name: string, description: string) => MetricKey.counter(name, { description, incremental: true })

const acquiredKey = counterKey("redlock_acquired_total", "Locks acquired")
const acquireFailuresKey = counterKey(
  "redlock_acquire_failures_total",
  "Acquisitions that ended without the lock, by reason: contended or unavailable"
)
const attemptsKey = counterKey("redlock_attempts_total", "Attempts started: one SET round on every node each")
const extensionsKey = counterKey("redlock_extensions_total", "Extensions confirmed on a quorum")
const lostKey = counterKey("redlock_lost_total", "Locks lost while held, by reason: expired, taken, unavailable or limit")
const nodeFailuresKey = counterKey(
  "redlock_node_failures_total",
  "Node calls that failed or timed out while their round waited for or (a release) watched them, by node and outcome"
)
const retakenKey = counterKey(
  "redlock_retaken_total",
  "Held locks set again on a node that had lost their keys (restarted empty), by node"
)

/** Bucket bounds at powers of two from 1 ms up to 2^`power` ms, then one for everything above. */
const millisecondBuckets = (power: number) => MetricBoundaries.exponential({ start: 1, factor: 2, count: power + 2 })

/** The public metrics (re-exported with their documentation by `RedlockMetrics`). */
export const acquired = Metric.fromMetricKey(acquiredKey)
export const acquireFailures = Metric.fromMetricKey(acquireFailuresKey)
export const attempts = Metric.fromMetricKey(attemptsKey)
export const acquireWait = Metric.histogram(
  "redlock_acquire_wait_ms",
  millisecondBuckets(15),
  "Time from an acquisition's first attempt to the lock, in milliseconds"
)
export const held = Metric.gauge("redlock_held", { description: "Locks held now: acquired, not yet released or lost" })
export const holdTime = Metric.histogram(
  "redlock_hold_ms",
  millisecondBuckets(23),
  "Time from acquisition to release, in milliseconds"
)
export const extensions = Metric.fromMetricKey(extensionsKey)
export const lost = Metric.fromMetricKey(lostKey)
export const nodeFailures = Metric.fromMetricKey(nodeFailuresKey)
export const retaken = Metric.fromMetricKey(retakenKey)

const noLabels: ReadonlyArray<MetricLabel.MetricLabel> = []

/** A counter of `key` with tags built in: its updates find their hook without a registry lookup. */
const taggedCounter = (key: MetricKey.MetricKey.Counter<number>, tags: ReadonlyArray<readonly [string, string]>) =>
  Metric.fromMetricKey(tags.reduce((tagged, [name, value]) => MetricKey.tagged(tagged, name, value), key))

const gaveUp = {
  contended: taggedCounter(acquireFailuresKey, [["reason", "contended"]]),
  unavailable: taggedCounter(acquireFailuresKey, [["reason", "unavailable"]])
}

const lostBy: Record<LossReason, Metric.Metric.Counter<number>> = {
  expired: taggedCounter(lostKey, [["reason", "expired"]]),
  taken: taggedCounter(lostKey, [["reason", "taken"]]),
  unavailable: taggedCounter(lostKey, [["reason", "unavailable"]]),
  limit: taggedCounter(lostKey, [["reason", "limit"]])
}

/** Per node label, what `make` builds (its tagged counters), made on the node's first update. */
const perNode = <A>(make: (node: string) => A) => {
  const byNode = new Map<string, A>()
  return (node: string): A => {
    let counters = byNode.get(node)
    if (counters === undefined) {
      counters = make(node)
      byNode.set(node, counters)
    }
    return counters
  }
}

const failuresOf = perNode((node) => ({
  error: taggedCounter(nodeFailuresKey, [["node", node], ["outcome", "error"]]),
  timeout: taggedCounter(nodeFailuresKey, [["node", node], ["outcome", "timeout"]])
}))

const retakenOn = perNode((node) => taggedCounter(retakenKey, [["node", node]]))

/** An attempt started. */
export const attemptStarted = (): void => attempts.unsafeUpdate(1, noLabels)

/** A lock was acquired after `waitMs`; it counts as held until `lockLeft`. */
export const lockAcquired = (waitMs: number): void => {
  acquired.unsafeUpdate(1, noLabels)
  acquireWait.unsafeUpdate(waitMs, noLabels)
  held.unsafeModify(1, noLabels)
}

/** A held lock was released, lost or abandoned. */
export const lockLeft = (): void => held.unsafeModify(-1, noLabels)

/** A lock was released `holdMs` after its acquisition. */
export const lockReleased = (holdMs: number): void => holdTime.unsafeUpdate(holdMs, noLabels)

/** An acquisition ended without the lock. */
export const acquisitionFailed = (unavailable: boolean): void =>
  (unavailable ? gaveUp.unavailable : gaveUp.contended).unsafeUpdate(1, noLabels)

/** An extension was confirmed. */
export const lockExtended = (): void => extensions.unsafeUpdate(1, noLabels)

/** A held lock was lost. */
export const lockLost = (reason: LossReason): void => lostBy[reason].unsafeUpdate(1, noLabels)

/** A node's call failed or timed out while its round waited for it. */
export const nodeFailed = (node: string, outcome: "error" | "timeout"): void =>
  failuresOf(node)[outcome].unsafeUpdate(1, noLabels)

/** A held lock was set again on a node that had lost its keys. */
export const lockRetaken = (node: string): void => retakenOn(node).unsafeUpdate(1, noLabels)
