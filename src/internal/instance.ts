/** Builds a Redlock instance: validated options, one node per client, wake-ups. */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { MakeOptions, Redlock } from "../Redlock.js"
import type { InvalidArgument } from "../RedlockError.js"
import type * as engine from "./engine.js"
import { fromClient, labelOf } from "./node.js"
import * as options_ from "./options.js"
import { quorumOf } from "./quorum.js"
import { makeService } from "./service.js"
import * as Waker from "./waker.js"

/**
 * `Redlock.make`, with `onNodeFailure` told of every node call that fails or times out while its
 * round waits for it (the Promise façade's events). It runs in the round's callback: it must
 * return at once and never throw.
 */
export const makeInstance = (
  options: MakeOptions,
  onNodeFailure?: (node: string, error: Error) => void
): Effect.Effect<Redlock.Service, InvalidArgument, Scope.Scope> =>
  Effect.gen(function*() {
    const { clients, instance, wakeUp } = yield* options_.validate(() => {
      const checked = options_.objectOf("options", options)
      const clients = options_.clientsOf(checked.clients, labelOf)
      const wakeUp = options_.wakeUpOf(checked.wakeUp, clients)
      const instance: Omit<engine.Engine, "waker"> = {
        nodes: clients.map((client) => fromClient(client, wakeUp === "publish", onNodeFailure)),
        quorum: quorumOf(clients.length),
        keyPrefix: options_.keyPrefixOf(checked.keyPrefix),
        settings: options_.baseSettings(checked)
      }
      return { clients, instance, wakeUp }
    })
    for (const client of clients) {
      const ignore = () => {}
      yield* Effect.acquireRelease(Effect.sync(() => client.on("error", ignore)), () =>
        Effect.sync(() => client.off("error", ignore)))
    }
    if (wakeUp === "keyspace") yield* Effect.forkScoped(Waker.checkKeyspaceEvents(clients))
    const waker = wakeUp === false ? undefined : yield* Waker.make(clients, instance.quorum, wakeUp)
    return makeService({ ...instance, waker })
  })
