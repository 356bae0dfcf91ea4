/**
 * Wake-ups instead of polling: a waiter listens for the deletion of its keys so it can try again
 * about one round trip after the holder let go. Two sources:
 * - "publish": every release publishes on the key's channel from the release script;
 * - "keyspace": Redis's own keyspace notifications (`del`, `expired`, `evicted`), which cost no
 *   command and also announce locks that expired, but need `notify-keyspace-events` set on the
 *   nodes.
 * One subscriber connection per node, shared by every waiter of the instance, opened on the first
 * contention and closed with the instance.
 */
import * as Effect from "effect/Effect"
import type { Redis } from "ioredis"
import type * as Scope from "effect/Scope"
import { startTimer } from "./fanout.js"
import { type Client, labelOf } from "./node.js"

/** Release announcements go to this prefix followed by the key. */
export const channelPrefix = "effect-redlock:released:"

/** Where waiters hear of releases. */
export type Source = "publish" | "keyspace"

/** The keyspace events that mean a key is gone. */
const deletions: ReadonlySet<string> = new Set(["del", "expired", "evicted"])

/** The database a client works in: its keyspace channels carry the number. */
const databaseOf = (client: Client): number => client.isCluster ? 0 : Number((client as Redis).options.db ?? 0)

/** Per node, the prefix of the channel of a key (ioredis prepends a client's `keyPrefix` to keys, not to channels). */
const prefixesOf = (clients: ReadonlyArray<Client>, source: Source): ReadonlyArray<string> =>
  clients.map((client) =>
    (source === "publish" ? channelPrefix : `__keyspace@${databaseOf(client)}__:`) + (client.options.keyPrefix ?? "")
  )

/**
 * Whether a node's `notify-keyspace-events` setting announces deleted and expired keys on keyspace
 * channels: `K`, plus `g` and `x` (or `A`, which includes both).
 */
export const announcesDeletions = (setting: string): boolean =>
  setting.includes("K") && (setting.includes("A") || (setting.includes("g") && setting.includes("x")))

/**
 * Logs a warning for every node whose `notify-keyspace-events` would not announce deleted and
 * expired locks: its waiters would only follow the retry schedule. A node that cannot be asked
 * (CONFIG forbidden or renamed, unreachable) is logged at debug level.
 */
export const checkKeyspaceEvents = (clients: ReadonlyArray<Client>): Effect.Effect<void> =>
  Effect.forEach(clients, (client) =>
    Effect.tryPromise(() => (client as Extract<Client, { config: unknown }>).config("GET", "notify-keyspace-events")).pipe(
      Effect.timeout("5 seconds"),
      Effect.flatMap((reply) => {
        const setting = Array.isArray(reply) ? String(reply[1] ?? "") : ""
        return announcesDeletions(setting) ? Effect.void : Effect.logWarning(
          "effect-redlock: wakeUp \"keyspace\" needs notify-keyspace-events with K, g and x (e.g. Kgx); " +
            "waiters on this node follow the retry schedule"
        ).pipe(Effect.annotateLogs({ node: labelOf(client), setting }))
      }),
      Effect.catchAll(() =>
        Effect.logDebug("effect-redlock: could not read notify-keyspace-events").pipe(
          Effect.annotateLogs({ node: labelOf(client) })
        )
      )
    ), { concurrency: "unbounded", discard: true })

/** One waiter's view of the release announcements for its keys. */
export interface Listener {
  /** Whether a waiter of this instance for some of these keys, and no others, was already listening when it joined. */
  readonly queued: boolean
  /** Waits up to `ms` for its turn since the last wait; true when a release handed it one. */
  readonly wait: (ms: number) => Effect.Effect<boolean>
}

/** Subscriptions shared by the waiters of one Redlock instance. */
export interface Waker {
  /** Listens on the keys' channels until the scope closes; ready once every node confirmed or `timeoutMs` passed. */
  readonly listen: (keys: ReadonlyArray<string>, timeoutMs: number) => Effect.Effect<Listener, never, Scope.Scope>
  /** Whether a waiter of this instance waits for some of these keys and no others. */
  readonly isQueued: (keys: ReadonlyArray<string>) => boolean
}

