/**
 * What a worker tells the demo: one JSON object per line on its stdout. The worker measures
 * durations with its own clock; the demo stamps arrival times with its own.
 */
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"

const worker = Schema.Number

/** The worker is connected and about to contend. */
export const Ready = Schema.TaggedStruct("Ready", { worker, pid: Schema.Number })

/** The worker called `withLock` and waits for the lock. */
export const Waiting = Schema.TaggedStruct("Waiting", { worker })

/**
 * The worker holds the lock and entered the critical section: `token` is its fencing number from
 * the ledger, `others` how many holders the ledger saw inside at that moment (0 unless mutual
 * exclusion broke).
 */
export const Entered = Schema.TaggedStruct("Entered", {
  worker,
  token: Schema.Number,
  others: Schema.Number,
  waitedMs: Schema.Number
})

/** The worker left the critical section (normally, or because the lock was lost). */
export const Exited = Schema.TaggedStruct("Exited", { worker, token: Schema.Number, heldMs: Schema.Number })

/** `withLock` failed: the error's tag (`LockContended`, `QuorumUnavailable`, `LockLost`, ...). */
export const Failed = Schema.TaggedStruct("Failed", { worker, error: Schema.String, message: Schema.String })

/** A log line of the worker (the library's warnings, for instance). */
export const Log = Schema.TaggedStruct("Log", { worker, level: Schema.String, message: Schema.String })

export const Event = Schema.Union(Ready, Waiting, Entered, Exited, Failed, Log)
export type Event = typeof Event.Type

const encode = Schema.encodeSync(Schema.parseJson(Event))
const decode = Schema.decodeUnknownEither(Schema.parseJson(Event))

/** Writes one event as a line on stdout (synchronous for pipes on Linux, so nothing is lost on exit). */
export const emit = (event: Event): void => {
  process.stdout.write(encode(event) + "\n")
}

/** Reads one line; anything that is not an event (a stray console line) becomes a `Log`. */
export const parse = (worker: number, line: string): Event =>
  Either.getOrElse(decode(line), () => Log.make({ worker, level: "OUTPUT", message: line }))
