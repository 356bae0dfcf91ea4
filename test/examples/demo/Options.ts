/** The demo's settings, from flags (`--seconds 10`) or the environment (`DEMO_SECONDS=10`). */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"

export interface DemoOptions {
  /** How long the workers contend. */
  readonly seconds: number
  /** How many worker processes. */
  readonly workers: number
  /** The lock's ttl: short, so extension (and loss, should it happen) show within the run. */
  readonly ttlMs: number
  /** Node URLs to use instead of starting redis-server nodes (`REDLOCK_NODES`, `--nodes`). */
  readonly nodes: ReadonlyArray<string> | undefined
  /** The ledger's URL when the nodes are given (`REDLOCK_LEDGER`); default: the first node. */
  readonly ledger: string | undefined
  /** Periodic plain lines instead of a redrawn view (not a TTY, `CI` set, or `--plain`). */
  readonly plain: boolean
}

export const usage = `Usage: npm run demo -- [--seconds 20] [--workers 4] [--ttl 1500] [--nodes url,url,url] [--plain]

Starts 3 redis-server nodes (plus one for the ledger), runs worker processes that contend for one
lock through Redlock.withLock, kills a node mid-run and restarts it after more than the ttl, and
checks that no two workers ever held the lock at once.

Environment: DEMO_SECONDS, DEMO_WORKERS, DEMO_TTL, REDLOCK_NODES (comma-separated redis:// URLs:
use these nodes, start none, inject no faults), REDLOCK_LEDGER (a redis:// URL for the ledger when
REDLOCK_NODES is set; default: the first node), CI (plain output).`

export class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {}

/** `--help` was asked for: print the usage and exit 0. */
export class HelpRequested extends Data.TaggedError("HelpRequested") {}

const flagNames = ["seconds", "workers", "ttl", "nodes"] as const
type Flag = typeof flagNames[number]

const isFlag = (name: string): name is Flag => (flagNames as ReadonlyArray<string>).includes(name)

const readFlags = (argv: ReadonlyArray<string>) => {
  const flags: Partial<Record<Flag, string>> = {}
  let plain = false
  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index]!
    if (arg === "--help" || arg === "-h") throw new HelpRequested()
    if (arg === "--plain") {
      plain = true
      continue
    }
    const [name, inline] = arg.replace(/^--/, "").split("=", 2) as [string, string | undefined]
    if (!arg.startsWith("--") || !isFlag(name)) throw new UsageError({ message: `unknown argument ${arg}` })
    const value = inline ?? argv[++index]
    if (value === undefined) throw new UsageError({ message: `${arg} needs a value` })
    flags[name] = value
  }
  return { flags, plain }
}

const numberOf = (name: string, raw: string | undefined, fallback: number, min: number, max: number): number => {
  if (raw === undefined || raw === "") return fallback
  const value = Number(raw)
  if (!Number.isFinite(value) || value < min || value > max) {
    throw new UsageError({ message: `${name} must be a number between ${min} and ${max}, got ${raw}` })
  }
  return value
}

const urlsOf = (raw: string | undefined): ReadonlyArray<string> | undefined => {
  if (raw === undefined || raw.trim() === "") return undefined
  const urls = raw.split(",").map((url) => url.trim()).filter((url) => url !== "")
  const bad = urls.find((url) => !/^rediss?:\/\//.test(url))
  if (bad !== undefined) throw new UsageError({ message: `not a redis:// URL: ${bad}` })
  return urls
}

/** Reads the options; `UsageError` for a bad flag or value, `HelpRequested` for `--help`. */
export const parse = (
  argv: ReadonlyArray<string>,
  env: NodeJS.ProcessEnv,
  isTTY: boolean
): Effect.Effect<DemoOptions, UsageError | HelpRequested> =>
  Effect.try({
    try: () => {
      const { flags, plain } = readFlags(argv)
      const nodes = urlsOf(flags.nodes ?? env["REDLOCK_NODES"])
      return {
        seconds: numberOf("seconds", flags.seconds ?? env["DEMO_SECONDS"], 20, 1, 3600),
        workers: Math.round(numberOf("workers", flags.workers ?? env["DEMO_WORKERS"], 4, 1, 32)),
        ttlMs: Math.round(numberOf("ttl", flags.ttl ?? env["DEMO_TTL"], 1500, 200, 60_000)),
        nodes,
        ledger: nodes === undefined ? undefined : urlsOf(env["REDLOCK_LEDGER"])?.[0] ?? nodes[0],
        plain: plain || !isTTY || (env["CI"] !== undefined && env["CI"] !== "" && env["CI"] !== "false")
      }
    },
    catch: (error) =>
      error instanceof UsageError || error instanceof HelpRequested
        ? error
        : new UsageError({ message: String(error) })
  })
