/**
 * An in-memory node for unit tests of the timing logic under TestClock. Its replies wait for the
 * test to open a gate, so a test decides how long a node takes in TestClock time. Never the only
 * test of a behaviour: everything it covers is also tested on real redis-server nodes.
 */
import type { LockNode } from "../../src/internal/node.js"

/** A memory node plus the controls a test drives it with. */
export interface MemoryNode extends LockNode {
  /** The stored keys and values. */
  readonly store: Map<string, string>
  /** Holds every reply until `open` is called. */
  hold(): void
  /** Releases held replies and answers at once from now on. */
  open(): void
  /** Makes every call fail with the given message (undefined: answer normally). */
  failWith(message: string | undefined): void
  /** How many calls were received. */
  readonly calls: () => number
}

/** Makes a memory node. */
export const make = (label: string): MemoryNode => {
  const store = new Map<string, string>()
  let gate: Promise<void> | undefined
  let openGate: () => void = () => {}
  let failure: string | undefined
  let calls = 0
  const answer = (compute: () => number): Promise<number> => {
    calls++
    const run = () => failure === undefined ? Promise.resolve(compute()) : Promise.reject(new Error(failure))
    return gate === undefined ? run() : gate.then(run)
  }
  const extend: LockNode["extend"] = (keys, value) =>
    answer(() => {
      if (keys.some((key) => store.has(key) && store.get(key) !== value)) return -1
      return keys.every((key) => store.has(key)) ? 1 : 0
    })
  return {
    label,
    isCluster: false,
    keyPrefix: "",
    store,
    calls: () => calls,
    hold: () => {
      gate = new Promise((resolve) => {
        openGate = resolve
      })
    },
    open: () => {
      gate = undefined
      openGate()
    },
    failWith: (message) => {
      failure = message
    },
    acquire: (keys, value) =>
      answer(() => {
        if (keys.some((key) => store.has(key))) return 0
        for (const key of keys) store.set(key, value)
        return 1
      }),
    acquireFenced: (keys, fenceKeys, value) =>
      answer(() => {
        if (keys.some((key) => store.has(key))) return 0
        const token = Math.max(...fenceKeys.map((fenceKey) => Number(store.get(fenceKey) ?? 0))) + 1
        for (const key of keys) store.set(key, value)
        for (const fenceKey of fenceKeys) store.set(fenceKey, String(token))
        return token
      }),
    raiseFence: (keys, fenceKeys, value, token) =>
      answer(() => {
        if (keys.some((key) => store.get(key) !== value)) return 0
        for (const fenceKey of fenceKeys) {
          if (Number(store.get(fenceKey) ?? 0) < token) store.set(fenceKey, String(token))
        }
        return 1
      }),
    extend,
    extendInBatch: extend,
    release: (keys, value) =>
      answer(() => {
        let deleted = 0
        for (const key of keys) {
          if (store.get(key) === value) {
            store.delete(key)
            deleted++
          }
        }
        return deleted
      })
  }
}
