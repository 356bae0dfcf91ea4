/**
 * Local type shims for two peers of the benchmark. redlock@4 ships no types; redlock@5.0.0-beta.2
 * ships them, but its package.json "exports" hides them from NodeNext resolution. Only what the
 * benchmark calls is declared.
 */

declare module "redlock4" {
  import type { Cluster, Redis } from "ioredis"

  namespace Redlock {
    interface Options {
      readonly driftFactor?: number
      readonly retryCount?: number
      readonly retryDelay?: number
      readonly retryJitter?: number
    }
    interface Lock {
      readonly resource: string | ReadonlyArray<string>
      readonly value: string
      readonly expiration: number
      unlock(): PromiseLike<void>
    }
  }

  class Redlock {
    constructor(clients: ReadonlyArray<Redis | Cluster>, options?: Redlock.Options)
    lock(resource: string | ReadonlyArray<string>, ttl: number): PromiseLike<Redlock.Lock>
    unlock(lock: Redlock.Lock): PromiseLike<void>
    on(event: "clientError", listener: (error: unknown) => void): this
  }

  export = Redlock
}

declare module "redlock5" {
  import type { EventEmitter } from "node:events"
  import type { Cluster, Redis } from "ioredis"

  export interface Settings {
    readonly driftFactor: number
    readonly retryCount: number
    readonly retryDelay: number
    readonly retryJitter: number
    readonly automaticExtensionThreshold: number
  }

  export class Lock {
    readonly resources: Array<string>
    readonly value: string
    expiration: number
    release(): Promise<unknown>
  }

  export default class Redlock extends EventEmitter {
    constructor(clients: Iterable<Redis | Cluster>, settings?: Partial<Settings>)
    acquire(resources: Array<string>, duration: number, settings?: Partial<Settings>): Promise<Lock>
    release(lock: Lock, settings?: Partial<Settings>): Promise<unknown>
  }
}
