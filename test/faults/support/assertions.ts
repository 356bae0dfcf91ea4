/** Assertions over checker reports. */
import { assert } from "@effect/vitest"
import * as Checker from "./Checker.js"

/**
 * A survivable fault: no violation, every failed call typed and within its budget, no unhandled
 * rejection or error event, every worker healthy, no key left behind, and progress was made.
 */
export const assertSurvived = (report: Checker.Report, options: { readonly minEntered?: number } = {}): void => {
  const context = `\n${Checker.summary(report)}\n${report.samples.join("\n")}`
  assert.deepStrictEqual(report.sweep.overlaps.map((o) => o.description), [], `overlaps${context}`)
  assert.deepStrictEqual(report.sweep.overstays.map((o) => o.description), [], `overstays${context}`)
  assert.strictEqual(report.sweep.staleWrites, 0, `stale writes${context}`)
  assert.strictEqual(report.sweep.unfinished, 0, `unfinished sections${context}`)
  assert.deepStrictEqual(report.sweep.fenceInversions, [], `fencing tokens out of order${context}`)
  assert.strictEqual(report.totals.untyped, 0, `untyped failures${context}`)
  assert.strictEqual(report.totals.overBudget, 0, `acquisitions over budget${context}`)
  assert.strictEqual(report.totals.lostOverBudget, 0, `LockLost over budget${context}`)
  assert.strictEqual(report.totals.interruptedAtEnd, 0, `calls still running at the end${context}`)
  assert.strictEqual(report.totals.unhandled, 0, `unhandled rejections / exceptions${context}`)
  assert.strictEqual(report.unhandledErrorEvents, 0, `ioredis unhandled error events${context}`)
  assert.strictEqual(report.totals.ledgerErrors, 0, `ledger errors${context}`)
  assert.deepStrictEqual(report.badExits, [], `worker exits${context}`)
  assert.strictEqual(report.keysLeft, 0, `keys left on the nodes${context}`)
  assert.isAtLeast(report.totals.entered, options.minEntered ?? 20, `progress${context}`)
}

/** A positive control: the checker must see the violation. */
export const assertFlagged = (
  report: Checker.Report,
  expect: { readonly overlaps?: boolean; readonly overstays?: boolean; readonly staleWrites?: boolean }
): void => {
  const context = `\n${Checker.summary(report)}`
  assert.isAbove(report.violations, 0, `no violation flagged${context}`)
  if (expect.overlaps) assert.isAbove(report.sweep.overlaps.length, 0, `overlaps${context}`)
  if (expect.overstays) assert.isAbove(report.sweep.overstays.length, 0, `overstays${context}`)
  if (expect.staleWrites) assert.isAbove(report.sweep.staleWrites, 0, `stale writes${context}`)
  // The checker itself stayed healthy: the violation is the fault's, not a broken run.
  assert.strictEqual(report.totals.ledgerErrors, 0, `ledger errors${context}`)
  assert.deepStrictEqual(report.badExits, [], `worker exits${context}`)
}