interface Waiter {
  readonly keys: ReadonlyArray<string>
  notified: boolean
  wake: (() => void) | undefined
}

/**
 * Whether `waiter` waits for nothing more than `keys`: a newcomer for `keys` then queues behind it.
 * One that also waits for other keys does not hold up a newcomer for some of its keys, which may
 * well be free.
 */
const waitsWithin = (waiter: Waiter, keys: ReadonlyArray<string>): boolean => waiter.keys.every((key) => keys.includes(key))

interface Channel {
  /** In turn order: a waiter that was handed a turn moves to the back. */
  readonly waiters: Set<Waiter>
  /** Per release (told apart by the owner value's digest), the nodes that announced it. */
  readonly heard: Map<string, Set<number>>
  /** Keyspace events only: nodes whose announcement of the release last handed on is still due. */
  readonly late: Set<number>
}

/** Releases remembered per channel: late announcements of older ones must not add up to a quorum. */
const rememberedReleases = 16

type Subscriber = Pick<Client, "subscribe" | "unsubscribe" | "on" | "disconnect">

const ignore = () => {}

/**
 * Where a waker hears of releases: it starts and stops listening on keys, on every node, and
 * reports each node's announcements to `announce`.
 */
interface Transport {
  /** Starts listening on the keys on every node; one promise per node, settled once it listens. */
  readonly listen: (keys: ReadonlyArray<string>) => ReadonlyArray<Promise<unknown>>
  /** Stops listening on the keys. */
  readonly stop: (keys: ReadonlyArray<string>) => void
}

/**
 * A waker over a transport. A release hands a turn to one waiter of the key, in turn order, once
 * a quorum of nodes announced that same release: waking on the first announcement would mostly
 * make it try before the other nodes deleted the key, and waking every waiter would send them all
 * to Redis for one lock. `announce(node, key, release)` reports one node's announcement; `release`
 * tells releases apart, or is undefined for keyspace events, which do not.
 */
