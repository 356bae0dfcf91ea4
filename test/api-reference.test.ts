import { assert, describe, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as path from "node:path"
import * as PromiseModule from "../src/promise.js"
import * as Lock from "../src/Lock.js"
import * as Redlock from "../src/Redlock.js"
import * as RedlockError from "../src/RedlockError.js"
import * as RedlockMetrics from "../src/RedlockMetrics.js"
import { currentSection, render, repoRoot } from "./support/api-reference.js"

describe("API reference", () => {
  // One compiler run (a few seconds) shared by the assertions.
  const rendered = render()
  /** The entry names in one module's section of the reference. */
  const entriesOf = (moduleName: string): Set<string | undefined> => {
    const section = rendered.markdown.split(/^### /m).find((text) => text.startsWith(`${moduleName}\n`)) ?? ""
    return new Set([...section.matchAll(/^##### `(.+)`$/gm)].map((match) => match[1]))
  }

  it("every public export and interface member has a description", () => {
    assert.deepStrictEqual(rendered.missing, [])
  })

  it("every export of the public modules is rendered", () => {
    // The runtime exports come from the modules themselves, not from the compiler walk.
    const runtime = { Lock, Redlock, RedlockError, RedlockMetrics, promise: PromiseModule }
    for (const [moduleName, module] of Object.entries(runtime)) {
      const entries = entriesOf(moduleName)
      for (const name of Object.keys(module)) assert.isTrue(entries.has(name), `${moduleName}.${name} is not in the reference`)
    }
    // Types and interfaces exist only for the compiler: every export it walked has its own entry too.
    assert.isAbove(rendered.exports.length, Object.values(runtime).flatMap(Object.keys).length)
    for (const qualified of rendered.exports) {
      const [moduleName = "", ...name] = qualified.split(".")
      assert.isTrue(entriesOf(moduleName).has(name.join(".")), `${qualified} is not in the reference`)
    }
  })

  it("README.md holds the current reference (npx tsx test/support/api-reference.ts)", () => {
    const readme = fs.readFileSync(path.join(repoRoot, "README.md"), "utf8")
    assert.strictEqual(currentSection(readme), rendered.markdown.trim())
  })
})
