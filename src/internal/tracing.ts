/**
 * Spans for the public operations, recorded only when the application installed a tracer (for
 * example @effect/opentelemetry). Under Effect's built-in tracer nobody reads them, and a span
 * costs several microseconds: a large share of a lock cycle.
 */
import * as Effect from "effect/Effect"

const builtInTracer = Effect.runSync(Effect.tracer)

/** Wraps an operation in a span named `name` when a tracer other than the built-in one is installed. */
export const traced = <A, E, R>(name: string, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.tracerWith((tracer) => tracer === builtInTracer ? effect : Effect.withSpan(effect, name))
