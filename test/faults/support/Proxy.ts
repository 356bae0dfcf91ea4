/**
 * A TCP proxy in front of one Redis node, for link faults: pass, delay, black-hole, refuse, cut,
 * switchable at runtime. A scoped resource: closing the scope closes the listener and every
 * connection.
 *
 * Modes:
 * - `pass`: bytes flow both ways.
 * - `delay(ms)`: every chunk is forwarded `ms` after it arrived, in order, both ways.
 * - `black-hole`: connections are accepted and read, nothing is forwarded and nothing comes back.
 *   Leaving the mode destroys the connections that swallowed bytes: TCP never drops bytes in the
 *   middle of a stream, so a real black hole ends in a timeout, not in a resynchronised stream.
 * - `refuse`: existing and new connections are reset.
 * - `cut` (an action, not a mode): existing connections are destroyed; new ones pass.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Net from "node:net"

/** A link mode. */
export type Mode =
  | { readonly _tag: "pass" }
  | { readonly _tag: "delay"; readonly ms: number }
  | { readonly _tag: "black-hole" }
  | { readonly _tag: "refuse" }

export const pass: Mode = { _tag: "pass" }
export const blackHole: Mode = { _tag: "black-hole" }
export const refuse: Mode = { _tag: "refuse" }
export const delay = (ms: number): Mode => ({ _tag: "delay", ms })

/** A running proxy. */
export interface Proxy {
  readonly port: number
  readonly host: "127.0.0.1"
  /** The node it forwards to. */
  readonly target: { readonly host: string; readonly port: number }
  readonly mode: () => Mode
  /** Switches the mode; takes effect for bytes arriving from now on. */
  readonly set: (mode: Mode) => Effect.Effect<void>
  /** Destroys every open connection; new connections follow the current mode. */
  readonly cut: Effect.Effect<void>
  /** Open client connections. */
  readonly connections: () => number
  /** Counters, for tests of the proxy itself. */
  readonly stats: () => { readonly accepted: number; readonly refused: number; readonly swallowed: number }
}

interface Link {
  readonly client: Net.Socket
  readonly upstream: Net.Socket
  /** Bytes were swallowed by a black hole: the stream can no longer be resumed. */
  poisoned: boolean
  close(): void
}

/** Forwards chunks from `from` to `to` under the proxy's current mode, keeping their order. */
const pipe = (from: Net.Socket, to: Net.Socket, link: Link, modeOf: () => Mode, onSwallow: (n: number) => void) => {
  const queue: Array<{ readonly at: number; readonly chunk: Buffer }> = []
  let timer: NodeJS.Timeout | undefined
  let lastAt = 0
  const drain = () => {
    timer = undefined
    const now = Date.now()
    while (queue.length > 0 && queue[0]!.at <= now) {
      const { chunk } = queue.shift()!
      if (!to.destroyed) to.write(chunk)
    }
    if (queue.length > 0) timer = setTimeout(drain, queue[0]!.at - now)
  }
  from.on("data", (chunk: Buffer) => {
    const mode = modeOf()
    if (link.poisoned) return
    switch (mode._tag) {
      case "pass":
        if (queue.length === 0) {
          if (!to.destroyed) to.write(chunk)
          return
        }
        queue.push({ at: lastAt, chunk })
        return
      case "delay": {
        lastAt = Math.max(Date.now() + mode.ms, lastAt)
        queue.push({ at: lastAt, chunk })
        if (timer === undefined) timer = setTimeout(drain, Math.max(0, queue[0]!.at - Date.now()))
        return
      }
      case "black-hole":
        link.poisoned = true
        onSwallow(chunk.length)
        return
      case "refuse":
        link.close()
        return
    }
  })
  from.on("close", () => {
    if (timer !== undefined) clearTimeout(timer)
    queue.length = 0
  })
}

/**
 * Starts a proxy on a free loopback port in front of `target`. Closing the scope closes it and
 * every connection it holds.
 */
export const make = (
  target: { readonly host?: string; readonly port: number },
  initial: Mode = pass
): Effect.Effect<Proxy, never, Scope.Scope> =>
  Effect.gen(function*() {
    const targetHost = target.host ?? "127.0.0.1"
    let mode: Mode = initial
    const links = new Set<Link>()
    const counters = { accepted: 0, refused: 0, swallowed: 0 }

    const server = Net.createServer({ noDelay: true }, (client) => {
      if (mode._tag === "refuse") {
        counters.refused++
        client.on("error", () => {})
        client.resetAndDestroy()
        return
      }
      counters.accepted++
      const upstream = Net.connect({ host: targetHost, port: target.port, noDelay: true })
      const link: Link = {
        client,
        upstream,
        poisoned: false,
        close: () => {
          links.delete(link)
          if (!client.destroyed) client.resetAndDestroy()
          upstream.destroy()
        }
      }
      links.add(link)
      client.on("error", () => link.close())
      upstream.on("error", () => link.close())
      client.on("close", () => link.close())
      upstream.on("close", () => link.close())
      const modeOf = () => mode
      const swallow = (n: number) => counters.swallowed += n
      pipe(client, upstream, link, modeOf, swallow)
      pipe(upstream, client, link, modeOf, swallow)
    })
    server.on("error", () => {})

    const port = yield* Effect.async<number>((resume) => {
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        resume(Effect.succeed(typeof address === "object" && address !== null ? address.port : 0))
      })
    })

    const closeAll = () => {
      for (const link of [...links]) link.close()
    }

    yield* Effect.addFinalizer(() =>
      Effect.async<void>((resume) => {
        closeAll()
        server.close(() => resume(Effect.void))
      }).pipe(Effect.timeout("2 seconds"), Effect.ignore)
    )

    const proxy: Proxy = {
      port,
      host: "127.0.0.1",
      target: { host: targetHost, port: target.port },
      mode: () => mode,
      set: (next) =>
        Effect.sync(() => {
          const previous = mode
          mode = next
          if (next._tag === "refuse") return closeAll()
          if (previous._tag === "black-hole" && next._tag !== "black-hole") {
            for (const link of [...links]) if (link.poisoned) link.close()
          }
        }),
      cut: Effect.sync(closeAll),
      connections: () => links.size,
      stats: () => ({ ...counters })
    }
    return proxy
  })

/** One proxy per target, all closed with the scope. */
export const makeAll = (
  targets: ReadonlyArray<{ readonly host?: string; readonly port: number }>
): Effect.Effect<ReadonlyArray<Proxy>, never, Scope.Scope> => Effect.forEach(targets, (target) => make(target))
