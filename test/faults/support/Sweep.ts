/**
 * The sweep: turns a ledger history into holders and looks for the three kinds of violation.
 *
 * - overlap: holder B entered while an earlier holder A was still inside its critical section and
 *   inside its validity. A's section ends at its exit record (or its last record if it never
 *   exited); A's validity ends at `max(at + remaining)` over its records, or is unknown (taken as
 *   unbounded) for a `withLock` body, which has no handle. Either way B entering means two
 *   holders acted at once with both believing they held the lock.
 * - overstay: a holder wrote (act or exit) after its own validity had run out, by the ledger's clock.
 *   When every such write came from a step that was due at least a millisecond inside the
 *   validity and ran late because the holder's event loop stalled, the overstay is set apart as
 *   stalled: no library on a single-threaded runtime can interrupt a step that was already due
 *   when its loop froze (the positive control `stall` shows what that costs without fencing).
 * - stale write: the ledger refused an act or exit because a newer token had been handed out
 *   (fencing).
 * An `interrupted` record is the checker's bookkeeping, written when the library interrupted the
 * body on LockLost, necessarily after the validity ended: it ends the section but is neither an
 * overstay nor a stale write (its refusals are counted apart, as `staleInterruptions`).
 */
import type { Entry } from "./Ledger.js"

/** One critical section, from the records that carry its token. */
export interface Holder {
  readonly token: number
  readonly worker: string
  readonly fiber: number
  /** Ledger ms. */
  readonly enterAt: number
  /** Ledger ms of the exit (or interruption) record, if any. */
  readonly exitAt: number | undefined
  /** Ledger ms of the last record. */
  readonly lastAt: number
  /** Ledger ms at which the holder's validity ran out; `Infinity` when unknown. */
  readonly validUntil: number
  /** Whether the section ended by interruption (LockLost). */
  readonly interrupted: boolean
  readonly writes: number
  readonly staleWrites: number
  readonly staleInterruptions: number
  /** Ledger ms of the last act or exit. */
  readonly lastWriteAt: number
}

export interface Overlap {
  readonly first: number
  readonly second: number
  /** How long B's entry came before A's end, in ms. */
  readonly byMs: number
  readonly description: string
}

export interface Overstay {
  readonly token: number
  /** How far past its validity the holder's last write came, in ms. */
  readonly byMs: number
  readonly writes: number
  readonly description: string
}

export interface SweepReport {
  readonly holders: number
  readonly overlaps: ReadonlyArray<Overlap>
  readonly overstays: ReadonlyArray<Overstay>
  /** Overstays whose late writes all ran late because the holder's event loop stalled. */
  readonly stalledOverstays: ReadonlyArray<Overstay>
  readonly staleWrites: number
  /** Interruption records refused by fencing (information, not a violation). */
  readonly staleInterruptions: number
  /** Holders without an exit record (their worker died or was killed, or the section never ended). */
  readonly unfinished: number
  /** Longest time between two consecutive entries, ms (a liveness hint, not a violation). */
  readonly longestGapMs: number
  /** Entry times (ledger ms), ascending. */
  readonly enters: ReadonlyArray<number>
  /** Holders that entered with a fencing token of their own (`Lock.fencingToken`). */
  readonly fenced: number
  /** Holders whose fencing token was not above every token of the holders that entered before. */
  readonly fenceInversions: ReadonlyArray<string>
}

export const holdersOf = (entries: ReadonlyArray<Entry>): ReadonlyArray<Holder> => {
  interface Draft {
    token: number
    worker: string
    fiber: number
    enterAt: number
    exitAt: number | undefined
    lastAt: number
    validUntil: number
    known: boolean
    interrupted: boolean
    writes: number
    staleWrites: number
    staleInterruptions: number
    lastWriteAt: number
  }
  const drafts = new Map<number, Draft>()
  for (const entry of entries) {
    const at = entry.at / 1000
    let draft = drafts.get(entry.token)
    if (draft === undefined) {
      draft = {
        token: entry.token,
        worker: entry.worker,
        fiber: entry.fiber,
        enterAt: at,
        exitAt: undefined,
        lastAt: at,
        validUntil: -Infinity,
        known: false,
        interrupted: false,
        writes: 0,
        staleWrites: 0,
        staleInterruptions: 0,
        lastWriteAt: at
      }
      drafts.set(entry.token, draft)
    }
    if (entry.kind === "enter") draft.enterAt = at
    else if (entry.kind !== "interrupted") {
      draft.writes++
      draft.lastWriteAt = Math.max(draft.lastWriteAt, at)
    }
    if (entry.kind === "exit" || entry.kind === "interrupted") {
      draft.exitAt = at
      draft.interrupted = entry.kind === "interrupted"
    }
    if (!entry.accepted) {
      if (entry.kind === "interrupted") draft.staleInterruptions++
      else draft.staleWrites++
    }
    draft.lastAt = Math.max(draft.lastAt, at)
    if (entry.remainingMs !== undefined) {
      draft.known = true
      draft.validUntil = Math.max(draft.validUntil, at + entry.remainingMs)
    }
  }
  return [...drafts.values()]
    .map((draft): Holder => ({
      token: draft.token,
      worker: draft.worker,
      fiber: draft.fiber,
      enterAt: draft.enterAt,
      exitAt: draft.exitAt,
      lastAt: draft.lastAt,
      validUntil: draft.known ? draft.validUntil : Infinity,
      interrupted: draft.interrupted,
      writes: draft.writes,
      staleWrites: draft.staleWrites,
      staleInterruptions: draft.staleInterruptions,
      lastWriteAt: draft.lastWriteAt
    }))
    .sort((a, b) => a.token - b.token)
}

