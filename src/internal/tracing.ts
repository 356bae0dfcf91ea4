/**
 * Spans for the public operations, recorded only when the application installed a tracer (for
 * example @effect/opentelemetry). Under Effect's built-in tracer nobody reads them, and a span
 * costs several microseconds: a large share of a lock cycle.
 */
import * as Effect from "effect/Effect"
import type * as Tracer from "effect/Tracer"

const builtInTracer = Effect.runSync(Effect.tracer)

/** Whether spans are wanted: a tracer other than Effect's built-in one is installed. */
export const isTraced = (tracer: Tracer.Tracer): boolean => tracer !== builtInTracer
