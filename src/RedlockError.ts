/**
 * Every error effect-redlock can fail with: tagged, serialisable `Schema.TaggedError`s that share
 * one type id, so `catchTag` tells contention from unavailability from a lost lock.
 *
 * @since 0.1.0
 */
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"

/**
 * The type id every effect-redlock error carries.
 *
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = Symbol.for("effect-redlock/RedlockError")

/**
 * The type of `TypeId`.
 *
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * What one node answered in one attempt:
 * - `granted`: the node took (or confirmed) the key for this owner.
 * - `denied`: another owner holds the key there (or, for extend, the key is gone).
 * - `error`: the node answered with an error or the connection failed.
 * - `timeout`: no answer within the node timeout.
 * - `pending`: the attempt was decided before this node answered.
 *
 * @since 0.1.0
 * @category models
 */
export const NodeOutcome = Schema.Literal("granted", "denied", "error", "timeout", "pending")

/**
 * The type of a node's outcome.
 *
 * @since 0.1.0
 * @category models
 */
export type NodeOutcome = typeof NodeOutcome.Type

/**
 * One node's part in an attempt: its address (`host:port`, never credentials), its outcome, and
 * the error message when it failed.
 *
 * @since 0.1.0
 * @category models
 */
export class NodeVote extends Schema.Class<NodeVote>("effect-redlock/NodeVote")({
  node: Schema.String,
  outcome: NodeOutcome,
  error: Schema.optional(Schema.String)
}) {}

const Resources = Schema.Array(Schema.String)

const describeVotes = (votes: ReadonlyArray<NodeVote>): string =>
  votes.map((vote) => `${vote.node} ${vote.outcome}${vote.error === undefined ? "" : ` (${vote.error})`}`).join(", ")

/**
 * Other owners hold the resources (or part of them) on enough nodes that no quorum could be
 * reached, and the retries ran out. Carries the last attempt's votes.
 *
 * @since 0.1.0
 * @category errors
 */
export class LockContended extends Schema.TaggedError<LockContended>()("LockContended", {
  resources: Resources,
  attempts: Schema.Number,
  votes: Schema.Array(NodeVote)
}) {
  /** @since 0.1.0 */
  readonly [TypeId]: TypeId = TypeId

  /** @since 0.1.0 */
  override get message(): string {
    return `${this.resources.join(", ")} is held by another owner (${this.attempts} attempts; last: ${
      describeVotes(this.votes)
    })`
  }
}

/**
 * Too few nodes answered (errors, timeouts, not connected) to reach a quorum, or the answers came
 * too late to leave any validity. Never reported for contention.
 *
 * @since 0.1.0
 * @category errors
 */
export class QuorumUnavailable extends Schema.TaggedError<QuorumUnavailable>()("QuorumUnavailable", {
  resources: Resources,
  attempts: Schema.Number,
  quorum: Schema.Number,
  votes: Schema.Array(NodeVote)
}) {
  /** @since 0.1.0 */
  readonly [TypeId]: TypeId = TypeId

  /** @since 0.1.0 */
  override get message(): string {
    return `no quorum of ${this.quorum} for ${this.resources.join(", ")} (${this.attempts} attempts; last: ${
      describeVotes(this.votes)
    })`
  }
}

/**
 * Why a held lock can no longer be guaranteed:
 * - `expired`: the key is gone on too many nodes (ttl ran out, or it was deleted).
 * - `taken`: another owner holds the key on at least one node that refused the extension.
 * - `unavailable`: too few nodes answered before the lock's validity ran out.
 * - `limit`: the hold-time or extension cap was reached and the lock ran out.
 *
 * @since 0.1.0
 * @category models
 */
export const LossReason = Schema.Literal("expired", "taken", "unavailable", "limit")

/**
 * The type of a loss reason.
 *
 * @since 0.1.0
 * @category models
 */
export type LossReason = typeof LossReason.Type

/**
 * A held lock could not be confirmed on a quorum before its validity ran out (during `extend` or
 * automatic extension). Work guarded by `withLock` is interrupted when this happens. The Promise
 * façade's `disposer` also reports with it a release that found the lock no longer held by a
 * quorum.
 *
 * @since 0.1.0
 * @category errors
 */
export class LockLost extends Schema.TaggedError<LockLost>()("LockLost", {
  resources: Resources,
  reason: LossReason,
  votes: Schema.Array(NodeVote)
}) {
  /** @since 0.1.0 */
  readonly [TypeId]: TypeId = TypeId

  /** @since 0.1.0 */
  override get message(): string {
    const votes = this.votes.length === 0 ? "" : ` (${describeVotes(this.votes)})`
    return `lock on ${this.resources.join(", ")} lost: ${this.reason}${votes}`
  }
}

/**
 * Bad input (ttl, resources, options, clients), reported before any command reaches Redis.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidArgument extends Schema.TaggedError<InvalidArgument>()("InvalidArgument", {
  argument: Schema.String,
  reason: Schema.String
}) {
  /** @since 0.1.0 */
  readonly [TypeId]: TypeId = TypeId

  /** @since 0.1.0 */
  override get message(): string {
    return `invalid ${this.argument}: ${this.reason}`
  }
}

/**
 * Any effect-redlock error.
 *
 * @since 0.1.0
 * @category models
 */
export type RedlockError = LockContended | QuorumUnavailable | LockLost | InvalidArgument

/**
 * The ways an acquisition can fail.
 *
 * @since 0.1.0
 * @category models
 */
export type AcquireError = LockContended | QuorumUnavailable | InvalidArgument

/**
 * Tells whether a value is an effect-redlock error.
 *
 * @since 0.1.0
 * @category refinements
 */
export const isRedlockError = (u: unknown): u is RedlockError => Predicate.hasProperty(u, TypeId)
