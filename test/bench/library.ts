/**
 * The library as users run it: the compiled `dist/` (`npm run build`; `npm run bench` builds
 * first), not `src/` through tsx, whose keep-names helpers rename every closure it creates and
 * cost a visible share of a lock cycle. Types come from `src/`.
 */
import { existsSync, statSync } from "node:fs"
import { fileURLToPath } from "node:url"
import type * as LockModule from "../../src/Lock.js"
import type * as PromiseModule from "../../src/promise.js"
import type * as RedlockModule from "../../src/Redlock.js"

const dist = new URL("../../dist/", import.meta.url)
const index = fileURLToPath(new URL("index.js", dist))
const source = fileURLToPath(new URL("../../src/internal/engine.ts", import.meta.url))
if (!existsSync(index)) throw new Error("dist/ is missing: run `npm run build` (or `npm run bench`, which builds first)")
if (statSync(source).mtimeMs > statSync(fileURLToPath(new URL("internal/engine.js", dist))).mtimeMs) {
  console.warn("warning: dist/ is older than src/: run `npm run build` to measure the current code")
}

const load = <A>(path: string): Promise<A> => import(new URL(path, dist).href) as Promise<A>

/** `effect-redlock/Redlock`, compiled. */
export const Redlock: typeof RedlockModule = await load("Redlock.js")
/** `effect-redlock/Lock`, compiled. */
export const Lock: typeof LockModule = await load("Lock.js")
/** `effect-redlock/promise`'s default export, compiled. */
export const PromiseRedlock: typeof PromiseModule.default = (await load<typeof PromiseModule>("promise.js")).default
/** A compiled internal module (`dist/internal/<path>`), for the tools that measure the engine alone. */
export const loadInternal = <A>(path: string): Promise<A> => load(`internal/${path}`)
