/**
 * An in-memory node: keys that expire on an Effect `Clock` (the TestClock in a test), and the
 * faults of a real node: down (every call fails), hung (calls wait, as on a paused server, and run
 * when it comes back), slow (each call takes a set time), emptied (a restart without persistence). Backs `effect-redlock/testing`.
 * It answers as the scripts in `scripts.ts` do on Redis; `test/testing.test.ts` runs the same
 * calls on both and compares.
 */
import type * as Clock from "effect/Clock"
import { startTimer } from "./fanout.js"
import type { LockNode } from "./node.js"

/** How a node answers: normally, not at all (`down`: every call fails), or late (`hung`). */
export type NodeState = "up" | "down" | "hung"

interface Entry {
  readonly value: string
  /** Clock time in ms; `Infinity` for a fencing counter, which never expires. */
  readonly expiresAt: number
}

/** A memory node plus the controls its tests drive it with. */
export interface MemoryNode extends LockNode {
  readonly state: NodeState
  /**
   * Sets how the node answers (and ends a delay). Calls held while hung run, in order, once it is
   * up again, and fail once it is down.
   */
  setState(state: NodeState): void
  /** From now on each call runs, and is answered, `ms` of Clock time after it is made (the node is up). */
  setDelay(ms: number): void
  /** Forgets every key, fencing counters included. */
  flush(): void
  /** The keys that have not expired, with their values. */
  entries(): ReadonlyMap<string, string>
  /** Sets a key as another owner would, expiring after `ttlMs` (never when undefined). */
  put(key: string, value: string, ttlMs?: number): void
  /** Deletes a key. */
  remove(key: string): void
  /** The calls received so far. */
  readonly calls: number
}

/** What a down node's calls fail with: ioredis's message for a closed connection. */
export const downMessage = "Connection is closed."

/**
 * Makes a memory node. `onReleased(key, value)` is told of each key a release deleted, as the
 * release script's PUBLISH tells waiters.
 */
export const make = (
  label: string,
  clock: Clock.Clock,
  onReleased: (key: string, value: string) => void = () => {}
): MemoryNode => {
  const store = new Map<string, Entry>()
  let state: NodeState = "up"
  let delayMs = 0
  let calls = 0
  let held: Array<{ readonly run: () => void; readonly fail: () => void }> = []

  const now = () => clock.unsafeCurrentTimeMillis()
  /** The key's live entry; an expired one is deleted, as Redis does when a key is read (it keeps a key until the ms after its expiry). */
  const live = (key: string): Entry | undefined => {
    const entry = store.get(key)
    if (entry === undefined || entry.expiresAt >= now()) return entry
    store.delete(key)
    return undefined
  }
  const valueOf = (key: string) => live(key)?.value
  const setFor = (key: string, value: string, ttlMs: number | undefined) =>
    store.set(key, { value, expiresAt: ttlMs === undefined ? Infinity : now() + ttlMs })
  /** A fencing counter; one that is not a number fails the call, as the script's comparison does on Redis. */
  const counterOf = (key: string) => {
    const counter = Number(valueOf(key) ?? 0)
    if (Number.isNaN(counter)) throw new Error(`ERR user_script: attempt to compare nil with number (${key} is not a counter)`)
    return counter
  }

  /** Runs a call as the node is now: fails it when down, holds it when hung, else answers it. */
  const run = <A>(compute: () => A, resolve: (value: A) => void, reject: (error: unknown) => void): void => {
    if (state === "down") return reject(new Error(downMessage))
    if (state === "hung") {
      held.push({ run: () => run(compute, resolve, reject), fail: () => reject(new Error(downMessage)) })
      return
    }
    try {
      resolve(compute())
    } catch (error) {
      reject(error)
    }
  }

  const answer = <A>(compute: () => A): Promise<A> => {
    calls++
    if (state === "down") return Promise.reject(new Error(downMessage))
    if (state === "up" && delayMs === 0) return Promise.resolve().then(compute)
    return new Promise<A>((resolve, reject) => {
      if (state === "hung") return run(compute, resolve, reject)
      startTimer(clock, delayMs, () => run(compute, resolve, reject))
    })
  }

  const extend: LockNode["extend"] = (keys, value, ttlMs) =>
    answer(() => {
      if (keys.some((key) => valueOf(key) !== undefined && valueOf(key) !== value)) return -1
      if (!keys.every((key) => valueOf(key) === value)) return 0
      for (const key of keys) setFor(key, value, ttlMs)
      return 1
    })

  return {
    label,
    isCluster: false,
    keyPrefix: "",
    get state() {
      return state
    },
    get calls() {
      return calls
    },
    setState: (next) => {
      state = next
      delayMs = 0
      if (next === "hung") return
      const waiting = held
      held = []
      for (const call of waiting) next === "up" ? call.run() : call.fail()
    },
    setDelay: (ms) => {
      state = "up"
      delayMs = ms
    },
    flush: () => store.clear(),
    entries: () => {
      const entries = new Map<string, string>()
      for (const key of [...store.keys()]) {
        const value = valueOf(key)
        if (value !== undefined) entries.set(key, value)
      }
      return entries
    },
    put: (key, value, ttlMs) => setFor(key, value, ttlMs),
    remove: (key) => store.delete(key),
    acquire: (keys, value, ttlMs) =>
      answer(() => {
        if (keys.some((key) => valueOf(key) !== undefined)) return 0
        for (const key of keys) setFor(key, value, ttlMs)
        return 1
      }),
    acquireFenced: (keys, fenceKeys, value, ttlMs) =>
      answer(() => {
        if (keys.some((key) => valueOf(key) !== undefined)) return 0
        const token = Math.max(...fenceKeys.map(counterOf)) + 1
        for (const key of keys) setFor(key, value, ttlMs)
        for (const fenceKey of fenceKeys) setFor(fenceKey, String(token), undefined)
        return token
      }),
    raiseFence: (keys, fenceKeys, value, token) =>
      answer(() => {
        if (keys.some((key) => valueOf(key) !== value)) return 0
        for (const fenceKey of fenceKeys) if (counterOf(fenceKey) < token) setFor(fenceKey, String(token), undefined)
        return 1
      }),
    extend,
    extendInBatch: extend,
    release: (keys, value) =>
      answer(() => {
        let deleted = 0
        for (const key of keys) {
          if (valueOf(key) !== value) continue
          store.delete(key)
          deleted++
          onReleased(key, value)
        }
        return deleted
      })
  }
}
