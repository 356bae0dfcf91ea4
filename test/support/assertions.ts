/** Assertions shared by the tests (kept apart from `setup`, which the benchmark tools load too). */
import { assert } from "@effect/vitest"
import type * as Redlock from "../../src/Redlock.js"

/**
 * Checks a release of a lock held on every node: done once a quorum deleted the keys, every other
 * delete sent and not waited for. (`keysEverywhere` then sees them land.)
 */
export const assertReleased = (report: Redlock.ReleaseReport, quorum: number, label?: string): void => {
  assert.isAtLeast(report.released, quorum, label)
  assert.strictEqual(report.released, report.nodes.filter((node) => node.outcome === "released").length, label)
  for (const node of report.nodes) assert.include(["released", "pending"], node.outcome, label)
}
