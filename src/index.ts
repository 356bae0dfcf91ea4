/**
 * effect-redlock: the Redlock distributed lock for Effect.
 *
 * @since 0.1.0
 */

/**
 * The lock handle and its accessors.
 *
 * @since 0.1.0
 */
export * as Lock from "./Lock.js"

/**
 * The Redlock service, its layers and operations.
 *
 * @since 0.1.0
 */
export * as Redlock from "./Redlock.js"

/**
 * Every error effect-redlock can fail with.
 *
 * @since 0.1.0
 */
export * as RedlockError from "./RedlockError.js"

/**
 * The metrics effect-redlock records.
 *
 * @since 0.1.0
 */
export * as RedlockMetrics from "./RedlockMetrics.js"
