/**
 * Survivable faults under contention: 3 worker processes × 3 fibers take one resource through the
 * public API (withLock, and acquire + Lock.awaitLost) on 3 or 5 real nodes behind TCP proxies,
 * while a nemesis breaks a minority of the nodes (or does something harmless to all of them).
 * Every run must show: no overlap, overstay or stale write in the ledger's history; every failed
 * call a typed error inside its time budget; no unhandled rejection or ioredis error event; no key
 * left behind; and progress.
 */
import { layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { assertSurvived } from "./support/assertions.js"
import * as Checker from "./support/Checker.js"
import * as Nemesis from "./support/Nemesis.js"
import * as Proxy from "./support/Proxy.js"

const timeout = 60_000

/**
 * Holders take fencing tokens, checked to grow in the order they entered, except under the faults
 * that empty a node (a restart without persistence, a resync as a replica): counters are lost with
 * the rest of its data, which fencing does not survive (see the README's "Fencing tokens").
 */
const check = (config: Checker.Config, options?: { readonly minEntered?: number }) =>
  Effect.gen(function*() {
    const report = yield* Checker.runPooled({ fencing: true, ...config })
    console.log(Checker.summary(report))
    assertSurvived(report, options)
    return report
  })

layer(Checker.poolLayer(3), { excludeTestServices: true, timeout: "60 seconds" })("survivable faults", (it) => {
  it.effect("baseline: no fault", () => check({ name: "baseline" }), timeout)

  it.effect("kill -9 one of 3 nodes, restart it empty after 1.5 × ttl", () =>
    check({ name: "kill minority", fencing: false, nemesis: Nemesis.killRestart([0], { forMs: 1_500 }) }), timeout)

  it.effect("kill -9 two of 5 nodes, restart them empty after 1.5 × ttl", () =>
    check({ name: "kill 2 of 5", nodes: 5, fencing: false, nemesis: Nemesis.killRestart([1, 3], { forMs: 1_500 }) }), timeout)

  it.effect("SIGSTOP one of 3 nodes for 1.5 s", () =>
    check({ name: "pause minority", nemesis: Nemesis.pause([2], { forMs: 1_500 }) }), timeout)

  it.effect("SIGSTOP two of 5 nodes for 1.5 s", () =>
    check({ name: "pause 2 of 5", nodes: 5, nemesis: Nemesis.pause([0, 4], { forMs: 1_500 }) }), timeout)

  it.effect("black-hole one of 3 nodes for 1.5 s", () =>
    check({ name: "black-hole minority", nemesis: Nemesis.link([1], Proxy.blackHole) }), timeout)

  it.effect("black-hole two of 5 nodes for 1.5 s", () =>
    check({ name: "black-hole 2 of 5", nodes: 5, nemesis: Nemesis.link([2, 3], Proxy.blackHole) }), timeout)

  it.effect("delay one of 3 nodes by 3 × the node timeout", () =>
    check({ name: "slow minority", nemesis: Nemesis.link([0], Proxy.delay(150)) }), timeout)

  it.effect("delay every node by a fifth of the node timeout", () =>
    check({ name: "slow everywhere", nemesis: Nemesis.link([0, 1, 2], Proxy.delay(10)) }), timeout)

  it.effect("refuse connections to one of 3 nodes for 1.5 s", () =>
    check({ name: "refuse minority", nemesis: Nemesis.link([2], Proxy.refuse) }), timeout)

  it.effect("cut every connection to every node every 200 ms", () =>
    check({ name: "cut everywhere", nemesis: Nemesis.cut([0, 1, 2], 200) }, { minEntered: 10 }), timeout)

  it.effect("CLIENT KILL TYPE normal on every node every 250 ms", () =>
    check({ name: "client kill everywhere", nemesis: Nemesis.clientKill([0, 1, 2], 250) }, { minEntered: 10 }), timeout)

  it.effect("one of 3 nodes turns read-only (REPLICAOF a throwaway node)", () =>
    check({ name: "read-only minority", fencing: false, nemesis: Nemesis.readOnly([1]) }), timeout)

  it.effect("one of 3 nodes runs out of memory (maxmemory 1, noeviction)", () =>
    check({ name: "OOM minority", nemesis: Nemesis.oom([0]) }), timeout)

  it.effect("SCRIPT FLUSH on every node every 100 ms", () =>
    check({ name: "script flush everywhere", nemesis: Nemesis.scriptFlush([0, 1, 2], 100) }), timeout)

  it.effect("the clock of one of 3 nodes jumps 0.6 × ttl forward every 50 ms", () =>
    check({ name: "clock jump minority", nemesis: Nemesis.clockJump([2], 600, 50) }), timeout)

  // One client cut off from every node while it holds the lock (its own proxies black-holed), the
  // others still reaching all nodes: its body must stop by the end of its validity. Long holds
  // (1.5–2 × ttl, so the lock must be extended) and a 300 ms node timeout widen the window in which
  // a late interruption would show.
  it.effect("a holder's process is partitioned from every node while it holds the lock", () =>
    check({
      name: "holder partitioned",
      isolate: [0],
      roles: () => "acquire",
      workMs: [1_500, 2_000],
      nodeTimeoutMs: 300,
      retry: { times: 60, delayMs: 20, jitter: 0.5 },
      runMs: 6_000,
      nemesis: Nemesis.partitionHolder("w0", 2_500)
    }, { minEntered: 2 }), timeout)
})