const makeWith = (
  nodeCount: number,
  quorum: number,
  transportOf: (announce: (node: number, key: string, release: string | undefined) => void) => Transport
): Waker => {
  // Waiters by key.
  const channels = new Map<string, Channel>()
  /**
   * Keyspace events do not tell one release from the next: the nodes heard since the last turn
   * count as one release, and the next event of each node that was not heard yet is taken as that
   * release's late one.
   */
  const announce = (node: number, key: string, published: string | undefined) => {
    const channel = channels.get(key)
    if (channel === undefined) return
    if (published === undefined && channel.late.delete(node)) return
    const release = published ?? ""
    let nodes = channel.heard.get(release)
    if (nodes === undefined) {
      if (channel.heard.size >= rememberedReleases) channel.heard.delete(channel.heard.keys().next().value!)
      nodes = new Set()
      channel.heard.set(release, nodes)
    }
    nodes.add(node)
    if (nodes.size !== quorum) return
    if (published === undefined) {
      channel.heard.delete(release)
      for (let other = 0; other < nodeCount; other++) if (!nodes.has(other)) channel.late.add(other)
    }
    const [next] = channel.waiters
    if (next === undefined) return
    channel.waiters.delete(next)
    channel.waiters.add(next)
    next.notified = true
    const wake = next.wake
    next.wake = undefined
    wake?.()
  }
  const transport = transportOf(announce)

  const leave = (keys: ReadonlyArray<string>, waiter: Waiter) => {
    const emptied = keys.filter((key) => {
      const channel = channels.get(key)
      channel?.waiters.delete(waiter)
      if (channel === undefined || channel.waiters.size > 0) return false
      channels.delete(key)
      return true
    })
    if (emptied.length > 0) transport.stop(emptied)
  }

  /** Adds the waiter to every channel, listening on new ones; true if one of them had a waiter within its keys already. */
  const join = (keys: ReadonlyArray<string>, waiter: Waiter, timeoutMs: number) =>
    Effect.clockWith((clock) =>
      Effect.async<boolean>((resume) => {
        let queued = false
        const fresh = keys.filter((key) => {
          const channel = channels.get(key)
          if (channel !== undefined) {
            if (!queued) for (const other of channel.waiters) queued ||= waitsWithin(other, keys)
            channel.waiters.add(waiter)
            return false
          }
          channels.set(key, { waiters: new Set([waiter]), heard: new Map(), late: new Set() })
          return true
        })
        if (fresh.length === 0) return resume(Effect.succeed(queued))
        const listening = transport.listen(fresh)
        let pending = listening.length
        let done = false
        const finish = () => {
          if (done) return
          done = true
          stop()
          resume(Effect.succeed(queued))
        }
        const stop = startTimer(clock, timeoutMs, finish)
        const settled = () => --pending === 0 && finish()
        listening.forEach((node) => node.then(settled, settled))
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
    const waiter: Waiter = { keys, notified: false, wake: undefined }
    return Effect.acquireRelease(
      Effect.map(join(keys, waiter, timeoutMs), (queued): Listener => ({ queued, wait: (ms) => waitFor(waiter, ms) })),
      () => Effect.sync(() => leave(keys, waiter))
    )
  }
  const isQueued = (keys: ReadonlyArray<string>) => {
    if (channels.size === 0) return false
    for (const key of keys) {
      const channel = channels.get(key)
      if (channel !== undefined) for (const waiter of channel.waiters) if (waitsWithin(waiter, keys)) return true
    }
    return false
  }
  return { listen, isQueued }
}

/**
 * Builds the waker of an instance over its clients: one subscriber connection per node, opened
 * on the first contention; they close with the scope. Each node names a key's channel with its
 * own prefix.
 */
export const make = (
  clients: ReadonlyArray<Client>,
  quorum: number,
  source: Source
): Effect.Effect<Waker, never, Scope.Scope> =>
  Effect.gen(function*() {
    const prefixes = prefixesOf(clients, source)
    let subscribers: ReadonlyArray<Subscriber> | undefined
    // A subscriber also closes when its client ends: an instance whose clients were closed without
    // closing the instance (the Promise façade without `quit`) must not keep reconnecting forever.
    const closers: Array<() => void> = []
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        closers.forEach((remove) => remove())
        subscribers?.forEach((subscriber) => subscriber.disconnect())
      })
    )
    const namesOn = (node: number, keys: ReadonlyArray<string>) => keys.map((key) => prefixes[node] + key)
    return makeWith(clients.length, quorum, (announce) => {
      // A published release carries the digest of its owner value; a keyspace event, its kind.
      const heard = (node: number, name: string, message: string) => {
        if (source === "keyspace" && !deletions.has(message)) return
        announce(node, name.slice(prefixes[node]!.length), source === "publish" ? message : undefined)
      }
      const open = (): ReadonlyArray<Subscriber> =>
        subscribers ??= clients.map((client, node) => {
          const subscriber: Subscriber = client.duplicate()
          subscriber.on("error", ignore)
          subscriber.on("message", (name: string, message: string) => heard(node, name, message))
          const close = () => subscriber.disconnect()
          client.once("end", close)
          closers.push(() => client.off("end", close))
          return subscriber
        })
      return {
        listen: (keys) => open().map((subscriber, node) => subscriber.subscribe(...namesOn(node, keys))),
        stop: (keys) =>
          open().forEach((subscriber, node) => subscriber.unsubscribe(...namesOn(node, keys)).catch(ignore))
      }
    })
  })

/**
 * A waker for in-memory nodes, which report each release themselves through `announce` (with the
 * released owner value, as a published release carries its digest). Listening takes no round
 * trip: a waiter listens once its promise callbacks have run.
 */
export const makeInMemory = (
  nodeCount: number,
  quorum: number
): { readonly waker: Waker; readonly announce: (node: number, key: string, value: string) => void } => {
  let announce: (node: number, key: string, value: string) => void = () => {}
  const listening: ReadonlyArray<Promise<void>> = Array.from({ length: nodeCount }, () => Promise.resolve())
  const waker = makeWith(nodeCount, quorum, (heard) => {
    announce = heard
    return { listen: () => listening, stop: () => {} }
  })
  return { waker, announce: (node, key, value) => announce(node, key, value) }
}
