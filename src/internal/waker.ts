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
  /** Whether other waiters of this instance were already listening on these keys when it joined. */
  readonly queued: boolean
  /** Waits up to `ms` for its turn since the last wait; true when a release handed it one. */
  readonly wait: (ms: number) => Effect.Effect<boolean>
}

/** Subscriptions shared by the waiters of one Redlock instance. */
export interface Waker {
  /** Listens on the keys' channels until the scope closes; ready once every node confirmed or `timeoutMs` passed. */
  readonly listen: (keys: ReadonlyArray<string>, timeoutMs: number) => Effect.Effect<Listener, never, Scope.Scope>
  /** Whether waiters of this instance are queued on any of the keys. */
  readonly isQueued: (keys: ReadonlyArray<string>) => boolean
}

interface Waiter {
  notified: boolean
  wake: (() => void) | undefined
}

interface Channel {
  /** In turn order: a waiter that was handed a turn moves to the back. */
  readonly waiters: Set<Waiter>
  /** Per release (told apart by the owner value's digest), the nodes that announced it. */
  readonly heard: Map<string, Set<number>>
}

/** Releases remembered per channel: late announcements of older ones must not add up to a quorum. */
const rememberedReleases = 16

type Subscriber = Pick<Client, "subscribe" | "unsubscribe" | "on" | "disconnect">

const ignore = () => {}

/**
 * Builds the waker of an instance; its subscriber connections close with the scope. A release
 * hands a turn to one waiter of the key, in turn order, once a quorum of nodes announced that
 * same release:
 * waking on the first announcement would mostly make it try before the other nodes deleted the
 * key, and waking every waiter would send them all to Redis for one lock.
 */
export const make = (clients: ReadonlyArray<Client>, quorum: number): Effect.Effect<Waker, never, Scope.Scope> =>
  Effect.gen(function*() {
    const channels = new Map<string, Channel>()
    let subscribers: ReadonlyArray<Subscriber> | undefined
    const announce = (node: number, name: string, release: string) => {
      const channel = channels.get(name)
      if (channel === undefined) return
      let nodes = channel.heard.get(release)
      if (nodes === undefined) {
        if (channel.heard.size >= rememberedReleases) channel.heard.delete(channel.heard.keys().next().value!)
        nodes = new Set()
        channel.heard.set(release, nodes)
      }
      nodes.add(node)
      if (nodes.size !== quorum) return
      const [next] = channel.waiters
      if (next === undefined) return
      channel.waiters.delete(next)
      channel.waiters.add(next)
      next.notified = true
      const wake = next.wake
      next.wake = undefined
      wake?.()
    }
    const open = (): ReadonlyArray<Subscriber> =>
      subscribers ??= clients.map((client, node) => {
        const subscriber: Subscriber = client.duplicate()
        subscriber.on("error", ignore)
        subscriber.on("message", (name: string, release: string) => announce(node, name, release))
        return subscriber
      })
    yield* Effect.addFinalizer(() => Effect.sync(() => subscribers?.forEach((subscriber) => subscriber.disconnect())))

    const leave = (names: ReadonlyArray<string>, waiter: Waiter) => {
      const emptied = names.filter((name) => {
        const channel = channels.get(name)
        channel?.waiters.delete(waiter)
        if (channel === undefined || channel.waiters.size > 0) return false
        channels.delete(name)
        return true
      })
      if (emptied.length > 0) for (const subscriber of open()) subscriber.unsubscribe(...emptied).catch(ignore)
    }

    /** Adds the waiter to every channel, subscribing to new ones; true if a channel had waiters already. */
    const join = (names: ReadonlyArray<string>, waiter: Waiter, timeoutMs: number) =>
      Effect.clockWith((clock) =>
        Effect.async<boolean>((resume) => {
          let queued = false
          const fresh = names.filter((name) => {
            const channel = channels.get(name)
            if (channel !== undefined) {
              queued ||= channel.waiters.size > 0
              channel.waiters.add(waiter)
              return false
            }
            channels.set(name, { waiters: new Set([waiter]), heard: new Map() })
            return true
          })
          if (fresh.length === 0) return resume(Effect.succeed(queued))
          const all = open()
          let pending = all.length
          let done = false
          const finish = () => {
            if (done) return
            done = true
            stop()
            resume(Effect.succeed(queued))
          }
          const stop = startTimer(clock, timeoutMs, finish)
          for (const subscriber of all) {
            subscriber.subscribe(...fresh).then(() => --pending === 0 && finish(), () => --pending === 0 && finish())
          }
        })
      )

    const waitFor = (waiter: Waiter, ms: number) =>
      Effect.clockWith((clock) =>
        Effect.async<boolean>((resume) => {
          if (waiter.notified) {
            waiter.notified = false
            return resume(Effect.succeed(true))
          }
          const stop = startTimer(clock, ms, () => {
            waiter.wake = undefined
            resume(Effect.succeed(false))
          })
          waiter.wake = () => {
            stop()
            waiter.notified = false
            resume(Effect.succeed(true))
          }
          return Effect.sync(() => {
            stop()
            waiter.wake = undefined
          })
        })
      )

    const listen = (keys: ReadonlyArray<string>, timeoutMs: number) => {
      const names = keys.map(channelOf)
      const waiter: Waiter = { notified: false, wake: undefined }
      return Effect.acquireRelease(
        Effect.map(join(names, waiter, timeoutMs), (queued): Listener => ({ queued, wait: (ms) => waitFor(waiter, ms) })),
        () => Effect.sync(() => leave(names, waiter))
      )
    }
    const isQueued = (keys: ReadonlyArray<string>) =>
      channels.size > 0 && keys.some((key) => channels.has(channelOf(key)))
    return { listen, isQueued }
  })
