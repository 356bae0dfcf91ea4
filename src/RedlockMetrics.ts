/**
 * The metrics effect-redlock records, in Effect's global metric registry: read them with
 * `Metric.value`, or send them on with a metrics exporter (OpenTelemetry's, for one). Every
 * Redlock instance in the process adds to the same metrics. They are updated where the nodes'
 * replies arrive, outside any fiber, so labels set with `Effect.labelMetrics` do not apply to them.
 *
 * Tagged counters are recorded per tag only, so read them per tag, with the tags in the order
 * given here: `Metric.value(Metric.tagged(RedlockMetrics.lost, "reason", "taken"))`.
 *
 * @since 0.1.0
 */
import type * as Metric from "effect/Metric"
import * as internal from "./internal/metrics.js"

/**
 * `redlock_acquired_total`: locks acquired, by any operation (`acquire`, `tryAcquire`,
 * `withLock`, `lock` and the Promise façade), including one won just as its caller was
 * interrupted (it is deleted at once, and never counts as held).
 *
 * @since 0.1.0
 * @category metrics
 */
export const acquired: Metric.Metric.Counter<number> = internal.acquired

/**
 * `redlock_acquire_failures_total`: acquisitions that ended without the lock, tagged `reason`:
 * `contended` (a `LockContended`, or `None` from a `try` operation) or `unavailable` (a
 * `QuorumUnavailable`). Interrupted acquisitions are not counted.
 *
 * @since 0.1.0
 * @category metrics
 */
export const acquireFailures: Metric.Metric.Counter<number> = internal.acquireFailures

/**
 * `redlock_attempts_total`: attempts started, each one round of SETs on every node. Above
 * `acquired` + `acquireFailures` when acquisitions retry: the ratio shows contention.
 *
 * @since 0.1.0
 * @category metrics
 */
export const attempts: Metric.Metric.Counter<number> = internal.attempts

/**
 * `redlock_acquire_wait_ms`: for each lock acquired, the milliseconds from its first attempt to
 * the quorum, retries included. Bucket bounds are powers of two up to 32 768 ms.
 *
 * @since 0.1.0
 * @category metrics
 */
export const acquireWait: Metric.Metric.Histogram<number> = internal.acquireWait

/**
 * `redlock_held`: locks this process holds now — acquired, and neither released nor lost. A lock
 * from `lock` left to expire without `release` counts until it is released, or an `extend` or
 * `Lock.awaitLost` finds it expired.
 *
 * @since 0.1.0
 * @category metrics
 */
export const held: Metric.Metric.Gauge<number> = internal.held

/**
 * `redlock_hold_ms`: for each lock released, the milliseconds since its acquisition. Bucket bounds
 * are powers of two up to 2^23 ms (about 2.3 hours).
 *
 * @since 0.1.0
 * @category metrics
 */
export const holdTime: Metric.Metric.Histogram<number> = internal.holdTime

/**
 * `redlock_extensions_total`: extensions confirmed on a quorum, automatic or by `extend`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const extensions: Metric.Metric.Counter<number> = internal.extensions

/**
 * `redlock_lost_total`: held locks lost, tagged `reason` as in `LockLost`: `expired`, `taken`,
 * `unavailable` or `limit`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const lost: Metric.Metric.Counter<number> = internal.lost

/**
 * `redlock_node_failures_total`: calls to a node that failed or timed out while their round
 * waited for them (or, for a release, watched them: see below), tagged `node` (the node's label, `host:port`) then `outcome` (`error` or
 * `timeout`). Every call counts: a failed attempt's clean-up goes to the nodes that failed it
 * too. A node failing while the others still decide is visible here before it costs a lock. A
 * release done on a quorum still watches the nodes it did not wait for, until each answers or
 * times out (up to 30 nodes): a dead or hung node shows here with every release.
 *
 * @since 0.1.0
 * @category metrics
 */
export const nodeFailures: Metric.Metric.Counter<number> = internal.nodeFailures

/**
 * `redlock_retaken_total`: held locks set again on a node that had lost their keys, tagged `node`
 * (the node's label). A node loses them when it restarts empty or drops them; once an extension
 * is confirmed on a quorum, the lock is set again there (see the README's "How it follows the
 * algorithm"). Counts the SETs that landed.
 *
 * @since 0.1.0
 * @category metrics
 */
export const retaken: Metric.Metric.Counter<number> = internal.retaken
