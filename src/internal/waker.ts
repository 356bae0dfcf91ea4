/**
 * Wake-ups instead of polling: every release publishes on the key's channel (from the release
 * script), and a waiter listens there so it can try again about one round trip after the holder
 * let go. One subscriber connection per node, shared by every waiter of the instance, opened on
 * the first contention and closed with the instance.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { startTimer } from "./fanout.js"
import type { Client } from "./node.js"

/** Release announcements go to this prefix followed by the key. */
export const channelPrefix = "effect-redlock:released:"

const channelOf = (key: string): string => channelPrefix + key

/** One waiter's view of the release announcements for its keys. */
export interface Listener {
  /** Waits up to `ms` for an announcement since the last wait; true when one came. */
  readonly wait: (ms: number) => Effect.Effect<boolean>
}

/** Subscriptions shared by the waiters of one Redlock instance. */
export interface Waker {
  /** Listens on the keys' channels until the scope closes; ready once every node confirmed or `timeoutMs` passed. */
  readonly listen: (keys: ReadonlyArray<string>, timeoutMs: number) => Effect.Effect<Listener, never, Scope.Scope>
}

interface Waiter {
  /** The nodes that announced a release since the last wait. */
  readonly heard: Set<number>
  notified: boolean
  wake: (() => void) | undefined
}

type Subscriber = Pick<Client, "subscribe" | "unsubscribe" | "on" | "disconnect">

const ignore = () => {}

/**
 * Builds the waker of an instance; its subscriber connections close with the scope. A waiter is
 * woken once a quorum of nodes announced a release: waking on the first would mostly make it try
 * before the other nodes have deleted the key.
 */
export const make = (clients: ReadonlyArray<Client>, quorum: number): Effect.Effect<Waker, never, Scope.Scope> =>
  Effect.gen(function*() {
    const waiters = new Map<string, Set<Waiter>>()
    let subscribers: ReadonlyArray<Subscriber> | undefined
    const announce = (node: number, channel: string) => {
      for (const waiter of waiters.get(channel) ?? []) {
        waiter.heard.add(node)
        if (waiter.heard.size < quorum) continue
        waiter.notified = true
        const wake = waiter.wake
        waiter.wake = undefined
        wake?.()
      }
    }
    const open = (): ReadonlyArray<Subscriber> =>
      subscribers ??= clients.map((client, node) => {
        const subscriber: Subscriber = client.duplicate()
        subscriber.on("error", ignore)
        subscriber.on("message", (channel: string) => announce(node, channel))
        return subscriber
      })
    yield* Effect.addFinalizer(() => Effect.sync(() => subscribers?.forEach((subscriber) => subscriber.disconnect())))

    const leave = (channels: ReadonlyArray<string>, waiter: Waiter) => {
      const emptied = channels.filter((channel) => {
        const set = waiters.get(channel)
        set?.delete(waiter)
        if (set === undefined || set.size > 0) return false
        waiters.delete(channel)
        return true
      })
      if (emptied.length > 0) for (const subscriber of open()) subscriber.unsubscribe(...emptied).catch(ignore)
    }

    const join = (channels: ReadonlyArray<string>, waiter: Waiter, timeoutMs: number) =>
      Effect.clockWith((clock) =>
        Effect.async<void>((resume) => {
          const fresh = channels.filter((channel) => {
            const set = waiters.get(channel)
            if (set !== undefined) return set.add(waiter) && false
            waiters.set(channel, new Set([waiter]))
            return true
          })
          if (fresh.length === 0) return resume(Effect.void)
          const all = open()
          let pending = all.length
          let done = false
          const finish = () => {
            if (done) return
            done = true
            stop()
            resume(Effect.void)
          }
          const stop = startTimer(clock, timeoutMs, finish)
          for (const subscriber of all) {
            subscriber.subscribe(...fresh).then(() => --pending === 0 && finish(), () => --pending === 0 && finish())
          }
        })
      )

    const listen = (keys: ReadonlyArray<string>, timeoutMs: number) => {
      const channels = keys.map(channelOf)
      const waiter: Waiter = { heard: new Set(), notified: false, wake: undefined }
      const listener: Listener = {
        wait: (ms) =>
          Effect.clockWith((clock) =>
            Effect.async<boolean>((resume) => {
              if (waiter.notified) {
                waiter.notified = false
                waiter.heard.clear()
                return resume(Effect.succeed(true))
              }
              const stop = startTimer(clock, ms, () => {
                waiter.wake = undefined
                resume(Effect.succeed(false))
              })
              waiter.wake = () => {
                stop()
                waiter.notified = false
                waiter.heard.clear()
                resume(Effect.succeed(true))
              }
              return Effect.sync(() => {
                stop()
                waiter.wake = undefined
              })
            })
          )
      }
      return Effect.acquireRelease(
        Effect.as(join(channels, waiter, timeoutMs), listener),
        () => Effect.sync(() => leave(channels, waiter))
      )
    }
    return { listen }
  })