const describe = (holder: Holder) =>
  `#${holder.token} (${holder.worker}/${holder.fiber}, entered ${holder.enterAt.toFixed(1)}, ${
    holder.exitAt === undefined ? "never exited" : `${holder.interrupted ? "interrupted" : "exited"} ${holder.exitAt.toFixed(1)}`
  }, valid until ${Number.isFinite(holder.validUntil) ? holder.validUntil.toFixed(1) : "unknown"})`

export const sweep = (entries: ReadonlyArray<Entry>): SweepReport => {
  const holders = holdersOf(entries)
  const byEnter = [...holders].sort((a, b) => a.enterAt - b.enterAt)
  const overlaps: Array<Overlap> = []
  for (let i = 0; i < byEnter.length; i++) {
    const a = byEnter[i]!
    // A holder that never exited may still be acting: its section lasts until its validity ends.
    const sectionEnd = a.exitAt ?? (Number.isFinite(a.validUntil) ? a.validUntil : a.lastAt)
    const end = Math.min(sectionEnd, a.validUntil)
    for (let j = i + 1; j < byEnter.length; j++) {
      const b = byEnter[j]!
      if (b.enterAt >= end) break
      overlaps.push({
        first: a.token,
        second: b.token,
        byMs: end - b.enterAt,
        description: `${describe(b)} entered ${(end - b.enterAt).toFixed(1)} ms before ${describe(a)} ended`
      })
    }
  }
  const overstays: Array<Overstay> = []
  const stalledOverstays: Array<Overstay> = []
  for (const holder of holders) {
    if (!Number.isFinite(holder.validUntil)) continue
    if (holder.lastWriteAt > holder.validUntil) {
      const late = entries.filter((entry) =>
        entry.token === holder.token && (entry.kind === "act" || entry.kind === "exit") &&
        entry.at / 1000 > holder.validUntil
      )
      const issuedLate = Math.max(...late.map((entry) => -(entry.remainingMs ?? 0)))
      const stalled = late.every((entry) =>
        entry.remainingMs !== undefined && entry.lateMs !== undefined && entry.remainingMs + entry.lateMs >= 1
      )
      const stallMs = Math.max(...late.map((entry) => entry.lateMs ?? 0))
      const overstay: Overstay = {
        token: holder.token,
        byMs: holder.lastWriteAt - holder.validUntil,
        writes: late.length,
        description: `${describe(holder)} wrote ${late.length} time(s) after its validity, the last ${
          (holder.lastWriteAt - holder.validUntil).toFixed(1)
        } ms late (issued up to ${issuedLate.toFixed(1)} ms late by its own clock${
          stalled ? `, from steps due inside the validity that its event loop ran up to ${stallMs.toFixed(0)} ms late` : ""
        })`
      }
      ;(stalled ? stalledOverstays : overstays).push(overstay)
    }
  }
  const enters = byEnter.map((holder) => holder.enterAt)
  const fencedEnters = entries.filter((entry) => entry.kind === "enter" && entry.fencingToken !== undefined)
    .sort((a, b) => a.at - b.at)
  const fenceInversions: Array<string> = []
  let highest: Entry | undefined
  for (const entry of fencedEnters) {
    if (highest !== undefined && entry.fencingToken! <= highest.fencingToken!) {
      fenceInversions.push(
        `#${entry.token} (${entry.worker}/${entry.fiber}) entered with fencing token ${entry.fencingToken}, not above #${highest.token}'s ${highest.fencingToken}`
      )
    }
    if (highest === undefined || entry.fencingToken! > highest.fencingToken!) highest = entry
  }
  let longestGapMs = 0
  for (let i = 1; i < enters.length; i++) longestGapMs = Math.max(longestGapMs, enters[i]! - enters[i - 1]!)
  return {
    holders: holders.length,
    overlaps,
    overstays,
    stalledOverstays,
    staleWrites: holders.reduce((sum, holder) => sum + holder.staleWrites, 0),
    staleInterruptions: holders.reduce((sum, holder) => sum + holder.staleInterruptions, 0),
    unfinished: holders.filter((holder) => holder.exitAt === undefined).length,
    longestGapMs,
    enters,
    fenced: fencedEnters.length,
    fenceInversions
  }
}
